//! Where the CPU goes during a run: the machine's busy time and each kind of process's share,
//! from `/proc` before the upload and after the last email. Wall times on a shared machine vary
//! by ±10% from run to run; CPU time per email varies far less and says which process binds.

use std::collections::HashMap;
use std::time::Duration;

/// `/proc` counts CPU time in ticks of 1/100 s (`USER_HZ`, fixed at 100 in the kernel's ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// A process the bench started, and what to call it.
pub struct Watched {
    /// The kind, e.g. `invite-worker`; processes of one kind are added up.
    pub kind: &'static str,
    /// Its pid.
    pub pid: u32,
}

/// CPU counters at one moment.
pub struct Snapshot {
    machine: MachineTicks,
    watched: Vec<u64>,
    postgres: HashMap<u32, u64>,
}

impl Snapshot {
    /// Reads the machine's counters, each watched process's and every PostgreSQL process's.
    pub fn take(watched: &[Watched]) -> Snapshot {
        Snapshot {
            machine: MachineTicks::read(),
            watched: watched.iter().map(|w| process_ticks(w.pid)).collect(),
            postgres: postgres_ticks(),
        }
    }
}

/// CPU seconds between two snapshots.
pub struct CpuUse {
    /// Busy time of all cores together.
    pub machine: f64,
    /// All cores' time together, idle included: what the machine had.
    pub available: f64,
    /// Time a hypervisor ran something else while a core of this machine wanted to run (steal):
    /// on a shared virtual machine, what makes wall times vary from run to run.
    pub steal: f64,
    /// Per kind, in the order first watched; then `PostgreSQL` and `rest` (everything else,
    /// the bench itself included).
    pub kinds: Vec<(String, f64)>,
}

impl CpuUse {
    /// What was used between `start` and `end`. A PostgreSQL process that exited in between is
    /// counted in `rest`; the product's pooled connections live through the run.
    pub fn between(watched: &[Watched], start: &Snapshot, end: &Snapshot) -> CpuUse {
        let seconds = |ticks: u64| ticks as f64 / TICKS_PER_SECOND;
        let mut kinds: Vec<(String, f64)> = Vec::new();
        for (i, w) in watched.iter().enumerate() {
            let used = seconds(end.watched[i].saturating_sub(start.watched[i]));
            match kinds.iter_mut().find(|(kind, _)| kind == w.kind) {
                Some((_, total)) => *total += used,
                None => kinds.push((w.kind.to_owned(), used)),
            }
        }
        let postgres: u64 = end
            .postgres
            .iter()
            .map(|(pid, &ticks)| {
                ticks.saturating_sub(start.postgres.get(pid).copied().unwrap_or(0))
            })
            .sum();
        kinds.push(("PostgreSQL".to_owned(), seconds(postgres)));
        let (start_machine, end_machine) = (&start.machine, &end.machine);
        let machine = seconds(end_machine.busy.saturating_sub(start_machine.busy));
        let counted: f64 = kinds.iter().map(|(_, s)| s).sum();
        kinds.push(("rest".to_owned(), (machine - counted).max(0.0)));
        CpuUse {
            machine,
            available: seconds(end_machine.total.saturating_sub(start_machine.total)),
            steal: seconds(end_machine.steal.saturating_sub(start_machine.steal)),
            kinds,
        }
    }

    /// The seconds of one kind (0 when it was not watched).
    pub fn of(&self, kind: &str) -> f64 {
        self.kinds
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0.0, |(_, seconds)| *seconds)
    }
}

/// The CPU time the machine has per email at the rates BENCHMARKS.md targets, against what the parts no
/// code of ours can avoid took alone in their references: what shows whether a target is within
/// reach of these cores at all. Microseconds per email (an email per row).
#[derive(Debug)]
pub struct Budget {
    /// The cores' time per email when sending at `email_ratio` × smtp-source's rate.
    pub emails: f64,
    /// The cores' time per row when the whole run takes `end_to_end_ratio` × (COPY + smtp-source).
    pub end_to_end: f64,
    /// The machine's busy time per message during the smtp-source reference (smtp-source,
    /// smtp-sink and the kernel's work for both).
    pub source: f64,
    /// smtp-sink's CPU per message in the smtp-source reference.
    pub sink: f64,
    /// The machine's busy time per row while the schema floor ran alone.
    pub floor: f64,
    /// The machine's busy time per email in the product's run, upload to last email.
    pub used: f64,
}

/// The references' times and CPU, and the product run's CPU, that a [`Budget`] is made of.
pub struct BudgetInputs<'a> {
    pub rows: u64,
    /// All cores together, e.g. 2.0.
    pub cores: f64,
    pub copy: Duration,
    pub source: Duration,
    /// smtp-sink watched during the smtp-source reference.
    pub source_cpu: &'a CpuUse,
    pub floor_cpu: &'a CpuUse,
    pub run_cpu: &'a CpuUse,
}

impl Budget {
    /// The budget at the targets `email_ratio` (emails ≥ ratio × smtp-source's rate) and
    /// `end_to_end_ratio` (end to end ≤ ratio × (COPY + smtp-source)).
    pub fn at(inputs: &BudgetInputs<'_>, email_ratio: f64, end_to_end_ratio: f64) -> Budget {
        let rows = inputs.rows.max(1) as f64;
        let micros_per_row = |seconds: f64| seconds / rows * 1e6;
        let email_seconds = inputs.source.as_secs_f64() / email_ratio;
        let end_to_end_seconds = (inputs.copy + inputs.source).as_secs_f64() * end_to_end_ratio;
        Budget {
            emails: micros_per_row(inputs.cores * email_seconds),
            end_to_end: micros_per_row(inputs.cores * end_to_end_seconds),
            source: micros_per_row(inputs.source_cpu.machine),
            sink: micros_per_row(inputs.source_cpu.of("smtp-sink")),
            floor: micros_per_row(inputs.floor_cpu.machine),
            used: micros_per_row(inputs.run_cpu.machine),
        }
    }
}

/// All cores' ticks from `/proc/stat`'s first line.
struct MachineTicks {
    /// Without idle, iowait and steal.
    busy: u64,
    steal: u64,
    /// Everything, idle included.
    total: u64,
}

impl MachineTicks {
    fn read() -> MachineTicks {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // user nice system idle iowait irq softirq steal (guest time is inside user's)
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        MachineTicks {
            busy: [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum(),
            steal: fields.get(7).copied().unwrap_or(0),
            total: fields.iter().sum(),
        }
    }
}

/// A process's `/proc/<pid>/stat` line, while it runs.
fn read_stat(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

/// A process's user and system ticks (0 once it has gone).
fn process_ticks(pid: u32) -> u64 {
    read_stat(pid)
        .and_then(|stat| stat_ticks(&stat))
        .unwrap_or(0)
}

/// utime + stime from a `/proc/<pid>/stat` line: fields 14 and 15, counted after the command
/// name, which is in parentheses and may itself hold spaces.
fn stat_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Every process called `postgres` (the server and its backends), with its ticks.
fn postgres_ticks() -> HashMap<u32, u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = read_stat(pid).filter(|stat| stat.contains("(postgres)"))?;
            Some((pid, stat_ticks(&stat)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_read_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 99";
        assert_eq!(stat_ticks(stat), Some(10));
    }

    #[test]
    fn kinds_add_up_and_the_rest_is_what_nobody_watched_used() {
        let watched = [
            Watched {
                kind: "invite-worker",
                pid: 10,
            },
            Watched {
                kind: "invite-worker",
                pid: 11,
            },
            Watched {
                kind: "smtp-sink",
                pid: 12,
            },
        ];
        // (busy, steal, total) of the machine, then each watched process's and PostgreSQL's ticks.
        let snapshot = |(busy, steal, total), watched, postgres: &[(u32, u64)]| Snapshot {
            machine: MachineTicks { busy, steal, total },
            watched,
            postgres: postgres.iter().copied().collect(),
        };
        let start = snapshot((1_000, 40, 3_000), vec![100, 0, 50], &[(20, 300), (21, 5)]);
        // 21 exited; 22 started during the run.
        let end = snapshot(
            (2_000, 90, 5_000),
            vec![300, 100, 150],
            &[(20, 600), (22, 100)],
        );
        let used = CpuUse::between(&watched, &start, &end);
        assert_eq!(used.machine, 10.0);
        assert_eq!(used.steal, 0.5);
        assert_eq!(used.available, 20.0);
        assert_eq!(
            used.kinds,
            [
                ("invite-worker".to_owned(), 3.0),
                ("smtp-sink".to_owned(), 1.0),
                ("PostgreSQL".to_owned(), 4.0),
                ("rest".to_owned(), 2.0),
            ]
        );
    }

    #[test]
    fn the_budget_is_the_cores_time_at_the_target_rates() {
        let used = |kinds: Vec<(&str, f64)>, machine: f64| CpuUse {
            machine,
            available: 0.0,
            steal: 0.0,
            kinds: kinds.into_iter().map(|(k, s)| (k.to_owned(), s)).collect(),
        };
        let source_cpu = used(vec![("smtp-sink", 3.0), ("PostgreSQL", 0.0)], 6.0);
        let floor_cpu = used(vec![("PostgreSQL", 2.5)], 3.0);
        let run_cpu = used(vec![("invite-worker", 9.0)], 25.0);
        let inputs = BudgetInputs {
            rows: 100_000,
            cores: 2.0,
            copy: Duration::from_millis(250),
            source: Duration::from_millis(3500),
            source_cpu: &source_cpu,
            floor_cpu: &floor_cpu,
            run_cpu: &run_cpu,
        };
        let budget = Budget::at(&inputs, 0.7, 1.5);
        // 100,000 emails in 3.5 s / 0.7 = 5 s on 2 cores: 10 core-seconds.
        assert!((budget.emails - 100.0).abs() < 1e-9, "{budget:?}");
        // 1.5 × 3.75 s = 5.625 s on 2 cores.
        assert!((budget.end_to_end - 112.5).abs() < 1e-9, "{budget:?}");
        assert_eq!(budget.source, 60.0);
        assert_eq!(budget.sink, 30.0);
        assert_eq!(budget.floor, 30.0);
        assert_eq!(budget.used, 250.0);
    }
}

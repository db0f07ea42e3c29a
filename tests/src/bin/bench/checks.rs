//! Exact counts a run must end with.

/// One count and the value it must have.
pub struct Check {
    /// What was counted, e.g. `emails.sent`.
    pub what: &'static str,
    /// The count.
    pub actual: u64,
    /// What it must be.
    pub expected: u64,
}

impl Check {
    /// A check of `what`.
    pub fn new(what: &'static str, actual: u64, expected: u64) -> Check {
        Check {
            what,
            actual,
            expected,
        }
    }

    /// Whether the count is right.
    pub fn ok(&self) -> bool {
        self.actual == self.expected
    }

    /// `emails.sent 2000 ✓`, or `emails.sent 1990 ✗ (expected 2000)`.
    pub fn describe(&self) -> String {
        if self.ok() {
            format!("{} {} ✓", self.what, self.actual)
        } else {
            format!(
                "{} {} ✗ (expected {})",
                self.what, self.actual, self.expected
            )
        }
    }
}

/// Every check of a run, on one line.
pub fn describe_all(checks: &[Check]) -> String {
    checks
        .iter()
        .map(Check::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The failed checks of the run called `run`, as messages.
pub fn failures(run: &str, checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|check| !check.ok())
        .map(|check| format!("{run}: {}", check.describe()))
        .collect()
}

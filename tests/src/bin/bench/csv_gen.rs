//! The generated CSV: unique invitees, cycling roles, some metadata.

use std::io::{BufWriter, Write as _};
use std::path::Path;

use anyhow::Context as _;

/// The header every generated file has.
const HEADER: &str = "first_name,last_name,email,role,groups,metadata\n";
const ROLES: [&str; 3] = ["Admin", "Builder", "End User"];
/// Bytes of padding in the metadata of an upload-only row (the product allows 4 KiB).
const PAD: usize = 900;

/// A generated CSV in a temporary file (deleted when dropped).
pub struct CsvFile {
    file: tempfile::TempPath,
    /// Data rows (without the header).
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

impl CsvFile {
    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

/// `rows` invitees `person{i}@bench.example`; every third row carries `{"employee_id":i}`, every
/// fifth an accented last name.
pub fn people(rows: u64) -> anyhow::Result<CsvFile> {
    write(rows, "")
}

/// About `mib` MiB of invitees, each row padded with ~1 KiB of metadata.
pub fn padded(mib: u64) -> anyhow::Result<CsvFile> {
    let pad = "x".repeat(PAD);
    let row_bytes = row(0, &pad).len() as u64;
    write((mib * 1024 * 1024).div_ceil(row_bytes).max(1), &pad)
}

fn write(rows: u64, pad: &str) -> anyhow::Result<CsvFile> {
    let file = tempfile::Builder::new()
        .prefix("bench-")
        .suffix(".csv")
        .tempfile()
        .context("creating the CSV file")?;
    let (file, path) = file.into_parts();
    let mut out = BufWriter::new(file);
    out.write_all(HEADER.as_bytes())?;
    for i in 0..rows {
        out.write_all(row(i, pad).as_bytes())?;
    }
    let file = out.into_inner().context("writing the CSV file")?;
    let bytes = file.metadata()?.len();
    Ok(CsvFile {
        file: path,
        rows,
        bytes,
    })
}

/// One CSV line; metadata is a JSON object, its quotes doubled inside a quoted field.
fn row(i: u64, pad: &str) -> String {
    let role = ROLES[(i % 3) as usize];
    let metadata = if !pad.is_empty() {
        format!(r#""{{""employee_id"":{i},""pad"":""{pad}""}}""#)
    } else if i.is_multiple_of(3) {
        format!(r#""{{""employee_id"":{i}}}""#)
    } else {
        String::new()
    };
    format!(
        "First{i},{},person{i}@bench.example,{role},,{metadata}\n",
        last_name(i)
    )
}

/// Every fifth row's last name has an accent (`Müller5`), for the searches that fold it away.
const ACCENTED_EVERY: u64 = 5;

/// Row `i`'s last name: `Last{i}`, or `Müller{i}` on every [`ACCENTED_EVERY`]th row.
pub fn last_name(i: u64) -> String {
    if i.is_multiple_of(ACCENTED_EVERY) {
        format!("Müller{i}")
    } else {
        format!("Last{i}")
    }
}

/// The row at or before `i` whose last name has an accent.
pub fn accented_row(i: u64) -> u64 {
    i - i % ACCENTED_EVERY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_a_quoted_json_object() {
        assert_eq!(
            row(3, ""),
            "First3,Last3,person3@bench.example,Admin,,\"{\"\"employee_id\"\":3}\"\n"
        );
        assert_eq!(row(4, ""), "First4,Last4,person4@bench.example,Builder,,\n");
        assert_eq!(
            row(5, ""),
            "First5,Müller5,person5@bench.example,End User,,\n"
        );
    }

    #[test]
    fn padded_metadata_stays_under_4_kib() {
        assert!(row(u64::MAX, &"x".repeat(PAD)).len() < 4096);
    }
}

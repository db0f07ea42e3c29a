//! An import's per-row results as CSV, one line per data row of its file: the route streams it a
//! page at a time, `invite-api import` writes it to a file. Cells a spreadsheet would run as
//! formulas are neutralised.

use std::borrow::Cow;
use std::path::Path;

use tokio::io::AsyncWriteExt as _;

use crate::db::Db;
use crate::domain::email;
use crate::ids::ImportId;
use crate::service::{Result, ServiceError, Step as _, next_cursor};
use crate::store::imports::{self, ResultRow};

/// Rows read from the database at a time.
const PAGE: i64 = 5000;

/// The columns, in order.
pub const COLUMNS: [&str; 7] = [
    "row",
    "email",
    "outcome",
    "reason",
    "member_id",
    "email_status",
    "error",
];

/// One page of the file: its encoded lines and where the next page starts.
#[derive(Debug, Clone)]
pub struct Page {
    /// CSV lines, each ending with a newline.
    pub bytes: Vec<u8>,
    /// The cursor of the next page (the last row number of this one); `None` on the last page.
    pub next: Option<i64>,
}

/// The CSV header line.
pub fn header_line() -> Vec<u8> {
    encode(std::iter::once(COLUMNS.map(String::from)))
}

/// The lines of the rows after row number `after` (0 for the first page).
pub async fn page(db: &Db, id: ImportId, after: i64) -> Result<Page> {
    let rows = db
        .run(move |c| Ok(imports::results_page(c, id, after, PAGE)?))
        .await
        .step("reading the import's results")?;
    let next = next_cursor(&rows, PAGE, |r| r.row);
    Ok(Page {
        bytes: encode(rows.into_iter().map(cells)),
        next,
    })
}

/// Writes the whole results file of an import to `path`, creating its folder.
pub async fn write_file(db: &Db, id: ImportId, path: &Path) -> Result<()> {
    let io = |source| ServiceError::File {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    file.write_all(&header_line()).await.map_err(io)?;
    let mut after = Some(0);
    while let Some(cursor) = after {
        let page = page(db, id, cursor).await?;
        file.write_all(&page.bytes).await.map_err(io)?;
        after = page.next;
    }
    file.flush().await.map_err(io)
}

fn cells(r: ResultRow) -> [String; 7] {
    [
        r.row.to_string(),
        r.email.as_deref().map(email::display).unwrap_or_default(),
        r.outcome.to_string(),
        r.reason.unwrap_or_default(),
        r.member_id.map(|m| m.to_string()).unwrap_or_default(),
        r.email_status.map(|s| s.to_string()).unwrap_or_default(),
        r.error.unwrap_or_default(),
    ]
}

/// Writes rows as CSV, neutralising cells a spreadsheet would run as formulas.
fn encode(rows: impl Iterator<Item = [String; 7]>) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(Vec::new());
    for row in rows {
        // Writing into a Vec cannot fail.
        let _ = out.write_record(row.iter().map(|c| neutralise(c).into_owned()));
    }
    out.into_inner().unwrap_or_default()
}

/// Prefixes `'` to a cell that starts with `= + - @`, tab or CR (CSV injection).
pub(crate) fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_untouched() {
        assert_eq!(neutralise("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralise("+1"), "'+1");
        assert_eq!(neutralise("-2"), "'-2");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("ada@example.com"), "ada@example.com");
    }

    #[test]
    fn encoded_rows_are_rfc4180_csv() {
        let out = encode(std::iter::once(
            ["2", "a@b.co", "invalid", "role: \"x\", no", "", "", ""].map(String::from),
        ));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2,a@b.co,invalid,\"role: \"\"x\"\", no\",,,\n"
        );
    }
}

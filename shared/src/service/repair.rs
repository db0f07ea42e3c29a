//! The file of rows to fix: the rows of an import with the chosen outcomes (`invalid`, `skipped`),
//! in the upload's own columns as uploaded plus a trailing `reason`, so that an admin fixes them
//! in a spreadsheet and uploads the file again (docs/product.md, "The repair loop"). The route
//! `GET …/imports/{id}/results?outcome=…` streams it and `invite-api import --outcome` writes it.
//!
//! It is read back from the stored upload, merged in row order with the rows' outcomes, a stored
//! piece and a page of outcomes at a time, so its memory does not grow with the file. Reading
//! stops once the last wanted row is written. Cells a spreadsheet would run as formulas are
//! neutralised, as in the results file.

use std::collections::VecDeque;
use std::path::Path;

use csv::ByteRecord;
use tokio::io::AsyncWriteExt as _;

use crate::db::Db;
use crate::domain::header::sniff_delimiter;
use crate::ids::ImportId;
use crate::intake::records::{Record, RecordReader};
use crate::service::results::neutralise;
use crate::service::{Result, ServiceError, Step as _};
use crate::status::RowOutcome;
use crate::store::imports::{self, Import};

/// How many of the upload's columns a line keeps.
#[derive(Debug, Clone, Copy)]
struct Width {
    columns: usize,
    /// The upload's own last column was a `reason`, left out (and so are cells past it).
    replaces_reason: bool,
}

/// Outcomes read from the database at a time.
const PAGE: i64 = 5000;

/// The column added after the upload's own.
pub const REASON: &str = "reason";

/// Reads an `outcome` list (`invalid,skipped`; spaces around names allowed); the error names
/// what is not an outcome.
pub fn parse_outcomes(list: &str) -> std::result::Result<Vec<RowOutcome>, String> {
    let mut outcomes = Vec::new();
    for name in list.split(',').map(str::trim) {
        let outcome = RowOutcome::parse(name).ok_or_else(|| {
            let shown: String = name.chars().take(40).collect();
            format!(
                "unknown outcome `{shown}`: use invited, skipped or invalid, separated by commas"
            )
        })?;
        if !outcomes.contains(&outcome) {
            outcomes.push(outcome);
        }
    }
    Ok(outcomes)
}

/// The file of rows to fix of one import, produced a piece at a time by [`RowsToFix::next`].
pub struct RowsToFix {
    db: Db,
    id: ImportId,
    outcomes: Vec<RowOutcome>,
    reader: RecordReader,
    /// The first stored piece, read when opening (so that a deleted upload is known up front).
    first: Option<Vec<u8>>,
    /// The next stored piece to read.
    seq: i32,
    /// Wanted rows not yet reached in the file: number and reason.
    wanted: VecDeque<(i64, Option<String>)>,
    /// The last row number read from the outcomes; `None` once they are all read.
    after: Option<i64>,
    /// The upload's columns that are kept, once the header is written: all of them, or all but
    /// a last `reason` column (a file of rows to fix uploaded again), which the new reason
    /// replaces.
    width: Option<Width>,
    done: bool,
}

impl RowsToFix {
    /// Starts the file of `import`'s rows with `outcomes`; `None` when its stored upload was
    /// deleted (`UPLOAD_RETENTION`).
    pub async fn open(
        db: &Db,
        import: &Import,
        outcomes: Vec<RowOutcome>,
    ) -> Result<Option<RowsToFix>> {
        if import.upload_deleted_at.is_some() {
            return Ok(None);
        }
        let id = import.id;
        let first = db
            .run(move |c| Ok(imports::read_chunk(c, id, 0)?))
            .await
            .step("reading the stored upload")?;
        let Some(first) = first else {
            return Ok(None);
        };
        let delimiter = sniff_delimiter(&first);
        Ok(Some(RowsToFix {
            db: db.clone(),
            id,
            outcomes,
            reader: RecordReader::new(delimiter, 1, true),
            first: Some(first),
            seq: 1,
            wanted: VecDeque::new(),
            after: Some(0),
            width: None,
            done: false,
        }))
    }

    /// The next piece of the file (CSV lines), or `None` at its end.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        while !self.done {
            let mut records = Vec::new();
            match self.read_piece().await? {
                Some(piece) => self.reader.feed(&piece, &mut records),
                None => {
                    self.reader.finish(&mut records);
                    self.done = true;
                }
            }
            let mut out = csv::WriterBuilder::new()
                .flexible(true)
                .from_writer(Vec::new());
            for record in records {
                self.write(&mut out, record).await?;
            }
            if self.width.is_some() && self.wanted.is_empty() && self.after.is_none() {
                // Every wanted row is written: the rest of the file is not read.
                self.done = true;
            }
            let bytes = out.into_inner().unwrap_or_default();
            if !bytes.is_empty() {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    async fn read_piece(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        let (id, seq) = (self.id, self.seq);
        self.seq += 1;
        self.db
            .run(move |c| Ok(imports::read_chunk(c, id, seq)?))
            .await
            .step("reading the stored upload")
    }

    /// Writes the header (with `reason`), or the record when its row is wanted.
    async fn write(&mut self, out: &mut csv::Writer<Vec<u8>>, record: Record) -> Result<()> {
        let Some(width) = self.width else {
            let replaces_reason = record
                .fields
                .iter()
                .next_back()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(REASON.as_bytes()));
            let width = Width {
                columns: record.fields.len() - usize::from(replaces_reason),
                replaces_reason,
            };
            self.width = Some(width);
            let header = line(&record.fields, width, Some(REASON));
            // Writing into a Vec cannot fail.
            let _ = out.write_record(header);
            return Ok(());
        };
        let row = record.row as i64;
        loop {
            if self.wanted.is_empty() && !self.next_page().await? {
                return Ok(());
            }
            match self.wanted.front() {
                Some((wanted, _)) if *wanted < row => {
                    self.wanted.pop_front();
                }
                Some((wanted, _)) if *wanted == row => break,
                _ => return Ok(()),
            }
        }
        let (_, reason) = self.wanted.pop_front().unwrap_or_default();
        let _ = out.write_record(line(&record.fields, width, reason.as_deref()));
        Ok(())
    }

    /// Reads the next page of wanted rows; false when there are no more.
    async fn next_page(&mut self) -> Result<bool> {
        let Some(after) = self.after else {
            return Ok(false);
        };
        let (id, outcomes) = (self.id, self.outcomes.clone());
        let page = self
            .db
            .run(move |c| Ok(imports::rows_with_outcomes(c, id, &outcomes, after, PAGE)?))
            .await
            .step("reading the import's row outcomes")?;
        self.after = (page.len() as i64 == PAGE)
            .then(|| page.last().map(|(row, _)| *row))
            .flatten();
        let more = !page.is_empty();
        self.wanted.extend(page);
        Ok(more)
    }
}

/// A cell as text (the stored upload is UTF-8; a corrupt byte shows as U+FFFD), neutralised.
fn cell(bytes: &[u8]) -> String {
    neutralise(&String::from_utf8_lossy(bytes)).into_owned()
}

/// A row's cells, padded to the header's width so that `reason` stays in its column, then the
/// reason.
fn line(fields: &ByteRecord, width: Width, reason: Option<&str>) -> Vec<String> {
    let mut cells: Vec<String> = fields.iter().map(cell).collect();
    if width.replaces_reason || cells.len() < width.columns {
        cells.resize(width.columns, String::new());
    }
    cells.push(neutralise(reason.unwrap_or_default()).into_owned());
    cells
}

/// Writes the file of rows to fix of `import` to `path`, creating its folder; false (and no
/// file) when the stored upload was deleted.
pub async fn write_file(
    db: &Db,
    import: &Import,
    outcomes: Vec<RowOutcome>,
    path: &Path,
) -> Result<bool> {
    let Some(mut rows) = RowsToFix::open(db, import, outcomes).await? else {
        return Ok(false);
    };
    let io = |source| ServiceError::File {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    while let Some(bytes) = rows.next().await? {
        file.write_all(&bytes).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_list_is_read_and_an_unknown_name_refused() {
        assert_eq!(
            parse_outcomes("invalid, skipped,invalid"),
            Ok(vec![RowOutcome::Invalid, RowOutcome::Skipped])
        );
        let refused = parse_outcomes("invalid,broken").unwrap_err();
        assert!(refused.contains("`broken`"), "{refused}");
        assert!(parse_outcomes("").is_err());
    }

    #[test]
    fn a_short_row_is_padded_so_the_reason_stays_in_its_column() {
        let fields = ByteRecord::from(vec!["=cmd", "x"]);
        let width = Width {
            columns: 3,
            replaces_reason: false,
        };
        assert_eq!(
            line(&fields, width, Some("role: unknown")),
            vec!["'=cmd", "x", "", "role: unknown"]
        );
    }

    #[test]
    fn the_reason_of_a_file_of_rows_to_fix_uploaded_again_is_replaced() {
        let fields = ByteRecord::from(vec!["ada@example.com", "Admin", "email: old"]);
        let width = Width {
            columns: 2,
            replaces_reason: true,
        };
        assert_eq!(
            line(&fields, width, Some("already_invited")),
            vec!["ada@example.com", "Admin", "already_invited"]
        );
    }
}

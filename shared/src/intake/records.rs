//! A streaming CSV record reader with hard size limits and spreadsheet row numbers.
//!
//! The stored file is fed in pieces of any size (a split may fall anywhere: inside a field, between
//! the `\r` and `\n` of a CRLF, inside a byte-order mark). Fields are parsed by `csv_core` with the
//! same dialect as [`crate::domain::header::reader_builder`], so for rows within the limits the
//! fields are exactly what the `csv` crate reads.
//!
//! # Row numbers
//!
//! Every line break outside quotes (LF, CRLF counted once, lone CR) ends a spreadsheet row. An empty
//! line is an empty row: it takes a number but yields no record (like the `csv` crate, which skips
//! it). Line breaks inside a quoted field do not end a row, so a multi-line record occupies one row.
//! A record's [`Record::row`] is the row it starts on.
//!
//! # `end` and checkpoints
//!
//! [`Record::end`] is the number of input bytes from this reader's start up to and including the
//! record's *whole* terminator: for a CRLF that is after the `\n`. So a record ending in `\r` is held
//! back until the next byte is seen (the next [`RecordReader::feed`] or [`RecordReader::finish`]),
//! to learn whether a `\n` belongs to it. A reader created with `first_row = record.row + 1` and fed
//! the input from `record.end` on yields the same later records, with `end` shifted by `record.end`.
//! The last record of an input without a final line break ends at the end of the input.
//!
//! # Limits
//!
//! No more than the limits is ever held, however long a cell or row is:
//!
//! - a cell keeps at most [`MAX_CELL_BYTES`] bytes; the rest of it is read and dropped;
//! - a record keeps at most [`MAX_ROW_BYTES`] bytes in all; once it has, the rest of its fields are
//!   still listed (empty or cut short) so that the columns keep their positions;
//! - only the first [`MAX_COLUMNS`] fields are listed; later fields are dropped, which alone is not
//!   an [`Oversize`], but their bytes still count towards the row limit.
//!
//! A record breaks the row limit when its field bytes, every byte of every field whether kept or
//! not, pass [`MAX_ROW_BYTES`]. The bytes an oversized cell drops use none of the record's budget,
//! so the cells after it (the email, say, that names the row in the results) are still kept.
//!
//! [`Record::oversize`] names the limit that was broken first, in input order: the cell limit at a
//! cell's `MAX_CELL_BYTES + 1`-th byte (in any column, listed or not), the row limit at the record's
//! `MAX_ROW_BYTES + 1`-th field byte; if one byte breaks both, the cell is named.

use csv::ByteRecord;
use csv_core::{ReadFieldResult, Reader, ReaderBuilder, Terminator};

/// Most bytes of one cell that are kept; a longer cell makes its record [`Oversize::Cell`].
pub const MAX_CELL_BYTES: usize = 64 * 1024;

/// Most field bytes of one record; a longer record is [`Oversize::Row`].
pub const MAX_ROW_BYTES: usize = 1024 * 1024;

/// Most fields of one record that are kept; later ones are dropped.
pub const MAX_COLUMNS: usize = 256;

/// The UTF-8 byte-order mark some exports start with.
const UTF8_BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// Size of the buffer that bytes past a limit are parsed into and dropped from.
const DISCARD_BYTES: usize = 16 * 1024;

/// Which limit a record broke (the first one it broke).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// A cell is longer than [`MAX_CELL_BYTES`]; only its first `MAX_CELL_BYTES` bytes are kept.
    Cell {
        /// The cell's column, counted from 0.
        column: usize,
    },
    /// The record's fields together are longer than [`MAX_ROW_BYTES`].
    Row,
}

/// One CSV record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Spreadsheet row number of the record's first line.
    pub row: u64,
    /// The field contents, unquoted; cut to the limits when `oversize` is set.
    pub fields: ByteRecord,
    /// Bytes of input consumed from this reader's start through this record's whole terminator
    /// (after the `\n` of a CRLF).
    pub end: u64,
    /// The limit the record broke first, if any.
    pub oversize: Option<Oversize>,
}

/// The limits a reader enforces; the public constructor uses the `MAX_*` constants.
#[derive(Debug, Clone, Copy)]
struct Limits {
    cell: usize,
    row: usize,
    columns: usize,
}

/// The limits of the public API.
const LIMITS: Limits = Limits {
    cell: MAX_CELL_BYTES,
    row: MAX_ROW_BYTES,
    columns: MAX_COLUMNS,
};

/// The record being read.
#[derive(Debug, Default)]
struct Partial {
    /// The fields listed so far.
    fields: ByteRecord,
    /// Index of the current field.
    column: usize,
    /// Content bytes of the current field so far.
    field_len: usize,
    /// How many of those are kept in the cell buffer.
    kept: usize,
    /// Content bytes of the whole record so far.
    total: usize,
    /// The first limit broken.
    oversize: Option<Oversize>,
}

/// Reads records from a CSV stream fed in pieces; see the module documentation.
pub struct RecordReader {
    /// The field parser.
    core: Reader,
    limits: Limits,
    /// Row number of the line being read.
    row: u64,
    /// Bytes consumed since this reader's start.
    offset: u64,
    /// At the file's start: how many bytes of a byte-order mark have been seen so far.
    bom_matched: Option<usize>,
    /// Whether `core` is inside a record (else at a record boundary, skipping line breaks).
    in_record: bool,
    /// Whether the last byte was a `\r` ending a line, so that a `\n` now completes a CRLF.
    pending_cr: bool,
    /// A record ended by `\r`, waiting to learn whether a `\n` follows.
    held: Option<Record>,
    /// The kept bytes of the current field.
    cell: Vec<u8>,
    /// Where bytes past a limit are parsed to and dropped.
    discard: Vec<u8>,
    partial: Partial,
}

impl RecordReader {
    /// `first_row`: the row number of the first line this reader sees; `at_file_start`: strip a
    /// UTF-8 BOM (EF BB BF) if the input starts with one (its bytes still count in `end`).
    pub fn new(delimiter: u8, first_row: u64, at_file_start: bool) -> RecordReader {
        RecordReader::with_limits(delimiter, first_row, at_file_start, LIMITS)
    }

    /// A reader enforcing `limits` instead of the `MAX_*` constants (tests use small ones).
    fn with_limits(
        delimiter: u8,
        first_row: u64,
        at_file_start: bool,
        limits: Limits,
    ) -> RecordReader {
        RecordReader {
            core: core_reader(delimiter),
            limits,
            row: first_row,
            offset: 0,
            bom_matched: at_file_start.then_some(0),
            in_record: false,
            pending_cr: false,
            held: None,
            cell: vec![0; limits.cell],
            discard: vec![0; DISCARD_BYTES],
            partial: Partial::default(),
        }
    }

    /// Parses all of `input` (any split of the stream is allowed, even mid-field, mid-CRLF,
    /// mid-BOM), appending every completed record to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Record>) {
        let input = self.strip_bom(input, out);
        self.parse(input, out);
    }

    /// End of input: appends the last record if the input did not end with a terminator (and a
    /// record held back for a possible CRLF).
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        if let Some(matched) = self.bom_matched.take() {
            self.parse(&UTF8_BOM[..matched], out);
        }
        if self.in_record {
            // An empty input makes csv_core end the open record.
            self.read_field(&[], out);
        }
        self.release_held(out);
    }

    /// Skips a byte-order mark at the file's start, which may arrive split over several pieces.
    /// Returns the rest of `input`.
    fn strip_bom<'a>(&mut self, input: &'a [u8], out: &mut Vec<Record>) -> &'a [u8] {
        let Some(matched) = self.bom_matched else {
            return input;
        };
        let rest = &UTF8_BOM[matched..];
        let n = rest.len().min(input.len());
        if input[..n] != rest[..n] {
            // Not a BOM: the bytes held back are data.
            self.bom_matched = None;
            self.parse(&UTF8_BOM[..matched], out);
            return input;
        }
        if matched + n == UTF8_BOM.len() {
            self.bom_matched = None;
            self.offset += UTF8_BOM.len() as u64;
        } else {
            self.bom_matched = Some(matched + n);
        }
        &input[n..]
    }

    /// Parses all of `input`.
    fn parse(&mut self, input: &[u8], out: &mut Vec<Record>) {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            pos += if self.in_record {
                self.read_field(rest, out)
            } else {
                self.skip_line_breaks(rest, out)
            };
        }
    }

    /// At a record boundary: counts the line breaks of empty lines (and the `\n` completing a
    /// record's CRLF) until the next record starts. Returns the bytes consumed.
    fn skip_line_breaks(&mut self, input: &[u8], out: &mut Vec<Record>) -> usize {
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' && self.pending_cr {
                // The LF of a CRLF: part of the line break already counted.
                self.pending_cr = false;
                self.offset += 1;
                if let Some(record) = self.held.as_mut() {
                    record.end = self.offset;
                }
                self.release_held(out);
                continue;
            }
            self.release_held(out);
            if b != b'\r' && b != b'\n' {
                self.pending_cr = false;
                self.in_record = true;
                return i;
            }
            self.row += 1;
            self.offset += 1;
            self.pending_cr = b == b'\r';
        }
        input.len()
    }

    /// Parses (at most) the rest of one field. An empty `input` means the end of input. Returns the
    /// bytes consumed.
    fn read_field(&mut self, input: &[u8], out: &mut Vec<Record>) -> usize {
        let allowance = self.allowance();
        let output = if allowance > 0 {
            let kept = self.partial.kept;
            &mut self.cell[kept..kept + allowance]
        } else {
            &mut self.discard[..]
        };
        let (result, nin, nout) = self.core.read_field(input, output);
        if allowance > 0 {
            self.partial.kept += nout;
        }
        self.offset += nin as u64;
        self.count(nout);
        if let ReadFieldResult::Field { record_end } = result {
            self.end_field();
            if record_end {
                self.end_record(input[..nin].last().copied(), out);
            }
        }
        nin
    }

    /// How many more bytes of the current field may be kept.
    fn allowance(&self) -> usize {
        let p = &self.partial;
        if p.column >= self.limits.columns {
            return 0;
        }
        let cell = self.limits.cell.saturating_sub(p.field_len);
        let row = self
            .limits
            .row
            .saturating_sub(p.fields.as_slice().len() + p.kept);
        debug_assert!(cell == 0 || row == 0 || p.kept == p.field_len);
        cell.min(row)
    }

    /// Counts `n` more content bytes of the current field, noting the first limit they break.
    fn count(&mut self, n: usize) {
        let p = &mut self.partial;
        if p.oversize.is_none() {
            p.oversize = first_broken(&self.limits, p, n);
        }
        p.field_len = p.field_len.saturating_add(n);
        p.total = p.total.saturating_add(n);
    }

    /// Lists the field just parsed (if within the column limit) and moves to the next one.
    fn end_field(&mut self) {
        let p = &mut self.partial;
        if p.column < self.limits.columns {
            p.fields.push_field(&self.cell[..p.kept]);
        }
        p.column += 1;
        p.field_len = 0;
        p.kept = 0;
    }

    /// Completes the record ended by `terminator` (`None` at the end of input).
    fn end_record(&mut self, terminator: Option<u8>, out: &mut Vec<Record>) {
        let record = self.take_record();
        self.in_record = false;
        match terminator {
            Some(b'\r') => {
                self.row += 1;
                self.pending_cr = true;
                self.held = Some(record);
            }
            Some(_) => {
                self.row += 1;
                out.push(record);
            }
            None => out.push(record),
        }
    }

    /// Makes the record read so far, leaving room for the next one.
    fn take_record(&mut self) -> Record {
        let p = &mut self.partial;
        let next = ByteRecord::with_capacity(p.fields.as_slice().len(), p.fields.len());
        let record = Record {
            row: self.row,
            fields: std::mem::replace(&mut p.fields, next),
            end: self.offset,
            oversize: p.oversize.take(),
        };
        p.column = 0;
        p.total = 0;
        record
    }

    /// Hands out the record held back for a possible CRLF.
    fn release_held(&mut self, out: &mut Vec<Record>) {
        if let Some(record) = self.held.take() {
            out.push(record);
        }
    }
}

/// A `csv_core` reader for the dialect of [`crate::domain::header::reader_builder`].
fn core_reader(delimiter: u8) -> Reader {
    let mut core = ReaderBuilder::new()
        .delimiter(delimiter)
        .quote(b'"')
        .quoting(true)
        .double_quote(true)
        .escape(None)
        .comment(None)
        .terminator(Terminator::CRLF)
        .build();
    // csv_core strips a BOM from the first input it sees; this reader strips it itself, only at
    // the file's start. A call with no room for output reads nothing but counts as that first one.
    let _ = core.read_field(b" ", &mut []);
    core
}

/// The first limit broken by `n` more bytes of the current field, if any.
fn first_broken(limits: &Limits, p: &Partial, n: usize) -> Option<Oversize> {
    // Index (within the `n` bytes) of the byte that breaks each limit.
    let cell = (p.field_len.saturating_add(n) > limits.cell)
        .then(|| limits.cell.saturating_sub(p.field_len));
    let row = (p.total.saturating_add(n) > limits.row).then(|| limits.row.saturating_sub(p.total));
    match (cell, row) {
        (Some(c), Some(r)) if r < c => Some(Oversize::Row),
        (Some(_), _) => Some(Oversize::Cell { column: p.column }),
        (None, Some(_)) => Some(Oversize::Row),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::header::reader_builder;
    use proptest::prelude::*;
    use proptest::sample::{Index, select};

    /// Reads `input` split into pieces at `cuts` (offsets, any order), with the given limits.
    fn read_limited(
        input: &[u8],
        delimiter: u8,
        first_row: u64,
        at_file_start: bool,
        cuts: &[usize],
        limits: Limits,
    ) -> Vec<Record> {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
        cuts.sort_unstable();
        let mut reader = RecordReader::with_limits(delimiter, first_row, at_file_start, limits);
        let mut out = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            reader.feed(&input[start..cut], &mut out);
            start = cut;
        }
        reader.finish(&mut out);
        out
    }

    /// Reads a whole file in one piece.
    fn read(input: &[u8], delimiter: u8) -> Vec<Record> {
        read_limited(input, delimiter, 1, true, &[], LIMITS)
    }

    /// Each record as (row, fields as text).
    fn summary(records: &[Record]) -> Vec<(u64, Vec<String>)> {
        records
            .iter()
            .map(|r| {
                let fields = r.fields.iter().map(|f| String::from_utf8_lossy(f).into());
                (r.row, fields.collect())
            })
            .collect()
    }

    fn rows(input: &str) -> Vec<(u64, Vec<String>)> {
        summary(&read(input.as_bytes(), b','))
    }

    fn row(n: u64, fields: &[&str]) -> (u64, Vec<String>) {
        (n, fields.iter().map(|f| f.to_string()).collect())
    }

    fn ends(input: &str) -> Vec<u64> {
        read(input.as_bytes(), b',').iter().map(|r| r.end).collect()
    }

    #[test]
    fn lf_lines() {
        assert_eq!(
            rows("a,b\nc,d\n"),
            [row(1, &["a", "b"]), row(2, &["c", "d"])]
        );
        assert_eq!(ends("a,b\nc,d\n"), [4, 8]);
    }

    #[test]
    fn crlf_lines_end_after_the_lf() {
        assert_eq!(
            rows("a,b\r\nc,d\r\n"),
            [row(1, &["a", "b"]), row(2, &["c", "d"])]
        );
        assert_eq!(ends("a,b\r\nc,d\r\n"), [5, 10]);
    }

    #[test]
    fn lone_cr_lines() {
        assert_eq!(
            rows("a\rb\r\rc"),
            [row(1, &["a"]), row(2, &["b"]), row(4, &["c"])]
        );
        assert_eq!(ends("a\rb\r\rc"), [2, 4, 6]);
    }

    #[test]
    fn empty_lines_take_row_numbers() {
        assert_eq!(rows("\n\na\n"), [row(3, &["a"])]);
        assert_eq!(rows("a\n\nb\n"), [row(1, &["a"]), row(3, &["b"])]);
        assert_eq!(rows("a\n\n\n\n"), [row(1, &["a"])]);
        assert_eq!(
            rows("\r\na\r\n\r\n\r\n\nb\r\n\r\n"),
            [row(2, &["a"]), row(6, &["b"])]
        );
        assert_eq!(rows("\n\r\n\r"), []);
    }

    #[test]
    fn example_from_the_brief() {
        assert_eq!(
            rows("h\n\na,\"x\ny\"\nb\r\n\r\nc"),
            [
                row(1, &["h"]),
                row(3, &["a", "x\ny"]),
                row(4, &["b"]),
                row(6, &["c"])
            ]
        );
    }

    #[test]
    fn multi_line_quoted_cells_take_one_row() {
        assert_eq!(
            rows("\"a\nb\",c\n\"d\r\ne\r\n\"\nf\n\"\r\"\n"),
            [
                row(1, &["a\nb", "c"]),
                row(2, &["d\r\ne\r\n"]),
                row(3, &["f"]),
                row(4, &["\r"])
            ]
        );
    }

    #[test]
    fn quoted_delimiters_and_doubled_quotes() {
        assert_eq!(
            rows("\"a,b\",\"say \"\"hi\"\"\",\"\"\nx\"y,\"q\"z\n"),
            [row(1, &["a,b", "say \"hi\"", ""]), row(2, &["x\"y", "qz"])]
        );
    }

    #[test]
    fn bom_before_a_quoted_first_cell() {
        let input = b"\xEF\xBB\xBF\"Email\",Name\r\nx@y,z\r\n";
        let expected = [row(1, &["Email", "Name"]), row(2, &["x@y", "z"])];
        for cut in 0..input.len() {
            let records = read_limited(input, b',', 1, true, &[cut], LIMITS);
            assert_eq!(summary(&records), expected, "cut at {cut}");
            assert_eq!(records[0].end, 17);
        }
        let kept = read_limited(input, b',', 1, false, &[], LIMITS);
        assert_eq!(kept[0].fields.get(0), Some(&b"\xEF\xBB\xBF\"Email\""[..]));
    }

    #[test]
    fn partial_bom_is_data() {
        let records = read_limited(b"\xEF\xBBa\n", b',', 1, true, &[1, 2], LIMITS);
        assert_eq!(records[0].fields.get(0), Some(&b"\xEF\xBBa"[..]));
        let records = read_limited(b"\xEF\xBB", b',', 1, true, &[1], LIMITS);
        assert_eq!(records[0].fields.get(0), Some(&b"\xEF\xBB"[..]));
    }

    #[test]
    fn no_final_line_break() {
        assert_eq!(rows("a\nb,c"), [row(1, &["a"]), row(2, &["b", "c"])]);
        assert_eq!(ends("a\nb,c"), [2, 5]);
        assert_eq!(rows("a,"), [row(1, &["a", ""])]);
        assert_eq!(rows("\"a"), [row(1, &["a"])]);
    }

    #[test]
    fn semicolon_and_tab_delimiters() {
        let semi = read(b"a;b,c;\"d;e\"\n", b';');
        assert_eq!(summary(&semi), [row(1, &["a", "b,c", "d;e"])]);
        let tab = read(b"a\tb c\t\"d\te\"\n", b'\t');
        assert_eq!(summary(&tab), [row(1, &["a", "b c", "d\te"])]);
    }

    #[test]
    fn cr_at_the_end_of_a_piece_is_held_for_its_lf() {
        let mut reader = RecordReader::new(b',', 1, false);
        let mut out = Vec::new();
        reader.feed(b"a\r", &mut out);
        assert!(out.is_empty());
        reader.feed(b"\nb\r", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end, 3);
        reader.feed(b"c", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].end, 5);
        reader.finish(&mut out);
        assert_eq!(
            summary(&out),
            [row(1, &["a"]), row(2, &["b"]), row(3, &["c"])]
        );
        let mut out = Vec::new();
        let mut reader = RecordReader::new(b',', 1, false);
        reader.feed(b"a\r", &mut out);
        reader.finish(&mut out);
        assert_eq!(out[0].end, 2);
    }

    #[test]
    fn resume_after_crlf() {
        let input = b"h\r\na\r\n\r\nb\r\n";
        let all = read(input, b',');
        assert_eq!(all[1].end, 6);
        let resumed = read_limited(&input[6..], b',', all[1].row + 1, false, &[], LIMITS);
        assert_eq!(summary(&resumed), [row(4, &["b"])]);
        assert_eq!(resumed[0].end + 6, all[2].end);
    }

    #[test]
    fn cell_of_exactly_the_limit_is_kept() {
        let cell = "x".repeat(MAX_CELL_BYTES);
        let records = read(format!("{cell},b\n").as_bytes(), b',');
        assert_eq!(records[0].oversize, None);
        assert_eq!(records[0].fields.get(0), Some(cell.as_bytes()));
        assert_eq!(records[0].fields.get(1), Some(&b"b"[..]));
    }

    #[test]
    fn cell_over_the_limit_keeps_a_prefix() {
        let cell = "x".repeat(MAX_CELL_BYTES) + "y";
        let records = read(format!("a,{cell},b\nc\n").as_bytes(), b',');
        assert_eq!(records[0].oversize, Some(Oversize::Cell { column: 1 }));
        assert_eq!(
            records[0].fields.get(1),
            Some(&cell.as_bytes()[..MAX_CELL_BYTES])
        );
        assert_eq!(records[0].fields.get(2), Some(&b"b"[..]));
        assert_eq!(summary(&records[1..]), [row(2, &["c"])]);
    }

    #[test]
    fn quoted_oversize_cell_then_a_normal_row() {
        let filler = "ab,\"\"c\r\nd\ne;\t".repeat(MAX_CELL_BYTES / 8);
        let input = format!("h\n\"{filler}\",x\n\nnext,\"ok\"\n");
        for cuts in [vec![], vec![5, 1000, 70_000, input.len() - 3]] {
            let records = read_limited(input.as_bytes(), b',', 1, true, &cuts, LIMITS);
            assert_eq!(records.len(), 3);
            assert_eq!(records[1].row, 2);
            assert_eq!(records[1].oversize, Some(Oversize::Cell { column: 0 }));
            let kept = records[1].fields.get(0).unwrap_or_default();
            assert_eq!(
                kept,
                &filler.replace("\"\"", "\"").as_bytes()[..MAX_CELL_BYTES]
            );
            assert_eq!(records[1].fields.get(1), Some(&b"x"[..]));
            assert_eq!(summary(&records[2..]), [row(4, &["next", "ok"])]);
        }
    }

    #[test]
    fn row_of_many_small_fields_is_oversize() {
        let field = "y".repeat(1000);
        let fields = vec![field.as_str(); 1100];
        let input = format!("{}\nz\n", fields.join(","));
        let records = read(input.as_bytes(), b',');
        assert_eq!(records[0].oversize, Some(Oversize::Row));
        assert_eq!(records[0].fields.len(), MAX_COLUMNS);
        assert_eq!(records[0].fields.as_slice().len(), 256 * 1000);
        let cut = read_limited(
            input.as_bytes(),
            b',',
            1,
            true,
            &[],
            Limits {
                row: 2500,
                ..LIMITS
            },
        );
        assert_eq!(cut[0].fields.get(1).map(<[u8]>::len), Some(1000));
        assert_eq!(cut[0].fields.get(2).map(<[u8]>::len), Some(500));
        assert_eq!(cut[0].fields.get(3).map(<[u8]>::len), Some(0));
        assert_eq!(summary(&records[1..]), [row(2, &["z"])]);
    }

    #[test]
    fn fields_past_the_column_limit_are_dropped() {
        let input = format!("{}\nz\n", vec!["c"; MAX_COLUMNS + 10].join(","));
        let records = read(input.as_bytes(), b',');
        assert_eq!(records[0].fields.len(), MAX_COLUMNS);
        assert_eq!(records[0].oversize, None);
        assert_eq!(summary(&records[1..]), [row(2, &["z"])]);
    }

    #[test]
    fn huge_cell_in_pieces() {
        // 150 MB with optimizations; the unoptimized parser is too slow for that in a unit test.
        let cell_bytes: usize = if cfg!(debug_assertions) {
            20 << 20
        } else {
            150_000_000
        };
        let mut reader = RecordReader::new(b',', 1, true);
        let mut out = Vec::new();
        reader.feed(b"a,b\r\n1,\"", &mut out);
        let piece = b"lorem, \"\"ipsum\"\"\r\n dolor ".repeat((1 << 20) / 26);
        let mut sent = 0;
        while sent < cell_bytes {
            reader.feed(&piece, &mut out);
            sent += piece.len();
            assert!(
                out.iter()
                    .all(|r| r.fields.as_slice().len() <= MAX_ROW_BYTES)
            );
        }
        reader.feed(b"\",2\r\n3,4", &mut out);
        reader.finish(&mut out);
        assert_eq!(summary(&out[..1]), [row(1, &["a", "b"])]);
        assert_eq!(out[1].row, 2);
        assert_eq!(out[1].oversize, Some(Oversize::Cell { column: 1 }));
        assert_eq!(out[1].fields.get(1).map(<[u8]>::len), Some(MAX_CELL_BYTES));
        // The bytes the cell dropped take none of the row's budget: later cells are kept.
        assert_eq!(out[1].fields.get(2), Some(&b"2"[..]));
        assert_eq!(summary(&out[2..]), [row(3, &["3", "4"])]);
    }

    /// Run with `cargo test --release -p invite-shared --lib records::tests::throughput --
    /// --ignored --nocapture`.
    #[test]
    #[ignore = "timing; run in release"]
    fn throughput() {
        let line = b"Ada,Lovelace,ada.lovelace@example.com,member,Engineering|Research,\"{\"\"k\"\":1}\"\r\n";
        let input = line.repeat((200 << 20) / line.len());
        let start = std::time::Instant::now();
        let mut reader = RecordReader::new(b',', 1, true);
        let mut out = Vec::new();
        let mut n = 0;
        for piece in input.chunks(1 << 20) {
            reader.feed(piece, &mut out);
            n += out.len();
            out.clear();
        }
        reader.finish(&mut out);
        n += out.len();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(n, input.len() / line.len());
        println!("{:.0} MB/s, {n} records", input.len() as f64 / secs / 1e6);
    }

    // ---- properties ----

    const ALPHABET: &[u8] = b",;\t\"\r\nab \xEF\xBB\xBF";

    fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![8 => select(ALPHABET), 2 => select(&b"xyz"[..]), 1 => any::<u8>()];
        (any::<bool>(), prop::collection::vec(byte, 0..160)).prop_map(|(bom, mut bytes)| {
            if bom {
                bytes.splice(0..0, UTF8_BOM.iter().copied());
            }
            bytes
        })
    }

    fn delimiter() -> impl Strategy<Value = u8> {
        select(&b",;\t"[..])
    }

    fn cuts() -> impl Strategy<Value = Vec<Index>> {
        prop::collection::vec(any::<Index>(), 0..8)
    }

    fn offsets(cuts: &[Index], len: usize) -> Vec<usize> {
        cuts.iter().map(|c| c.index(len + 1)).collect()
    }

    /// Small limits, so that generated inputs break them.
    const TINY: Limits = Limits {
        cell: 3,
        row: 8,
        columns: 2,
    };

    /// Where the reference model is in the input.
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        LineStart,
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }

    /// The state after `b` at the start of a field.
    fn field_start(b: u8, delimiter: u8) -> At {
        match b {
            b'"' => At::Quoted,
            _ if b == delimiter => At::FieldStart,
            _ => At::Unquoted,
        }
    }

    /// The row of every record, by a byte-at-a-time model of the dialect: a quote opens a quoted
    /// part only at a field's start, `""` inside it is a quote, and a line break outside quotes
    /// ends a row, a CRLF counting once.
    fn reference_rows(input: &[u8], delimiter: u8) -> Vec<u64> {
        let input = input.strip_prefix(UTF8_BOM).unwrap_or(input);
        let (mut rows, mut row, mut at, mut after_cr) = (Vec::new(), 1, At::LineStart, false);
        for &b in input {
            let was_cr = std::mem::take(&mut after_cr);
            let crlf = b == b'\n' && was_cr;
            at = match at {
                At::Quoted if b == b'"' => At::QuoteInQuoted,
                At::Quoted => At::Quoted,
                At::QuoteInQuoted if b == b'"' => At::Quoted,
                _ if b == b'\r' || b == b'\n' => {
                    row += u64::from(!crlf);
                    after_cr = b == b'\r';
                    At::LineStart
                }
                At::LineStart => {
                    rows.push(row);
                    field_start(b, delimiter)
                }
                At::FieldStart => field_start(b, delimiter),
                _ if b == delimiter => At::FieldStart,
                _ => At::Unquoted,
            };
        }
        rows
    }

    /// What the limits make of a whole record, byte by byte: (kept fields, first limit broken).
    fn reference_limits(full: &ByteRecord, limits: Limits) -> (Vec<Vec<u8>>, Option<Oversize>) {
        let (mut kept, mut oversize, mut total, mut kept_total) = (Vec::new(), None, 0, 0);
        for (column, field) in full.iter().enumerate() {
            let mut cell = Vec::new();
            for (i, &b) in field.iter().enumerate() {
                total += 1;
                let (cell_over, row_over) = (i + 1 > limits.cell, total > limits.row);
                if oversize.is_none() && cell_over {
                    oversize = Some(Oversize::Cell { column });
                } else if oversize.is_none() && row_over {
                    oversize = Some(Oversize::Row);
                }
                if !cell_over && column < limits.columns && kept_total < limits.row {
                    cell.push(b);
                    kept_total += 1;
                }
            }
            if column < limits.columns {
                kept.push(cell);
            }
        }
        (kept, oversize)
    }

    fn csv_crate_records(input: &[u8], delimiter: u8) -> Vec<ByteRecord> {
        let mut reader = reader_builder(delimiter).from_reader(input);
        reader
            .byte_records()
            .map(|r| r.expect("in-memory CSV"))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn any_split_reads_the_same(input in csv_bytes(), delim in delimiter(), cuts in cuts()) {
            let whole = read(&input, delim);
            let split = read_limited(&input, delim, 1, true, &offsets(&cuts, input.len()), LIMITS);
            prop_assert_eq!(&split, &whole);
            let whole = read_limited(&input, delim, 1, true, &[], TINY);
            let split = read_limited(&input, delim, 1, true, &offsets(&cuts, input.len()), TINY);
            prop_assert_eq!(split, whole);
        }

        #[test]
        fn fields_match_the_csv_crate(input in csv_bytes(), delim in delimiter()) {
            let ours = read(&input, delim);
            prop_assert!(ours.iter().all(|r| r.oversize.is_none()));
            let fields: Vec<ByteRecord> = ours.into_iter().map(|r| r.fields).collect();
            prop_assert_eq!(fields, csv_crate_records(&input, delim));
        }

        #[test]
        fn resuming_at_any_end_reads_the_same(
            input in csv_bytes(),
            delim in delimiter(),
            cuts in cuts(),
            tiny in any::<bool>(),
        ) {
            let limits = if tiny { TINY } else { LIMITS };
            let all = read_limited(&input, delim, 1, true, &[], limits);
            for (i, at) in all.iter().enumerate() {
                let rest = &input[at.end as usize..];
                let cuts = offsets(&cuts, rest.len());
                let resumed = read_limited(rest, delim, at.row + 1, false, &cuts, limits);
                let expected: Vec<Record> = all[i + 1..]
                    .iter()
                    .map(|r| Record { end: r.end - at.end, ..r.clone() })
                    .collect();
                prop_assert_eq!(resumed, expected, "resumed after record {}", i);
            }
        }

        #[test]
        fn rows_match_the_reference(input in csv_bytes(), delim in delimiter()) {
            let rows: Vec<u64> = read(&input, delim).iter().map(|r| r.row).collect();
            prop_assert_eq!(rows, reference_rows(&input, delim));
        }

        #[test]
        fn limits_match_the_reference(input in csv_bytes(), delim in delimiter(), cuts in cuts()) {
            let ours = read_limited(&input, delim, 1, true, &offsets(&cuts, input.len()), TINY);
            let full = csv_crate_records(&input, delim);
            prop_assert_eq!(ours.len(), full.len());
            for (record, full) in ours.iter().zip(&full) {
                let (kept, oversize) = reference_limits(full, TINY);
                let fields: Vec<Vec<u8>> = record.fields.iter().map(<[u8]>::to_vec).collect();
                prop_assert_eq!(fields, kept);
                prop_assert_eq!(record.oversize, oversize);
            }
        }
    }
}

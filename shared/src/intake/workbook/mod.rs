//! The first sheet of a workbook (.xlsx, .ods or legacy .xls) as UTF-8 CSV, so that a workbook is
//! stored, read and numbered exactly like a CSV upload.
//!
//! calamine reads a whole sheet into memory (and .xlsx shared strings and .ods content as a whole),
//! and reserves memory for what a file declares. So [`to_csv`] first checks those declarations
//! against [`WorkbookLimits`] ([`declared`]), caps what it writes, and the API and the CLI run it
//! in a child process under a memory and time limit ([`child`]), where an allocation failure ends
//! the child and fails the upload, never the server.

pub mod child;
pub mod declared;
#[cfg(test)]
mod properties;

use std::borrow::Cow;
use std::fmt::Display;
use std::io::{Read, Seek, Write};

use calamine::{Data, ExcelDateTime, Ods, Range, Reader, SheetType, Xls, Xlsx};
use chrono::{DurationRound, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};

/// Seconds in a day, to turn spreadsheet day fractions into clock times.
const DAY_SECONDS: f64 = 86_400.0;

/// How large a workbook may be, beyond its size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkbookLimits {
    /// Most data rows in the first sheet (`MAX_ROWS`).
    pub max_rows: u64,
    /// Most cells a workbook may declare: shared strings, a sheet's extent, expanded `.ods`
    /// repeats (`MAX_WORKBOOK_CELLS`).
    pub max_cells: u64,
    /// Most bytes the ZIP container may unpack to (`MAX_WORKBOOK_UNPACKED_BYTES`).
    pub max_unpacked_bytes: u64,
    /// Most bytes of CSV the conversion may write (the smaller of `MAX_WORKBOOK_UNPACKED_BYTES`
    /// and `MAX_UPLOAD_BYTES`).
    pub max_csv_bytes: u64,
}

/// The container formats a workbook can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Office Open XML (Excel 2007 and later).
    Xlsx,
    /// OpenDocument spreadsheet (LibreOffice).
    Ods,
    /// Legacy Excel (BIFF in an OLE2 compound file).
    Xls,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Xlsx => "xlsx",
            Format::Ods => "ods",
            Format::Xls => "xls",
        })
    }
}

/// What [`to_csv`] converted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Converted {
    /// The workbook's format.
    pub format: Format,
    /// The name of the sheet that was read.
    pub sheet: String,
    /// Sheet rows written from the first non-empty one (the header) to the last non-empty one,
    /// empty rows among them included; the empty lines written above the header are not counted.
    pub rows: u64,
}

/// Why a workbook cannot be converted; the messages are shown to the admin as they are.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum WorkbookError {
    /// A ZIP or OLE2 file that none of the supported workbook formats opens.
    #[error(
        "The file is a ZIP or OLE2 archive but not an .xlsx, .ods or .xls workbook that can be read. Save the spreadsheet as .xlsx or as CSV and upload it again."
    )]
    NotAWorkbook,
    /// The workbook has no worksheet.
    #[error(
        "The workbook has no worksheet. Put the people to invite on its first sheet and upload it again."
    )]
    NoSheet,
    /// The first sheet has more data rows than one import may have.
    #[error(
        "The workbook's first sheet has more than {limit} data rows; the most one import may have is {limit} (MAX_ROWS). Split the sheet and upload the parts."
    )]
    TooManyRows {
        /// The most data rows allowed.
        limit: u64,
    },
    /// The workbook declares, unpacks to or converts to more than the limits allow.
    #[error("{reason}. Save the sheet as CSV and upload that instead.")]
    TooLarge {
        /// What it declares and the limit, in words.
        reason: String,
    },
    /// The conversion needed more memory or time than one conversion is given.
    #[error(
        "The workbook could not be converted within the {memory_mib} MiB of memory and {seconds} s that one workbook may take (WORKBOOK_CONVERSION_MEMORY, WORKBOOK_CONVERSION_TIMEOUT). Save the sheet as CSV and upload that instead."
    )]
    Exhausted {
        /// The memory limit in MiB.
        memory_mib: u64,
        /// The time limit in seconds.
        seconds: u64,
    },
    /// The workbook opened but its sheet could not be read (or the CSV could not be written).
    #[error(
        "The workbook could not be read ({0}). Open it in your spreadsheet application, save it again as .xlsx or as CSV, and upload that."
    )]
    Unreadable(String),
}

/// Reads the first sheet and writes it as UTF-8, comma-separated CSV (RFC 4180 quoting by the csv
/// crate's `Writer`, LF line ends), one line per sheet row so that CSV line numbers equal the row
/// numbers the spreadsheet shows: rows above the first non-empty row are written as empty lines,
/// and every row from there on to the last non-empty one is written (a completely empty row as an
/// empty line). Empty columns left of the first used column are left out. Fails with
/// [`WorkbookError::TooManyRows`] if the sheet has more than `max_data_rows + 1` rows from its
/// first non-empty row, before writing anything.
///
/// The format is found by trying .xlsx, then .ods, then .xls; the sheet read is the first
/// worksheet in workbook order. Cells are written as:
///
/// - strings as they are; empty cells as empty fields;
/// - numbers as their plain text: whole floats without decimals (`3.0` as `3`), other floats in
///   their shortest round-trip form (`2.5`), integers as they are;
/// - booleans as `TRUE` or `FALSE`; errors as their Excel text (`#N/A`, `#DIV/0!`…);
/// - dates as `YYYY-MM-DD`, or `YYYY-MM-DD HH:MM:SS` when the time is not midnight; a time of day
///   without a date (an .xlsx serial below 1, an .ods time) and durations as `HH:MM:SS` (hours
///   may pass 24).
///
/// Declarations beyond `limits` are refused before calamine reads the file ([`declared::check`]),
/// and so is CSV beyond `limits.max_csv_bytes` (a shared string repeated in many cells writes more
/// than the workbook unpacks to). calamine still reads the whole sheet into memory: run this where
/// memory is bounded ([`child`]).
pub fn to_csv(
    mut input: impl Read + Seek,
    output: &mut impl Write,
    limits: &WorkbookLimits,
) -> Result<Converted, WorkbookError> {
    declared::check(&mut input, limits)?;
    if let Some(workbook) = open::<Xlsx<_>, _>(&mut input)? {
        return convert(workbook, Format::Xlsx, output, limits);
    }
    if let Some(workbook) = open::<Ods<_>, _>(&mut input)? {
        return convert(workbook, Format::Ods, output, limits);
    }
    if let Some(workbook) = open::<Xls<_>, _>(&mut input)? {
        return convert(workbook, Format::Xls, output, limits);
    }
    Err(WorkbookError::NotAWorkbook)
}

/// Opens `input` from its start as a workbook of type `W`; `None` if it is not one.
fn open<W, RS>(mut input: RS) -> Result<Option<W>, WorkbookError>
where
    RS: Read + Seek,
    W: Reader<RS>,
{
    input.rewind().map_err(unreadable)?;
    Ok(W::new(input).ok())
}

/// Reads the first worksheet of an opened workbook and writes it as CSV.
fn convert<W, RS>(
    mut workbook: W,
    format: Format,
    output: &mut impl Write,
    limits: &WorkbookLimits,
) -> Result<Converted, WorkbookError>
where
    RS: Read + Seek,
    W: Reader<RS>,
    W::Error: Display,
{
    let sheet = first_worksheet(&workbook).ok_or(WorkbookError::NoSheet)?;
    let range = workbook.worksheet_range(&sheet).map_err(unreadable)?;
    let mut capped = Capped::new(output, limits.max_csv_bytes);
    let written = write_sheet(&range, &mut capped, limits.max_rows);
    if capped.exceeded() {
        return Err(WorkbookError::TooLarge {
            reason: format!(
                "The sheet converts to more than {} bytes of CSV, the most this service stores for a workbook (MAX_WORKBOOK_UNPACKED_BYTES, MAX_UPLOAD_BYTES)",
                limits.max_csv_bytes
            ),
        });
    }
    Ok(Converted {
        format,
        sheet,
        rows: written?,
    })
}

/// A writer that fails once more than `limit` bytes would pass through it.
struct Capped<W> {
    inner: W,
    left: u64,
    exceeded: bool,
}

impl<W> Capped<W> {
    fn new(inner: W, limit: u64) -> Self {
        Capped {
            inner,
            left: limit,
            exceeded: false,
        }
    }

    fn exceeded(&self) -> bool {
        self.exceeded
    }
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            self.exceeded = true;
            return Err(std::io::Error::other("the CSV limit is reached"));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The name of the first worksheet (not chart or macro sheet) in workbook order.
fn first_worksheet<W, RS>(workbook: &W) -> Option<String>
where
    RS: Read + Seek,
    W: Reader<RS>,
{
    workbook
        .sheets_metadata()
        .iter()
        .find(|sheet| sheet.typ == SheetType::WorkSheet)
        .map(|sheet| sheet.name.clone())
}

/// Writes a sheet's rows as CSV lines at their sheet positions; returns the rows written from the
/// first non-empty one.
fn write_sheet(
    range: &Range<Data>,
    output: &mut impl Write,
    max_data_rows: u64,
) -> Result<u64, WorkbookError> {
    let (Some((top, _)), Some(first)) = (range.start(), range.rows().position(|r| !is_blank(r)))
    else {
        return Ok(0);
    };
    let rows = (range.height() - first) as u64;
    if rows > max_data_rows.saturating_add(1) {
        return Err(WorkbookError::TooManyRows {
            limit: max_data_rows,
        });
    }
    let above = u64::from(top) + first as u64;
    write_empty_lines(output, above).map_err(unreadable)?;
    write_rows(range.rows().skip(first), output)?;
    Ok(rows)
}

/// Writes `count` empty lines.
fn write_empty_lines(output: &mut impl Write, count: u64) -> std::io::Result<()> {
    let newlines = [b'\n'; 4096];
    let mut left = count;
    while left > 0 {
        let n = left.min(newlines.len() as u64) as usize;
        output.write_all(&newlines[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Writes each row as a CSV record, or as an empty line if all its cells are empty (a record of
/// empty fields would be `,,,` or `""`, which the reader takes for a row).
fn write_rows<'a, W: Write>(
    rows: impl Iterator<Item = &'a [Data]>,
    output: &mut W,
) -> Result<(), WorkbookError> {
    let mut writer = csv_writer(output);
    for row in rows {
        if is_blank(row) {
            // The csv writer has no way to write a bare line end: write it past the writer.
            let output = writer.into_inner().map_err(|e| unreadable(e.error()))?;
            output.write_all(b"\n").map_err(unreadable)?;
            writer = csv_writer(output);
        } else {
            write_record(&mut writer, row).map_err(unreadable)?;
        }
    }
    writer.flush().map_err(unreadable)
}

/// A CSV writer of the stored dialect: commas, quotes only where needed, LF line ends.
fn csv_writer<W: Write>(output: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(output)
}

/// Writes the cells of a non-empty row and ends the record.
fn write_record<W: Write>(writer: &mut csv::Writer<W>, row: &[Data]) -> csv::Result<()> {
    for cell in row {
        writer.write_field(cell_text(cell).as_bytes())?;
    }
    writer.write_record(None::<&[u8]>)
}

/// Whether every cell of a row is empty.
fn is_blank(row: &[Data]) -> bool {
    row.iter().all(|cell| cell_text(cell).is_empty())
}

/// A cell as the text written to the CSV (see [`to_csv`]).
fn cell_text(cell: &Data) -> Cow<'_, str> {
    match cell {
        Data::Empty => Cow::Borrowed(""),
        Data::String(text) => Cow::Borrowed(text),
        Data::Int(n) => Cow::Owned(n.to_string()),
        Data::Float(f) => Cow::Owned(float_text(*f)),
        Data::Bool(true) => Cow::Borrowed("TRUE"),
        Data::Bool(false) => Cow::Borrowed("FALSE"),
        Data::DateTime(value) => Cow::Owned(excel_datetime_text(value)),
        Data::DateTimeIso(text) => Cow::Owned(iso_datetime_text(text)),
        Data::DurationIso(text) => Cow::Owned(iso_duration_text(text)),
        Data::Error(error) => Cow::Owned(error.to_string()),
    }
}

/// A float in its shortest round-trip form, without a fraction when it is whole (`3`, `2.5`).
fn float_text(f: f64) -> String {
    // Rust's `Display` already drops `.0` and never uses an exponent; only `-0` is tidied.
    if f == 0.0 {
        "0".to_owned()
    } else {
        f.to_string()
    }
}

/// An .xlsx or .xls date, time of day or duration as text.
fn excel_datetime_text(value: &ExcelDateTime) -> String {
    let serial = value.as_f64();
    if value.is_duration() || (0.0..1.0).contains(&serial) {
        return clock_text(serial * DAY_SECONDS);
    }
    match value.as_datetime() {
        Some(datetime) => datetime_text(datetime),
        None => float_text(serial),
    }
}

/// An .ods date (`2024-03-05`) or date and time (`2024-03-05T14:30:00`) as text; anything
/// unexpected is kept as it is.
fn iso_datetime_text(text: &str) -> String {
    if let Ok(datetime) = text.parse::<NaiveDateTime>() {
        return datetime_text(datetime);
    }
    if let Ok(date) = text.parse::<NaiveDate>() {
        return datetime_text(date.and_time(NaiveTime::MIN));
    }
    match text.parse::<NaiveTime>() {
        Ok(time) => clock_text(seconds_of_day(time)),
        Err(_) => text.to_owned(),
    }
}

/// The seconds since midnight of a time of day, fraction included.
fn seconds_of_day(time: NaiveTime) -> f64 {
    f64::from(time.num_seconds_from_midnight()) + f64::from(time.nanosecond()) / 1e9
}

/// `YYYY-MM-DD`, with ` HH:MM:SS` when the time (rounded to the second) is not midnight.
fn datetime_text(datetime: NaiveDateTime) -> String {
    let datetime = datetime
        .duration_round(TimeDelta::seconds(1))
        .unwrap_or(datetime);
    if datetime.time() == NaiveTime::MIN {
        datetime.format("%Y-%m-%d").to_string()
    } else {
        datetime.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// An .ods time or duration (`PT14H30M00S`, `P1DT2H`) as `HH:MM:SS`; kept as it is if unexpected.
fn iso_duration_text(text: &str) -> String {
    match iso_duration_seconds(text) {
        Some(seconds) => clock_text(seconds),
        None => text.to_owned(),
    }
}

/// The seconds of an ISO 8601 duration made of days, hours, minutes and seconds.
fn iso_duration_seconds(text: &str) -> Option<f64> {
    let (sign, text) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text),
    };
    let mut rest = text.strip_prefix('P')?;
    let mut total = 0.0;
    let mut in_time = false;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('T') {
            in_time = true;
            rest = after;
            continue;
        }
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..end].parse().ok()?;
        let unit = rest[end..].chars().next()?;
        total += number * unit_seconds(unit, in_time)?;
        rest = &rest[end + unit.len_utf8()..];
    }
    Some(sign * total)
}

/// Seconds in one of a duration's units; `None` for years and months, which have no fixed length.
fn unit_seconds(unit: char, in_time: bool) -> Option<f64> {
    match (unit, in_time) {
        ('D', false) => Some(DAY_SECONDS),
        ('H', true) => Some(3600.0),
        ('M', true) => Some(60.0),
        ('S', true) => Some(1.0),
        _ => None,
    }
}

/// Seconds as `HH:MM:SS`, rounded to the second; hours may pass 24.
fn clock_text(seconds: f64) -> String {
    let total = seconds.round() as i64;
    let sign = if total < 0 { "-" } else { "" };
    let total = total.unsigned_abs();
    let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60);
    format!("{sign}{hours:02}:{minutes:02}:{secs:02}")
}

/// Wraps any error as [`WorkbookError::Unreadable`].
fn unreadable(error: impl Display) -> WorkbookError {
    WorkbookError::Unreadable(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{CellErrorType, ExcelDateTimeType};
    use std::io::Cursor;

    const PEOPLE_CSV: &[u8] = include_bytes!("../../../../tests/fixtures/people.csv");
    const PEOPLE_XLSX: &[u8] = include_bytes!("../../../../tests/fixtures/people.xlsx");
    const PEOPLE_ODS: &[u8] = include_bytes!("../../../../tests/fixtures/people.ods");
    const PEOPLE_XLS: &[u8] = include_bytes!("../../../../tests/fixtures/people.xls");
    const LAYOUT_XLSX: &[u8] = include_bytes!("../../../../tests/fixtures/sheet-layout.xlsx");
    const LAYOUT_ODS: &[u8] = include_bytes!("../../../../tests/fixtures/sheet-layout.ods");
    const LAYOUT_XLS: &[u8] = include_bytes!("../../../../tests/fixtures/sheet-layout.xls");
    const NOT_A_WORKBOOK: &[u8] = include_bytes!("../../../../tests/fixtures/not-a-workbook.zip");
    const IMAGE: &[u8] = include_bytes!("../../../../tests/fixtures/image.png");

    /// `sheet-layout.csv` as every workbook made from it must convert: the formulas' errors
    /// written as Excel shows them, dates and times in ISO form.
    const LAYOUT_CSV: &str = "\n\nFirst Name,Last Name,Email,User Role,Seats,Ratio,Joined,Checked in,Active,Check\n\
        Ada,Lovelace,ada@example.com,Admin,3,2.5,2024-03-05,2024-03-05 14:30:00,TRUE,#DIV/0!\n\
        \n\
        Alan,Turing,alan@example.com,Builder,12,0.125,2023-11-20,08:15:00,FALSE,#N/A\n";

    /// Limits no fixture comes near, but for `max_rows`.
    fn limits(max_rows: u64) -> WorkbookLimits {
        WorkbookLimits {
            max_rows,
            max_cells: 10_000,
            max_unpacked_bytes: 1 << 20,
            max_csv_bytes: 1 << 20,
        }
    }

    fn convert_bytes(
        bytes: &[u8],
        max_data_rows: u64,
    ) -> (Result<Converted, WorkbookError>, String) {
        convert_within(bytes, &limits(max_data_rows))
    }

    fn convert_within(
        bytes: &[u8],
        limits: &WorkbookLimits,
    ) -> (Result<Converted, WorkbookError>, String) {
        let mut out = Vec::new();
        let result = to_csv(Cursor::new(bytes), &mut out, limits);
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_sheet_whose_csv_passes_the_limit_is_refused_in_words() {
        let fits = limits(1000);
        let (result, csv) = convert_within(PEOPLE_XLSX, &fits);
        let size = csv.len() as u64;
        assert!(result.is_ok());
        let (result, _) = convert_within(
            PEOPLE_XLSX,
            &WorkbookLimits {
                max_csv_bytes: size,
                ..fits
            },
        );
        assert!(result.is_ok(), "exactly the limit fits: {result:?}");
        let (result, _) = convert_within(
            PEOPLE_XLSX,
            &WorkbookLimits {
                max_csv_bytes: size - 1,
                ..fits
            },
        );
        let message = result.unwrap_err().to_string();
        assert!(
            message.contains(&format!("more than {} bytes of CSV", size - 1)),
            "{message}"
        );
    }

    fn converted(format: Format, sheet: &str, rows: u64) -> Converted {
        Converted {
            format,
            sheet: sheet.to_owned(),
            rows,
        }
    }

    fn datetime(serial: f64) -> Data {
        Data::DateTime(ExcelDateTime::new(
            serial,
            ExcelDateTimeType::DateTime,
            false,
        ))
    }

    #[test]
    fn every_libreoffice_workbook_of_the_people_gives_the_source_csv() {
        let source = std::str::from_utf8(PEOPLE_CSV).unwrap();
        for (bytes, format) in [
            (PEOPLE_XLSX, Format::Xlsx),
            (PEOPLE_ODS, Format::Ods),
            (PEOPLE_XLS, Format::Xls),
        ] {
            let (result, csv) = convert_bytes(bytes, 1000);
            assert_eq!(result.unwrap(), converted(format, "people", 11), "{format}");
            assert_eq!(csv, source, "{format}");
        }
    }

    #[test]
    fn rows_keep_the_numbers_the_spreadsheet_shows_and_cells_their_text() {
        for (bytes, format) in [
            (LAYOUT_XLSX, Format::Xlsx),
            (LAYOUT_ODS, Format::Ods),
            (LAYOUT_XLS, Format::Xls),
        ] {
            let (result, csv) = convert_bytes(bytes, 1000);
            assert_eq!(
                result.unwrap(),
                converted(format, "sheet-layout", 4),
                "{format}"
            );
            assert_eq!(csv, LAYOUT_CSV, "{format}");
        }
    }

    #[test]
    fn a_zip_or_anything_else_that_no_format_opens_is_not_a_workbook() {
        for bytes in [NOT_A_WORKBOOK, IMAGE, b"PK\x03\x04 cut short", b""] {
            let (result, csv) = convert_bytes(bytes, 1000);
            assert!(
                matches!(result, Err(WorkbookError::NotAWorkbook)),
                "{result:?}"
            );
            assert_eq!(csv, "");
        }
    }

    #[test]
    fn more_rows_than_the_limit_fail_before_anything_is_written() {
        let (result, csv) = convert_bytes(PEOPLE_XLSX, 10);
        assert_eq!(result.unwrap().rows, 11);
        assert_eq!(csv.lines().count(), 11);
        let (result, csv) = convert_bytes(PEOPLE_XLSX, 9);
        assert!(
            matches!(result, Err(WorkbookError::TooManyRows { limit: 9 })),
            "{result:?}"
        );
        assert_eq!(csv, "");
        // Counted from the header on row 3, the empty row 5 included.
        assert!(convert_bytes(LAYOUT_ODS, 3).0.is_ok());
        let (result, _) = convert_bytes(LAYOUT_ODS, 2);
        assert!(
            matches!(result, Err(WorkbookError::TooManyRows { limit: 2 })),
            "{result:?}"
        );
    }

    #[test]
    fn the_messages_are_sentences_for_the_admin() {
        let limit = WorkbookError::TooManyRows { limit: 100 }.to_string();
        assert!(limit.contains("more than 100 data rows") && limit.contains("100 (MAX_ROWS)"));
        let unreadable = WorkbookError::Unreadable("bad sheet".to_owned()).to_string();
        assert!(unreadable.starts_with("The workbook could not be read (bad sheet)."));
        assert!(
            WorkbookError::NotAWorkbook
                .to_string()
                .ends_with("upload it again.")
        );
    }

    /// A range from B3 to D7: rows 3 and 5 hold only empty values, row 7 is the last.
    fn sparse_sheet() -> Range<Data> {
        let mut range = Range::new((2, 1), (6, 3));
        range.set_value((2, 2), Data::String(String::new()));
        range.set_value((3, 1), Data::String("Email".to_owned()));
        range.set_value((3, 3), Data::String("User Role".to_owned()));
        range.set_value((4, 2), Data::Empty);
        range.set_value((5, 1), Data::String("a@example.com".to_owned()));
        range.set_value((5, 3), Data::String("Admin, \"boss\"\nof all".to_owned()));
        range.set_value((6, 2), Data::Int(7));
        range
    }

    #[test]
    fn empty_rows_above_and_between_keep_the_line_numbers() {
        let mut out = Vec::new();
        let rows = write_sheet(&sparse_sheet(), &mut out, 10).unwrap();
        assert_eq!(rows, 4);
        let csv = String::from_utf8(out).unwrap();
        assert_eq!(
            csv,
            "\n\n\nEmail,,User Role\n\na@example.com,,\"Admin, \"\"boss\"\"\nof all\"\n,7,\n"
        );
        // Read back as the import reads it: the header on row 4, the data on rows 6 and 7.
        let mut reader = super::super::records::RecordReader::new(b',', 1, true);
        let mut records = Vec::new();
        reader.feed(csv.as_bytes(), &mut records);
        reader.finish(&mut records);
        let rows: Vec<u64> = records.iter().map(|r| r.row).collect();
        assert_eq!(rows, [4, 6, 7]);
    }

    #[test]
    fn an_empty_sheet_writes_nothing() {
        let mut out = Vec::new();
        assert_eq!(write_sheet(&Range::empty(), &mut out, 10).unwrap(), 0);
        let mut blank = Range::new((0, 0), (3, 2));
        blank.set_value((1, 1), Data::String(String::new()));
        assert_eq!(write_sheet(&blank, &mut out, 10).unwrap(), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn numbers_are_plain_text() {
        let cases = [
            (Data::Float(3.0), "3"),
            (Data::Float(2.5), "2.5"),
            (Data::Float(0.1), "0.1"),
            (Data::Float(-0.0), "0"),
            (Data::Float(-12.75), "-12.75"),
            (Data::Float(1e21), "1000000000000000000000"),
            (Data::Float(4_155_551_234.0), "4155551234"),
            (Data::Int(-42), "-42"),
        ];
        for (cell, text) in cases {
            assert_eq!(cell_text(&cell), text, "{cell:?}");
        }
    }

    #[test]
    fn strings_booleans_errors_and_empty_cells() {
        let cases = [
            (
                Data::String(" As is, \"quoted\" ".to_owned()),
                " As is, \"quoted\" ",
            ),
            (Data::Bool(true), "TRUE"),
            (Data::Bool(false), "FALSE"),
            (Data::Error(CellErrorType::NA), "#N/A"),
            (Data::Error(CellErrorType::Div0), "#DIV/0!"),
            (Data::Error(CellErrorType::Value), "#VALUE!"),
            (Data::Empty, ""),
        ];
        for (cell, text) in cases {
            assert_eq!(cell_text(&cell), text, "{cell:?}");
        }
    }

    #[test]
    fn excel_dates_times_and_durations() {
        let duration = ExcelDateTime::new(1.5, ExcelDateTimeType::TimeDelta, false);
        let in_1904 = ExcelDateTime::new(43894.0, ExcelDateTimeType::DateTime, true);
        let cases = [
            (datetime(45356.0), "2024-03-05"),
            (datetime(45356.6041666667), "2024-03-05 14:30:00"),
            (datetime(45356.99999999), "2024-03-06"),
            (datetime(0.34375), "08:15:00"),
            (Data::DateTime(duration), "36:00:00"),
            (Data::DateTime(in_1904), "2024-03-05"),
        ];
        for (cell, text) in cases {
            assert_eq!(cell_text(&cell), text, "{cell:?}");
        }
    }

    #[test]
    fn iso_dates_times_and_durations() {
        let cases = [
            (Data::DateTimeIso("2024-03-05".to_owned()), "2024-03-05"),
            (
                Data::DateTimeIso("2024-03-05T00:00:00".to_owned()),
                "2024-03-05",
            ),
            (
                Data::DateTimeIso("2024-03-05T14:30:00".to_owned()),
                "2024-03-05 14:30:00",
            ),
            (
                Data::DateTimeIso("2024-03-05T14:30:00.4".to_owned()),
                "2024-03-05 14:30:00",
            ),
            (Data::DateTimeIso("08:15:00".to_owned()), "08:15:00"),
            (Data::DateTimeIso("next Tuesday".to_owned()), "next Tuesday"),
            (Data::DurationIso("PT08H15M00S".to_owned()), "08:15:00"),
            (Data::DurationIso("PT36H00M00.4S".to_owned()), "36:00:00"),
            (Data::DurationIso("P1DT2H".to_owned()), "26:00:00"),
            (Data::DurationIso("-PT1H30M".to_owned()), "-01:30:00"),
            (Data::DurationIso("P1M".to_owned()), "P1M"),
            (Data::DurationIso("PT5X".to_owned()), "PT5X"),
        ];
        for (cell, text) in cases {
            assert_eq!(cell_text(&cell), text, "{cell:?}");
        }
    }
}

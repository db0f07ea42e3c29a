//! Turning what an admin uploads into rows: the file's kind and encoding, workbooks, and a
//! streaming record reader with hard limits and spreadsheet row numbers.
//!
//! An upload is stored as UTF-8 CSV whatever it arrived as: [`prepare`] transcodes other encodings
//! and converts workbooks before the header is checked, so the worker, the results file and the
//! row numbers are the same for every kind of input.

pub mod decode;
pub mod records;
pub mod workbook;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read as _, Seek as _, SeekFrom, Write as _};

use crate::domain::header::{Header, HeaderError};
use decode::{Kind, TextEncoding};
use workbook::WorkbookError;

/// How much of the file's start is read to check the header.
const HEADER_PEEK: usize = 64 * 1024;

/// The configured limits an upload is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest workbook, in bytes.
    pub max_workbook_bytes: u64,
    /// Most data rows.
    pub max_rows: u64,
}

/// An upload ready to store: UTF-8 CSV with a usable header.
#[derive(Debug)]
pub struct Prepared {
    /// The CSV, positioned at its start.
    pub file: File,
    /// Its size in bytes.
    pub size: u64,
    /// Its checked header.
    pub header: Header,
    /// Notes for the admin about how the file was read (encoding, workbook sheet).
    pub notes: Vec<String>,
}

/// Why an upload cannot be used; the messages are shown to the admin as they are.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Not text and not a workbook.
    #[error(
        "The file is {what}, not a CSV file or a workbook. Upload a CSV export (UTF-8, UTF-16 with a byte-order mark, or Windows-1252) or an .xlsx or .ods workbook."
    )]
    Binary {
        /// What the file looks like.
        what: &'static str,
    },
    /// A workbook over the configured size.
    #[error(
        "The workbook is larger than {limit} bytes, the most this service reads as a workbook; save it as CSV and upload that instead."
    )]
    WorkbookTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The workbook could not be converted.
    #[error(transparent)]
    Workbook(#[from] WorkbookError),
    /// The header row is unusable.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// Reading or writing the spooled file failed.
    #[error("reading the upload: {0}")]
    Io(#[from] std::io::Error),
}

/// Makes a spooled upload of the given kind into checked UTF-8 CSV. Blocking: call it off the
/// async runtime.
pub fn prepare(
    mut file: File,
    size: u64,
    kind: Kind,
    limits: Limits,
) -> Result<Prepared, IntakeError> {
    file.seek(SeekFrom::Start(0))?;
    let (file, notes) = match kind {
        Kind::Binary { what } => return Err(IntakeError::Binary { what }),
        Kind::Text(TextEncoding::Utf8) => (file, Vec::new()),
        Kind::Text(encoding) => {
            let file = transcoded(file, encoding)?;
            (file, vec![format!("read as {} text", encoding.label())])
        }
        Kind::Workbook if size > limits.max_workbook_bytes => {
            return Err(IntakeError::WorkbookTooLarge {
                limit: limits.max_workbook_bytes,
            });
        }
        Kind::Workbook => converted(file, limits.max_rows)?,
    };
    let (mut file, header) = check_header(file)?;
    let size = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    Ok(Prepared {
        file,
        size,
        header,
        notes,
    })
}

/// Reads a whole file through a [`decode::Sniffer`] (for files that were not sniffed while being
/// received, such as the CLI's), leaving it at its start.
pub fn sniff_file(file: &mut File) -> std::io::Result<Kind> {
    file.seek(SeekFrom::Start(0))?;
    let mut sniffer = decode::Sniffer::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sniffer.feed(&buf[..n]);
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(sniffer.finish())
}

fn transcoded(file: File, encoding: TextEncoding) -> std::io::Result<File> {
    let mut out = BufWriter::new(tempfile::tempfile()?);
    decode::transcode(encoding, &mut BufReader::new(file), &mut out)?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())
}

fn converted(file: File, max_rows: u64) -> Result<(File, Vec<String>), IntakeError> {
    let mut out = BufWriter::new(tempfile::tempfile()?);
    let sheet = workbook::to_csv(BufReader::new(file), &mut out, max_rows)?;
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    let note = format!(
        "read from the first sheet (\"{}\") of the .{} workbook",
        sheet.sheet, sheet.format
    );
    Ok((file, vec![note]))
}

/// Reads the start of a CSV file, checks its header, and rewinds it.
fn check_header(mut file: File) -> Result<(File, Header), IntakeError> {
    file.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(HEADER_PEEK);
    (&mut file)
        .take(HEADER_PEEK as u64)
        .read_to_end(&mut head)?;
    let (header, _) = Header::read(&head)?;
    file.seek(SeekFrom::Start(0))?;
    Ok((file, header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::invitee::{CsvRow, NewInvitee};
    use proptest::prelude::*;
    use records::RecordReader;

    /// Runs `bytes` through everything an upload and its import do before the database: the
    /// sniffing, [`prepare`], the record reader and row validation.
    fn through_intake(bytes: &[u8]) -> Result<usize, IntakeError> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        let kind = sniff_file(&mut file).unwrap();
        let limits = Limits {
            max_workbook_bytes: 1 << 20,
            max_rows: 1000,
        };
        let mut prepared = prepare(file, bytes.len() as u64, kind, limits)?;
        let mut csv = Vec::new();
        prepared.file.read_to_end(&mut csv).unwrap();
        assert_eq!(csv.len() as u64, prepared.size);
        let (_, delimiter) = Header::read(&csv).unwrap();
        let mut reader = RecordReader::new(delimiter, 1, true);
        let mut out = Vec::new();
        reader.feed(&csv, &mut out);
        reader.finish(&mut out);
        for record in out.iter().skip(1) {
            let _ = NewInvitee::try_from(CsvRow {
                row: record.row,
                header: &prepared.header,
                record: &record.fields,
            });
        }
        Ok(out.len())
    }

    fn encode(text: &str, encoding: &'static encoding_rs::Encoding, bom: &[u8]) -> Vec<u8> {
        let mut bytes = bom.to_vec();
        match encoding.name() {
            // encoding_rs encodes only to UTF-8-compatible encodings; UTF-16 is done by hand.
            "UTF-16LE" => bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes)),
            "UTF-16BE" => bytes.extend(text.encode_utf16().flat_map(u16::to_be_bytes)),
            _ => bytes.extend_from_slice(&encoding.encode(text).0),
        }
        bytes
    }

    #[test]
    fn every_encoding_gives_the_same_names() {
        let text = "First Name\tEmail\tUser Role\nJosé Núñez\tjose@example.com\tAdmin\n";
        for (encoding, bom) in [
            (encoding_rs::UTF_8, &b""[..]),
            (encoding_rs::UTF_8, b"\xEF\xBB\xBF"),
            (encoding_rs::UTF_16LE, b"\xFF\xFE"),
            (encoding_rs::UTF_16BE, b"\xFE\xFF"),
            (encoding_rs::WINDOWS_1252, b""),
        ] {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(&encode(text, encoding, bom)).unwrap();
            let kind = sniff_file(&mut file).unwrap();
            let limits = Limits {
                max_workbook_bytes: 1 << 20,
                max_rows: 10,
            };
            let mut prepared = prepare(file, 0, kind, limits).unwrap();
            let mut csv = String::new();
            prepared.file.read_to_string(&mut csv).unwrap();
            assert_eq!(
                csv.trim_start_matches('\u{FEFF}'),
                text,
                "{}",
                encoding.name()
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_are_refused_clearly_or_read_without_a_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let _ = through_intake(&bytes);
        }

        #[test]
        fn any_text_in_any_encoding_is_refused_clearly_or_read_without_a_panic(
            rows in proptest::collection::vec("[a-zA-Zé ñ,;\t\"\r\n@.ÿ€Ω中]{0,40}", 0..20),
            which in 0usize..5,
        ) {
            let text = format!("First Name,Email,User Role\n{}", rows.join("\n"));
            let (encoding, bom): (&'static encoding_rs::Encoding, &[u8]) = [
                (encoding_rs::UTF_8, &b""[..]),
                (encoding_rs::UTF_8, b"\xEF\xBB\xBF"),
                (encoding_rs::UTF_16LE, b"\xFF\xFE"),
                (encoding_rs::UTF_16BE, b"\xFE\xFF"),
                (encoding_rs::WINDOWS_1252, b""),
            ][which];
            let records = through_intake(&encode(&text, encoding, bom));
            prop_assert!(records.is_ok(), "{records:?}");
        }
    }
}

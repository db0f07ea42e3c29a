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
use workbook::child::{ConversionError, Converter};

/// How much of the file's start is read to check the header.
const HEADER_PEEK: usize = 64 * 1024;

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
    /// Every workbook conversion slot of this process stayed busy ([`ConversionError::Busy`]).
    #[error(transparent)]
    Busy(ConversionError),
    /// The header row is unusable.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// Reading or writing the spooled file failed.
    #[error("reading the upload: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ConversionError> for IntakeError {
    fn from(e: ConversionError) -> Self {
        match e {
            ConversionError::Workbook(e) => IntakeError::Workbook(e),
            ConversionError::Busy { .. } => IntakeError::Busy(e),
            ConversionError::Io(e) => IntakeError::Io(e),
        }
    }
}

/// Makes a spooled upload of the given kind into checked UTF-8 CSV: text is transcoded (off the
/// async runtime), a workbook converted by `converter` in a child process.
pub async fn prepare(
    file: File,
    size: u64,
    kind: Kind,
    converter: &Converter,
) -> Result<Prepared, IntakeError> {
    if kind != Kind::Workbook {
        // Transcoding and the header check, in one trip to the blocking pool.
        return blocking(move || {
            let (file, notes) = as_utf8(file, kind)?;
            checked(file, notes)
        })
        .await;
    }
    let limit = converter.limits().max_file_bytes;
    if size > limit {
        return Err(IntakeError::WorkbookTooLarge { limit });
    }
    let (file, converted) = converter.convert(file).await?;
    let notes = vec![workbook_note(&converted)];
    blocking(move || checked(file, notes)).await
}

/// Runs blocking file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IntakeError> + Send + 'static,
) -> Result<T, IntakeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| IntakeError::Io(std::io::Error::other(e)))?
}

/// A text upload as UTF-8, with a note when it was transcoded.
fn as_utf8(mut file: File, kind: Kind) -> Result<(File, Vec<String>), IntakeError> {
    file.seek(SeekFrom::Start(0))?;
    match kind {
        Kind::Binary { what } => Err(IntakeError::Binary { what }),
        Kind::Workbook => Err(IntakeError::Workbook(WorkbookError::NotAWorkbook)),
        Kind::Text(TextEncoding::Utf8) => Ok((file, Vec::new())),
        Kind::Text(encoding) => {
            let file = transcoded(file, encoding)?;
            Ok((file, vec![format!("read as {} text", encoding.label())]))
        }
    }
}

/// The CSV with its header checked and its size, at its start.
fn checked(file: File, notes: Vec<String>) -> Result<Prepared, IntakeError> {
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

/// How a workbook was read, for the admin.
fn workbook_note(converted: &workbook::Converted) -> String {
    format!(
        "read from the first sheet (\"{}\") of the .{} workbook",
        converted.sheet, converted.format
    )
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

    /// [`prepare`] with a workbook converted in this process, as the child does.
    fn prepare_here(file: File, kind: Kind) -> Result<Prepared, IntakeError> {
        let (file, notes) = match kind {
            Kind::Workbook => {
                let limits = workbook::WorkbookLimits {
                    max_rows: 1000,
                    max_cells: 100_000,
                    max_unpacked_bytes: 1 << 20,
                    max_csv_bytes: 1 << 20,
                };
                let mut out = tempfile::tempfile()?;
                let converted = workbook::to_csv(BufReader::new(file), &mut out, &limits)?;
                (out, vec![workbook_note(&converted)])
            }
            kind => as_utf8(file, kind)?,
        };
        checked(file, notes)
    }

    /// Runs `bytes` through everything an upload and its import do before the database: the
    /// sniffing, [`prepare`], the record reader and row validation.
    fn through_intake(bytes: &[u8]) -> Result<usize, IntakeError> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        let kind = sniff_file(&mut file).unwrap();
        let mut prepared = prepare_here(file, kind)?;
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
            let mut prepared = prepare_here(file, kind).unwrap();
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

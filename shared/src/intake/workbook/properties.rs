//! Property tests: arbitrary bytes inside valid ZIP structures, through the whole workbook path in
//! this process. Any abort (an allocation the declaration check let through) or panic fails the
//! test binary, so these hold only if neither can happen.

use std::io::{Cursor, Read as _, Write as _};

use proptest::prelude::*;

use super::{WorkbookLimits, to_csv};

const PEOPLE_XLSX: &[u8] = include_bytes!("../../../../tests/fixtures/people.xlsx");
const PEOPLE_ODS: &[u8] = include_bytes!("../../../../tests/fixtures/people.ods");

/// Limits as the service's defaults are, at a tenth of their size.
const LIMITS: WorkbookLimits = WorkbookLimits {
    max_rows: 100_000,
    max_cells: 500_000,
    max_unpacked_bytes: 16 << 20,
    max_csv_bytes: 16 << 20,
};

/// The parts of a ZIP file, in order.
fn parts_of(workbook: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(workbook)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut part = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            part.read_to_end(&mut bytes).unwrap();
            (part.name().unwrap().into_owned(), bytes)
        })
        .collect()
}

fn zip_of(parts: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, bytes) in parts {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Converts in this process; the result does not matter, only that it comes back.
fn convert(workbook: Vec<u8>) {
    let mut out = Vec::new();
    let _ = to_csv(Cursor::new(workbook), &mut out, &LIMITS);
    assert!(out.len() as u64 <= LIMITS.max_csv_bytes);
}

/// Numbers as a hostile file would write them: anything from 0 to `u64::MAX`, and past it.
fn count() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..2_000_000).prop_map(|n| n.to_string()),
        "[0-9]{1,40}",
    ]
}

/// A cell reference anywhere in (and a little beyond) a sheet's largest extent.
fn reference() -> impl Strategy<Value = String> {
    ("[A-Z]{1,4}", 0u64..1_100_000).prop_map(|(column, row)| format!("{column}{row}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_bytes_in_any_part_of_a_workbook_convert_or_fail_without_a_panic(
        xlsx in any::<bool>(),
        which in any::<prop::sample::Index>(),
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut parts = parts_of(if xlsx { PEOPLE_XLSX } else { PEOPLE_ODS });
        let i = which.index(parts.len());
        parts[i].1 = bytes;
        convert(zip_of(&parts));
    }

    #[test]
    fn flipped_bytes_in_a_workbook_part_convert_or_fail_without_a_panic(
        xlsx in any::<bool>(),
        which in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..32),
    ) {
        let mut parts = parts_of(if xlsx { PEOPLE_XLSX } else { PEOPLE_ODS });
        let i = which.index(parts.len());
        let part = &mut parts[i].1;
        if !part.is_empty() {
            for (at, byte) in flips {
                let at = at.index(part.len());
                part[at] = byte;
            }
        }
        convert(zip_of(&parts));
    }

    #[test]
    fn any_declared_counts_and_references_convert_or_fail_without_an_abort(
        unique in count(),
        total in count(),
        dimension in (reference(), reference()),
        cells in prop::collection::vec(reference(), 1..8),
        row_repeats in count(),
        column_repeats in count(),
    ) {
        let mut parts = parts_of(PEOPLE_XLSX);
        for (name, bytes) in &mut parts {
            let text = String::from_utf8_lossy(bytes).into_owned();
            if name == "xl/sharedStrings.xml" {
                let start = text.find("<si>").unwrap_or(text.len());
                *bytes = format!(
                    "<sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
                     count=\"{total}\" uniqueCount=\"{unique}\">{}",
                    &text[start..]
                )
                .into_bytes();
            } else if name.starts_with("xl/worksheets/") {
                let extra: String = cells
                    .iter()
                    .map(|r| format!("<row><c r=\"{r}\" t=\"s\"><v>0</v></c></row>"))
                    .collect();
                *bytes = text
                    .replacen("<sheetData>", &format!("<sheetData>{extra}"), 1)
                    .replacen("<dimension ref=\"", &format!("<dimension ref=\"{}:{}", dimension.0, dimension.1), 1)
                    .into_bytes();
            }
        }
        convert(zip_of(&parts));

        let mut parts = parts_of(PEOPLE_ODS);
        for (name, bytes) in &mut parts {
            if name == "content.xml" {
                let text = String::from_utf8_lossy(bytes).into_owned();
                *bytes = text
                    .replacen(
                        "<table:table-row",
                        &format!("<table:table-row table:number-rows-repeated=\"{row_repeats}\""),
                        1,
                    )
                    .replacen(
                        "<table:table-cell",
                        &format!("<table:table-cell table:number-columns-repeated=\"{column_repeats}\""),
                        1,
                    )
                    .into_bytes();
            }
        }
        convert(zip_of(&parts));
    }
}

//! A corpus of hostile workbooks: small files that declare, unpack to or need far more than any
//! real sheet, each aimed at one way a workbook reader can be made to exhaust a process. The
//! upload tests send every one; `cargo run -p invite-tests --bin hostile-workbooks -- DIR` writes
//! them to a folder for trying by hand.

use std::io::{Cursor, Write as _};

use zip::write::SimpleFileOptions;

/// One hostile file.
pub struct Hostile {
    /// A file name that says what it attacks.
    pub name: &'static str,
    /// The file.
    pub bytes: Vec<u8>,
}

/// Makes one file of the corpus.
type Maker = fn() -> Vec<u8>;

/// Every file of the corpus.
pub fn corpus() -> Vec<Hostile> {
    let files: [(&'static str, Maker); 14] = [
        ("shared-strings-count.xlsx", shared_strings_count),
        ("renamed-shared-strings.xlsx", renamed_shared_strings),
        ("sheet-extent.xlsx", sheet_extent),
        ("sheet-dimension.xlsx", sheet_dimension),
        ("giant-cell.xlsx", giant_cell),
        ("many-large-cells.xlsx", many_large_cells),
        ("many-parts.xlsx", many_parts),
        ("zip-in-zip.zip", zip_in_zip),
        ("zip-as-sheet.xlsx", zip_as_sheet),
        ("repeated-rows.ods", repeated_rows),
        ("repeated-columns.ods", repeated_columns),
        ("stream-size.xls", xls_stream_size),
        ("looping-directory.xls", xls_looping_directory),
        ("huge-records.xls", xls_huge_records),
    ];
    files
        .into_iter()
        .map(|(name, make)| Hostile {
            name,
            bytes: make(),
        })
        .collect()
}

const MAIN: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const RELATIONSHIPS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
const OFFICE: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

/// A ZIP of `(name, content)` parts, deflated.
pub fn zip_of(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (name, content) in parts {
        zip.start_file(*name, options).expect("a ZIP part");
        zip.write_all(content).expect("writing a ZIP part");
    }
    zip.finish().expect("a ZIP").into_inner()
}

/// The parts every `.xlsx` needs besides its sheet and shared strings.
fn xlsx_skeleton() -> Vec<(&'static str, String)> {
    let types = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
        <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
        <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
        <Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
        <Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>\
        </Types>";
    vec![
        ("[Content_Types].xml", types.to_owned()),
        (
            "_rels/.rels",
            format!(
                "<Relationships xmlns=\"{RELATIONSHIPS}\"><Relationship Id=\"rId1\" \
                 Type=\"{OFFICE}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
            ),
        ),
        (
            "xl/workbook.xml",
            format!(
                "<workbook xmlns=\"{MAIN}\" xmlns:r=\"{OFFICE}\"><sheets>\
                 <sheet name=\"people\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"
            ),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            format!(
                "<Relationships xmlns=\"{RELATIONSHIPS}\">\
                 <Relationship Id=\"rId1\" Type=\"{OFFICE}/worksheet\" Target=\"worksheets/sheet1.xml\"/>\
                 <Relationship Id=\"rId2\" Type=\"{OFFICE}/sharedStrings\" Target=\"sharedStrings.xml\"/>\
                 </Relationships>"
            ),
        ),
    ]
}

/// An `.xlsx` of the skeleton, `sheet` as its first sheet and `extra` parts.
fn xlsx(sheet: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let skeleton = xlsx_skeleton();
    let mut parts: Vec<(&str, &[u8])> = skeleton
        .iter()
        .map(|(name, xml)| (*name, xml.as_bytes()))
        .collect();
    parts.push(("xl/worksheets/sheet1.xml", sheet));
    parts.extend_from_slice(extra);
    zip_of(&parts)
}

/// A worksheet of the given `<row>` elements, after an optional `<dimension>`.
fn worksheet(dimension: Option<&str>, rows: &str) -> Vec<u8> {
    let dimension = dimension.map_or_else(String::new, |r| format!("<dimension ref=\"{r}\"/>"));
    format!("<worksheet xmlns=\"{MAIN}\">{dimension}<sheetData>{rows}</sheetData></worksheet>")
        .into_bytes()
}

/// An inline-string cell.
fn cell(reference: &str, text: &str) -> String {
    format!("<c r=\"{reference}\" t=\"inlineStr\"><is><t>{text}</t></is></c>")
}

/// The header row every sheet of the corpus starts with.
fn header_row() -> String {
    format!(
        "<row r=\"1\">{}{}{}</row>",
        cell("A1", "First Name"),
        cell("B1", "Email"),
        cell("C1", "User Role")
    )
}

/// Shared strings that declare three hundred trillion entries (calamine reserves them all).
fn shared_strings_count() -> Vec<u8> {
    declaring_shared_strings("xl/sharedStrings.xml")
}

/// The same, in a part whose name differs from the usual one but in case, as calamine still reads.
fn renamed_shared_strings() -> Vec<u8> {
    declaring_shared_strings("XL/SharedStrings.XML")
}

fn declaring_shared_strings(part: &str) -> Vec<u8> {
    let strings = format!(
        "<sst xmlns=\"{MAIN}\" count=\"300000000000000\" uniqueCount=\"300000000000000\">\
         <si><t>Email</t></si></sst>"
    );
    xlsx(
        &worksheet(None, &header_row()),
        &[(part, strings.as_bytes())],
    )
}

/// Two cells, A1 and XFD1048576: a reader that allocates the rectangle between them needs 17
/// billion cells.
fn sheet_extent() -> Vec<u8> {
    let rows = format!(
        "{}<row r=\"1048576\">{}</row>",
        header_row(),
        cell("XFD1048576", "x")
    );
    xlsx(&worksheet(None, &rows), &[])
}

/// A sheet that declares the largest possible dimension.
fn sheet_dimension() -> Vec<u8> {
    xlsx(&worksheet(Some("A1:XFD1048576"), &header_row()), &[])
}

/// One cell of 200,000,000 characters, which deflates to a few hundred KB.
fn giant_cell() -> Vec<u8> {
    let giant = "x".repeat(200_000_000);
    let rows = format!("{}<row r=\"2\">{}</row>", header_row(), cell("A2", &giant));
    xlsx(&worksheet(None, &rows), &[])
}

/// 2,500 rows with a 64 KiB cell each: 160 MB of text.
fn many_large_cells() -> Vec<u8> {
    let mut rows = header_row();
    for row in 2..=2_501 {
        let text: String = std::iter::repeat_n(format!("row{row} "), 64 * 1024 / 8)
            .collect::<String>()
            .chars()
            .take(64 * 1024)
            .collect();
        rows.push_str(&format!(
            "<row r=\"{row}\">{}</row>",
            cell(&format!("A{row}"), &text)
        ));
    }
    xlsx(&worksheet(None, &rows), &[])
}

/// An ordinary sheet among 5,000 other parts.
fn many_parts() -> Vec<u8> {
    let names: Vec<String> = (0..5_000)
        .map(|i| format!("xl/media/part{i}.bin"))
        .collect();
    let extra: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    xlsx(&worksheet(None, &header_row()), &extra)
}

/// A ZIP whose only part is a ZIP of a ZIP of a 100 MB sheet.
fn zip_in_zip() -> Vec<u8> {
    zip_of(&[("inner.zip", &nested_bomb())])
}

/// An `.xlsx` whose sheet part is not XML but a ZIP of a ZIP of a 100 MB sheet.
fn zip_as_sheet() -> Vec<u8> {
    xlsx(&nested_bomb(), &[])
}

fn nested_bomb() -> Vec<u8> {
    let sheet = worksheet(None, &"<row><c><v>1</v></c></row>".repeat(4_000_000));
    let inner = xlsx(&sheet, &[]);
    zip_of(&[("people.xlsx", &inner)])
}

/// An `.ods` of the given table rows.
fn ods(rows: &str) -> Vec<u8> {
    let content = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <office:document-content \
         xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
         xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" \
         xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" office:version=\"1.3\">\
         <office:body><office:spreadsheet><table:table table:name=\"people\">\
         <table:table-row>{}{}{}</table:table-row>{rows}\
         </table:table></office:spreadsheet></office:body></office:document-content>",
        ods_cell("First Name", 1),
        ods_cell("Email", 1),
        ods_cell("User Role", 1),
    );
    let manifest = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\" manifest:version=\"1.3\">\
        <manifest:file-entry manifest:full-path=\"/\" manifest:media-type=\"application/vnd.oasis.opendocument.spreadsheet\"/>\
        <manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/>\
        </manifest:manifest>";
    zip_of(&[
        (
            "mimetype",
            b"application/vnd.oasis.opendocument.spreadsheet",
        ),
        ("META-INF/manifest.xml", manifest.as_bytes()),
        ("content.xml", content.as_bytes()),
    ])
}

/// A string cell, repeated across `columns` columns.
fn ods_cell(text: &str, columns: u64) -> String {
    format!(
        "<table:table-cell table:number-columns-repeated=\"{columns}\" \
         office:value-type=\"string\"><text:p>{text}</text:p></table:table-cell>"
    )
}

/// A row of 16,384 filled cells repeated over a million rows: 17 billion cells.
fn repeated_rows() -> Vec<u8> {
    ods(&format!(
        "<table:table-row table:number-rows-repeated=\"1048570\">{}</table:table-row>",
        ods_cell("x", 16_384)
    ))
}

/// One filled cell repeated two billion times across a row.
fn repeated_columns() -> Vec<u8> {
    ods(&format!(
        "<table:table-row>{}</table:table-row>",
        ods_cell("x", 2_000_000_000)
    ))
}

/// What a compound file (`.xls`) is made of, 512-byte sectors after a 512-byte header.
struct CompoundFile {
    /// The next sector of each sector.
    fat: Vec<u32>,
    /// The directory's first sector.
    directory: u32,
    /// The `Workbook` stream's first sector and declared size.
    stream: (u32, u32),
    /// The sectors after the FAT (sector 0): the directory's, then the stream's.
    sectors: Vec<[u8; 512]>,
}

const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
const FREE: u32 = 0xFFFF_FFFF;
const FAT_SECTOR: u32 = 0xFFFF_FFFD;

impl CompoundFile {
    /// A file whose `Workbook` stream holds `stream` (at least 4,096 bytes, so that it is not in
    /// the mini stream) in sectors 2 onwards, and declares `declared_size`.
    fn with_stream(stream: &[u8], declared_size: u32) -> CompoundFile {
        let data: Vec<[u8; 512]> = stream
            .chunks(512)
            .map(|chunk| {
                let mut sector = [0u8; 512];
                sector[..chunk.len()].copy_from_slice(chunk);
                sector
            })
            .collect();
        let mut fat = vec![FAT_SECTOR, END_OF_CHAIN];
        for i in 0..data.len() as u32 {
            fat.push(if i + 1 == data.len() as u32 {
                END_OF_CHAIN
            } else {
                i + 3
            });
        }
        let mut sectors = vec![[0u8; 512]];
        sectors.extend(data);
        CompoundFile {
            fat,
            directory: 1,
            stream: (2, declared_size),
            sectors,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut header = [0u8; 512];
        header[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
        put16(&mut header, 24, 0x3E);
        put16(&mut header, 26, 3);
        put16(&mut header, 28, 0xFFFE);
        put16(&mut header, 30, 9);
        put16(&mut header, 32, 6);
        put32(&mut header, 44, 1);
        put32(&mut header, 48, self.directory);
        put32(&mut header, 56, 4096);
        put32(&mut header, 60, END_OF_CHAIN);
        put32(&mut header, 68, END_OF_CHAIN);
        for slot in 0..109 {
            put32(&mut header, 76 + slot * 4, if slot == 0 { 0 } else { FREE });
        }
        let mut fat = [0xFFu8; 512];
        for (i, next) in self.fat.iter().enumerate() {
            put32(&mut fat, i * 4, *next);
        }
        let mut directory = [0u8; 512];
        directory[..128].copy_from_slice(&directory_entry("Root Entry", 5, 1, END_OF_CHAIN, 0));
        directory[128..256].copy_from_slice(&directory_entry(
            "Workbook",
            2,
            FREE,
            self.stream.0,
            self.stream.1,
        ));
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&fat);
        bytes.extend_from_slice(&directory);
        for sector in &self.sectors[1..] {
            bytes.extend_from_slice(sector);
        }
        bytes
    }
}

fn put16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// A 128-byte directory entry: `kind` 5 is the root, 2 a stream.
fn directory_entry(name: &str, kind: u8, child: u32, start: u32, size: u32) -> [u8; 128] {
    let mut entry = [0u8; 128];
    let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    entry[..utf16.len()].copy_from_slice(&utf16);
    put16(&mut entry, 64, (utf16.len() + 2) as u16);
    entry[66] = kind;
    entry[67] = 1;
    put32(&mut entry, 68, FREE);
    put32(&mut entry, 72, FREE);
    put32(&mut entry, 76, child);
    put32(&mut entry, 116, start);
    put32(&mut entry, 120, size);
    entry
}

/// A BIFF8 record.
fn record(kind: u16, length: u16, data: &[u8]) -> Vec<u8> {
    let mut bytes = kind.to_le_bytes().to_vec();
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// A workbook-globals BOF record.
fn bof() -> Vec<u8> {
    let mut data = vec![0u8; 16];
    data[..2].copy_from_slice(&0x0600u16.to_le_bytes());
    data[2..4].copy_from_slice(&0x0005u16.to_le_bytes());
    record(0x0809, 16, &data)
}

/// A `Workbook` stream that declares four billion bytes in a file of a few KB.
fn xls_stream_size() -> Vec<u8> {
    let mut stream = bof();
    stream.resize(4096, 0);
    CompoundFile::with_stream(&stream, 4_000_000_000).to_bytes()
}

/// A directory whose sector chain points back at itself: a reader that follows it without a
/// bound never stops.
fn xls_looping_directory() -> Vec<u8> {
    let mut stream = bof();
    stream.resize(4096, 0);
    let mut file = CompoundFile::with_stream(&stream, 4096);
    file.fat[1] = 1;
    file.to_bytes()
}

/// Records that declare more bytes than the stream holds: a shared-string table of 4 billion
/// strings whose record claims 65,535 bytes, then the stream ends.
fn xls_huge_records() -> Vec<u8> {
    let mut stream = bof();
    let mut sst = u32::MAX.to_le_bytes().to_vec();
    sst.extend_from_slice(&u32::MAX.to_le_bytes());
    stream.extend(record(0x00FC, u16::MAX, &sst));
    stream.resize(4096, 0xFF);
    let size = stream.len() as u32;
    CompoundFile::with_stream(&stream, size).to_bytes()
}

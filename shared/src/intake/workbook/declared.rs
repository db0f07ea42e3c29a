//! What a workbook declares about its own size, read before calamine sees it.
//!
//! calamine reserves memory for what a file declares (the `.xlsx` shared-string count, the whole
//! rectangle between a sheet's first and last cell, `.ods` repeated rows and columns), and a
//! failed allocation aborts the process. So every declaration that decides an allocation is read
//! here first, streaming and with bounded memory, and a workbook that declares more than the
//! limits allow is refused in words. Conversion also runs in a child process under a memory and
//! time limit (see [`super::child`]): this check gives the admin the reason, the child's limits
//! are the guarantee.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use quick_xml::events::{BytesStart, Event};

use super::{WorkbookError, WorkbookLimits};

/// Most files (parts) in a workbook's ZIP container; real workbooks hold a few dozen.
pub const MAX_PARTS: usize = 1_000;

/// The largest row and column numbers a spreadsheet has (Excel's 1,048,576 × 16,384).
const MAX_ROW: u64 = 1_048_576;
const MAX_COLUMN: u64 = 16_384;

/// Refuses a workbook whose container or sheets declare more than `limits` allow; leaves `input`
/// at its start. Files that are not a ZIP or OLE2 container pass (no format will open them).
pub fn check(input: &mut (impl Read + Seek), limits: &WorkbookLimits) -> Result<(), WorkbookError> {
    let mut magic = [0u8; 8];
    let n = read_up_to(input, &mut magic)?;
    input.rewind().map_err(super::unreadable)?;
    let result = match &magic[..n] {
        [b'P', b'K', 3, 4, ..] => check_zip(input, limits),
        [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1] => check_compound_file(input),
        _ => Ok(()),
    };
    input.rewind().map_err(super::unreadable)?;
    result
}

/// Fills as much of `buf` as the input has.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, WorkbookError> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]).map_err(super::unreadable)? {
            0 => break,
            read => n += read,
        }
    }
    Ok(n)
}

/// A refusal that names what the workbook declares and the limit it passes.
fn too_large(declared: String, limit: String) -> WorkbookError {
    WorkbookError::TooLarge {
        reason: format!("{declared}; {limit}"),
    }
}

/// The container's part count and unpacked size, then each part that decides an allocation.
fn check_zip(input: &mut (impl Read + Seek), limits: &WorkbookLimits) -> Result<(), WorkbookError> {
    let Ok(mut archive) = zip::ZipArchive::new(input) else {
        return Ok(());
    };
    if archive.len() > MAX_PARTS {
        return Err(too_large(
            format!("The workbook holds {} files", archive.len()),
            format!("a workbook may hold at most {MAX_PARTS}"),
        ));
    }
    let mut unpacked = 0u64;
    for i in 0..archive.len() {
        let part = archive.by_index_raw(i).map_err(super::unreadable)?;
        unpacked = unpacked.saturating_add(part.size());
    }
    if unpacked > limits.max_unpacked_bytes {
        return Err(unpacked_too_large(unpacked, limits));
    }
    let mut read = 0u64;
    for i in 0..archive.len() {
        let mut part = archive.by_index(i).map_err(super::unreadable)?;
        if !is_xml(&part.name().map_err(super::unreadable)?) {
            continue;
        }
        // A part may unpack to more than it declares: never read past the limit, all parts
        // together.
        let mut counted = Counted::new(&mut part, limits.max_unpacked_bytes - read);
        let result = check_xml(&mut BufReader::new(&mut counted), limits);
        read += counted.read;
        if counted.exceeded() {
            return Err(unpacked_too_large(read, limits));
        }
        result?;
    }
    Ok(())
}

fn unpacked_too_large(unpacked: u64, limits: &WorkbookLimits) -> WorkbookError {
    too_large(
        format!("The workbook unpacks to {unpacked} bytes"),
        format!(
            "the most this service unpacks is {} bytes (MAX_WORKBOOK_UNPACKED_BYTES)",
            limits.max_unpacked_bytes
        ),
    )
}

/// Whether a part is XML, by its name as calamine reads names (any case, `\` for `/`). Every XML
/// part is checked for every declaration, whatever it is called: calamine finds a workbook's parts
/// through its relationship files, so a shared-string table or a sheet may have any name.
fn is_xml(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".xml")
}

/// Reads up to `limit` bytes of a part and remembers whether it had more.
struct Counted<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R> Counted<R> {
    fn new(inner: R, limit: u64) -> Self {
        Counted {
            inner,
            read: 0,
            limit,
        }
    }

    fn exceeded(&self) -> bool {
        self.read > self.limit
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.exceeded() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Calls `visit` with every start (or empty) element of an XML part until it returns `false`.
/// Malformed XML ends the walk quietly: calamine reports it when it reads the part.
fn walk(
    xml: &mut impl BufRead,
    mut visit: impl FnMut(&BytesStart<'_>, bool) -> Result<bool, WorkbookError>,
) -> Result<(), WorkbookError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        let go_on = match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => visit(&e, false)?,
            Ok(Event::Empty(e)) => visit(&e, true)?,
            Ok(Event::End(e)) => {
                visit(&BytesStart::new(end_marker(e.local_name().as_ref())), true)?
            }
            Ok(Event::Eof) | Err(_) => false,
            Ok(_) => true,
        };
        if !go_on {
            return Ok(());
        }
        buf.clear();
    }
}

/// End tags reach `visit` as a start element named `/name`, so one closure sees the nesting.
fn end_marker(local: &str) -> String {
    format!("/{local}")
}

/// The value of the attribute whose local name is `name`.
fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .map(|a| a.value.into_owned())
}

/// A numeric attribute, saturating: a count too large for `u64` is as good as `u64::MAX`.
fn count_attribute(element: &BytesStart<'_>, name: &str) -> Option<u64> {
    let text = attribute(element, name)?;
    let digits = text.trim();
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        Some(digits.parse().unwrap_or(u64::MAX))
    } else {
        None
    }
}

/// Every declaration an XML part may make, in one pass: an `.xlsx` shared-string count, an `.xlsx`
/// sheet's dimension and cell references, `.ods` tables' repeated rows and columns.
fn check_xml(xml: &mut impl BufRead, limits: &WorkbookLimits) -> Result<(), WorkbookError> {
    let mut sheet = SheetWalk::default();
    let mut ods = OdsWalk::default();
    walk(xml, |element, empty| {
        match element.local_name().as_ref() {
            "sst" => check_shared_strings(element, limits)?,
            "dimension" | "row" | "c" => sheet.visit(element),
            _ => ods.visit(element, empty),
        }
        Ok(sheet.within(limits) && ods.extent.cells() <= limits.max_cells)
    })?;
    sheet.check(limits)?;
    if ods.extent.cells() > limits.max_cells {
        return Err(too_large(
            format!(
                "The sheet's repeated rows and columns span more than {} cells",
                limits.max_cells
            ),
            cells_limit(limits),
        ));
    }
    Ok(())
}

/// An `.xlsx` shared-string table's declared counts.
fn check_shared_strings(
    sst: &BytesStart<'_>,
    limits: &WorkbookLimits,
) -> Result<(), WorkbookError> {
    for name in ["uniqueCount", "count"] {
        let declared = count_attribute(sst, name).unwrap_or(0);
        if declared > limits.max_cells {
            return Err(too_large(
                format!("The workbook declares {declared} shared strings"),
                cells_limit(limits),
            ));
        }
    }
    Ok(())
}

fn cells_limit(limits: &WorkbookLimits) -> String {
    format!(
        "the most a workbook may hold is {} cells (MAX_WORKBOOK_CELLS)",
        limits.max_cells
    )
}

/// The smallest rectangle holding every row and cell a sheet names, 1-based.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Extent {
    rows: Option<(u64, u64)>,
    columns: Option<(u64, u64)>,
}

impl Extent {
    fn add_row(&mut self, row: u64) {
        self.rows = Some(widen(self.rows, row, row));
    }

    fn add_rows(&mut self, first: u64, last: u64) {
        self.rows = Some(widen(self.rows, first, last));
    }

    fn add_columns(&mut self, first: u64, last: u64) {
        self.columns = Some(widen(self.columns, first, last));
    }

    fn cells(&self) -> u64 {
        let span = |range: Option<(u64, u64)>| range.map_or(0, |(lo, hi)| hi - lo + 1);
        span(self.rows).saturating_mul(span(self.columns))
    }
}

fn widen(range: Option<(u64, u64)>, lo: u64, hi: u64) -> (u64, u64) {
    range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi)))
}

/// A cell reference such as `XFD1048576` as (row, column), 1-based; `None` if it is not one.
fn cell_reference(text: &str) -> Option<(u64, u64)> {
    let split = text.find(|c: char| c.is_ascii_digit())?;
    let (letters, digits) = text.split_at(split);
    if letters.is_empty() || letters.len() > 3 || !letters.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return None;
    }
    let column = letters.bytes().fold(0u64, |n, b| {
        n * 26 + u64::from(b.to_ascii_uppercase() - b'A' + 1)
    });
    let row: u64 = digits.parse().ok()?;
    ((1..=MAX_ROW).contains(&row) && column <= MAX_COLUMN).then_some((row, column))
}

/// An `.xlsx` sheet's declared dimension and the extent of the rows and cells it names.
#[derive(Default)]
struct SheetWalk {
    declared: Extent,
    named: Extent,
}

impl SheetWalk {
    fn visit(&mut self, element: &BytesStart<'_>) {
        match element.local_name().as_ref() {
            "dimension" => {
                let range = attribute(element, "ref").unwrap_or_default();
                for (row, column) in range.split(':').filter_map(cell_reference) {
                    self.declared.add_row(row);
                    self.declared.add_columns(column, column);
                }
            }
            "row" => {
                if let Some(row) = count_attribute(element, "r").filter(|r| *r <= MAX_ROW) {
                    self.named.add_row(row);
                }
            }
            _ => {
                let reference = attribute(element, "r");
                if let Some((row, column)) = reference.as_deref().and_then(cell_reference) {
                    self.named.add_row(row);
                    self.named.add_columns(column, column);
                }
            }
        }
    }

    fn within(&self, limits: &WorkbookLimits) -> bool {
        self.declared.cells() <= limits.max_cells && self.named.cells() <= limits.max_cells
    }

    fn check(&self, limits: &WorkbookLimits) -> Result<(), WorkbookError> {
        for (what, extent) in [
            ("declares a dimension of", self.declared),
            ("spans", self.named),
        ] {
            if extent.cells() > limits.max_cells {
                return Err(too_large(
                    format!("The sheet {what} {} cells", extent.cells()),
                    cells_limit(limits),
                ));
            }
        }
        Ok(())
    }
}

/// Walks `.ods` content: rows and cells with their repeat counts, per table.
#[derive(Default)]
struct OdsWalk {
    extent: Extent,
    /// The next row's number in the table, repeats expanded.
    next_row: u64,
    /// The current row's repeat count, next column, and the end of its last non-empty cell.
    row: Option<(u64, u64, Option<u64>)>,
}

impl OdsWalk {
    fn visit(&mut self, element: &BytesStart<'_>, empty: bool) {
        match element.local_name().as_ref() {
            "table" => self.next_row = 0,
            "table-row" => {
                let repeats = count_attribute(element, "number-rows-repeated").unwrap_or(1);
                self.row = Some((repeats.max(1), 0, None));
                if empty {
                    self.end_row();
                }
            }
            "/table-row" => self.end_row(),
            "table-cell" | "covered-table-cell" => self.cell(element, empty),
            _ => {}
        }
    }

    /// A cell is non-empty if it has a value type or content (a start tag, not an empty one).
    fn cell(&mut self, element: &BytesStart<'_>, empty: bool) {
        let Some((_, column, last)) = self.row.as_mut() else {
            return;
        };
        let repeats = count_attribute(element, "number-columns-repeated")
            .unwrap_or(1)
            .max(1);
        let filled = !empty || attribute(element, "value-type").is_some();
        let end = column.saturating_add(repeats);
        if filled {
            *last = Some(end);
        }
        *column = end;
    }

    fn end_row(&mut self) {
        let Some((repeats, _, last)) = self.row.take() else {
            return;
        };
        let first = self.next_row;
        self.next_row = first.saturating_add(repeats);
        if let Some(last) = last {
            self.extent.add_rows(first, self.next_row - 1);
            self.extent.add_columns(0, last - 1);
        }
    }
}

/// An OLE2 compound file (`.xls`): no stream can be longer than the file, and the directory's
/// sector chain must end. calamine follows the directory chain without a bound, so a chain that
/// loops would grow its memory until the process dies.
fn check_compound_file(input: &mut (impl Read + Seek)) -> Result<(), WorkbookError> {
    let length = input.seek(SeekFrom::End(0)).map_err(super::unreadable)?;
    input.rewind().map_err(super::unreadable)?;
    let mut header = [0u8; 512];
    if read_up_to(input, &mut header)? < header.len() {
        return Ok(());
    }
    let sector_size: u64 = match u16::from_le_bytes([header[30], header[31]]) {
        9 => 512,
        12 => 4096,
        _ => return Ok(()),
    };
    let sectors = length.div_ceil(sector_size);
    let fat = read_fat(input, &header, sector_size, sectors)?;
    let directory_start = le_u32(&header[48..52]);
    let chain = sector_chain(&fat, directory_start, sectors)?;
    for sector in chain {
        let mut entries = vec![0u8; sector_size as usize];
        input
            .seek(SeekFrom::Start((u64::from(sector) + 1) * sector_size))
            .map_err(super::unreadable)?;
        read_up_to(input, &mut entries)?;
        for entry in entries.chunks_exact(128) {
            check_stream_size(entry, sector_size, length)?;
        }
    }
    Ok(())
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The FAT from the sectors listed in the header (the first 109; a file that needs more FAT
/// sectors than that is far larger than any workbook this service converts).
fn read_fat(
    input: &mut (impl Read + Seek),
    header: &[u8; 512],
    sector_size: u64,
    sectors: u64,
) -> Result<Vec<u32>, WorkbookError> {
    let mut fat = Vec::new();
    for slot in header[76..512].chunks_exact(4).map(le_u32) {
        if u64::from(slot) >= sectors {
            continue;
        }
        let mut sector = vec![0u8; sector_size as usize];
        input
            .seek(SeekFrom::Start((u64::from(slot) + 1) * sector_size))
            .map_err(super::unreadable)?;
        read_up_to(input, &mut sector)?;
        fat.extend(sector.chunks_exact(4).map(le_u32));
    }
    Ok(fat)
}

/// The sectors of a chain, refusing one that is longer than the file has sectors (it loops).
fn sector_chain(fat: &[u32], start: u32, sectors: u64) -> Result<Vec<u32>, WorkbookError> {
    let mut chain = Vec::new();
    let mut sector = start;
    while u64::from(sector) < sectors {
        if chain.len() as u64 >= sectors {
            return Err(WorkbookError::Unreadable(
                "its directory's sector chain loops".to_owned(),
            ));
        }
        chain.push(sector);
        sector = fat.get(sector as usize).copied().unwrap_or(u32::MAX);
    }
    Ok(chain)
}

/// A directory entry's stream size against the file's length.
fn check_stream_size(entry: &[u8], sector_size: u64, length: u64) -> Result<(), WorkbookError> {
    let low = u64::from(le_u32(&entry[120..124]));
    // Version 3 files (512-byte sectors) keep only the low 32 bits.
    let high = if sector_size == 512 {
        0
    } else {
        u64::from(le_u32(&entry[124..128]))
    };
    let declared = low | (high << 32);
    if declared > length {
        return Err(too_large(
            format!("A stream of the workbook declares {declared} bytes"),
            format!("the file itself has {length} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_references_read_as_row_and_column() {
        assert_eq!(cell_reference("A1"), Some((1, 1)));
        assert_eq!(cell_reference("xfd1048576"), Some((1_048_576, 16_384)));
        assert_eq!(cell_reference("AA10"), Some((10, 27)));
        for not_one in ["", "A", "12", "A0", "XFE1", "A1048577", "ABCD1", "A1B"] {
            assert_eq!(cell_reference(not_one), None, "{not_one}");
        }
    }

    #[test]
    fn an_extent_counts_the_cells_of_its_rectangle() {
        let mut extent = Extent::default();
        assert_eq!(extent.cells(), 0);
        extent.add_row(3);
        extent.add_columns(2, 2);
        assert_eq!(extent.cells(), 1);
        extent.add_row(1_048_576);
        extent.add_columns(16_384, 16_384);
        assert_eq!(extent.cells(), 1_048_574 * 16_383);
    }

    #[test]
    fn a_looping_sector_chain_is_refused() {
        let fat = [1, 2, 1];
        assert!(sector_chain(&fat, 0, 3).is_err());
        let fat = [1, 2, 0xFFFF_FFFE];
        assert_eq!(sector_chain(&fat, 0, 3).unwrap(), [0, 1, 2]);
    }
}

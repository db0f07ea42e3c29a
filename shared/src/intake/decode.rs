//! What kind of file an upload is, and transcoding its text to UTF-8.
//!
//! A [`Sniffer`] is fed every piece of an upload while it is written to disk, and decides at the end.
//! It keeps the first bytes, whether the first line holds a NUL byte, and a running UTF-8 check (an incomplete
//! sequence at the end of a piece is carried to the next one, so the result never depends on
//! where the pieces were split).
//!
//! # How [`Sniffer::finish`] decides
//!
//! The first rule that matches wins:
//!
//! 1. An empty upload is [`Kind::Text`] in [`TextEncoding::Utf8`] (the header check then reports
//!    it as empty).
//! 2. A UTF-16 byte-order mark: `FF FE` is [`TextEncoding::Utf16Le`], `FE FF` is
//!    [`TextEncoding::Utf16Be`].
//! 3. Magic bytes at the start: a ZIP (`PK\x03\x04`: xlsx, ods) or OLE2 (`D0 CF 11 E0 A1 B1 1A
//!    E1`: xls) container is a [`Kind::Workbook`]; a PNG (`89 50 4E 47 0D 0A 1A 0A`), JPEG
//!    (`FF D8 FF`), GIF (`GIF8`), PDF (`%PDF`) or GZIP (`1F 8B`) file is [`Kind::Binary`], named.
//! 4. A NUL byte in the first line (up to the first line feed, within [`FIRST_LINE_LIMIT`]) is
//!    [`Kind::Binary`] "binary data": a header row never holds one, and binary files have them
//!    early. A NUL in a later line is row content: that row alone is invalid, as one bad row never
//!    rejects a file. UTF-16 *without* a byte-order mark lands here too (every ASCII character has
//!    a NUL half); the API
//!    asks the admin to export it with a BOM (Excel's "Unicode Text" has one).
//! 5. A UTF-8 byte-order mark (`EF BB BF`) is [`TextEncoding::Utf8`].
//! 6. Otherwise, all valid UTF-8 is [`TextEncoding::Utf8`].
//! 7. Not valid UTF-8, with no valid multi-byte UTF-8 sequence anywhere, is
//!    [`TextEncoding::Windows1252`] (Excel's "CSV (Comma delimited)" on Windows).
//! 8. Invalid bytes *and* valid multi-byte sequences (a UTF-8 file with a few corrupt bytes) stay
//!    [`TextEncoding::Utf8`]: the rows holding the bad bytes are then reported one by one, and a
//!    mostly-UTF-8 file is never turned into mojibake.
//!
//! # Speed
//!
//! A piece of pure ASCII costs one `is_ascii` pass and one NUL search; the UTF-8 check runs on
//! whole runs with [`std::str::from_utf8`] and stops for good at the first valid multi-byte
//! sequence (from then on the file is UTF-8 whatever follows), so a 100 MiB upload is sniffed in a
//! fraction of its upload time.

use std::io::{self, Read, Write};

use encoding_rs::{CoderResult, Decoder, Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};

/// How much of the first line is searched for NUL bytes (the header check reads no further).
const FIRST_LINE_LIMIT: usize = 64 * 1024;

/// How many leading bytes are kept for the byte-order mark and magic-byte rules.
const HEAD_LEN: usize = 8;

/// The UTF-8 byte-order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Size of the input and output buffers of [`transcode`].
const TRANSCODE_BUFFER: usize = 64 * 1024;

/// Leading bytes of the kinds recognised by rule 3 of [`Sniffer::finish`].
const MAGIC: [(&[u8], Kind); 7] = [
    (b"PK\x03\x04", Kind::Workbook),
    (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", Kind::Workbook),
    (
        b"\x89PNG\r\n\x1A\n",
        Kind::Binary {
            what: "a PNG image",
        },
    ),
    (
        b"\xFF\xD8\xFF",
        Kind::Binary {
            what: "a JPEG image",
        },
    ),
    (
        b"GIF8",
        Kind::Binary {
            what: "a GIF image",
        },
    ),
    (
        b"%PDF",
        Kind::Binary {
            what: "a PDF document",
        },
    ),
    (
        b"\x1F\x8B",
        Kind::Binary {
            what: "a GZIP archive",
        },
    ),
];

/// A text encoding an upload can be read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8, with or without a byte-order mark.
    Utf8,
    /// UTF-16 little-endian, with a byte-order mark (Excel's "Unicode Text").
    Utf16Le,
    /// UTF-16 big-endian, with a byte-order mark.
    Utf16Be,
    /// Windows-1252 (Excel's "CSV (Comma delimited)" on Western Windows).
    Windows1252,
}

impl TextEncoding {
    /// The encoding's name as shown to admins: "UTF-8", "UTF-16 LE", "UTF-16 BE", "Windows-1252".
    pub fn label(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf16Le => "UTF-16 LE",
            TextEncoding::Utf16Be => "UTF-16 BE",
            TextEncoding::Windows1252 => "Windows-1252",
        }
    }

    /// The encoding_rs encoding to decode with; `None` for UTF-8, which is copied.
    fn decoded_with(self) -> Option<&'static Encoding> {
        match self {
            TextEncoding::Utf8 => None,
            TextEncoding::Utf16Le => Some(UTF_16LE),
            TextEncoding::Utf16Be => Some(UTF_16BE),
            TextEncoding::Windows1252 => Some(WINDOWS_1252),
        }
    }
}

/// What an upload is, as decided by [`Sniffer::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text in the given encoding, to be read as CSV.
    Text(TextEncoding),
    /// A ZIP (xlsx, ods) or OLE2 (xls) container, to be opened by `workbook::to_csv`.
    Workbook,
    /// Not a spreadsheet file; `what` names it for the admin, e.g. "a PNG image", "a PDF document",
    /// "a GZIP archive", "binary data".
    Binary {
        /// What the file looks like, with its article.
        what: &'static str,
    },
}

/// Fed every piece of an upload, in order, while it is written to disk; decides its kind at the
/// end (see the [module documentation](self) for the rules).
#[derive(Debug, Clone, Default)]
pub struct Sniffer {
    /// The first [`HEAD_LEN`] bytes (fewer if the upload is shorter).
    head: [u8; HEAD_LEN],
    /// How many bytes of `head` are filled.
    head_len: usize,
    /// Whether the first line holds a NUL byte.
    nul: bool,
    /// Bytes of the first line searched so far.
    first_line_len: usize,
    /// Whether the first line has ended (or its search reached [`FIRST_LINE_LIMIT`]).
    first_line_done: bool,
    /// The running UTF-8 check.
    utf8: Utf8Scan,
}

impl Sniffer {
    /// A sniffer that has seen nothing yet.
    pub fn new() -> Sniffer {
        Sniffer::default()
    }

    /// Looks at the next piece of the upload; pieces may be split anywhere.
    pub fn feed(&mut self, piece: &[u8]) {
        self.keep_head(piece);
        self.search_first_line(piece);
        self.utf8.feed(piece);
    }

    /// Looks for a NUL byte in the part of `piece` that belongs to the first line.
    fn search_first_line(&mut self, piece: &[u8]) {
        if self.first_line_done {
            return;
        }
        let part = &piece[..piece.len().min(FIRST_LINE_LIMIT - self.first_line_len)];
        let end = part.iter().position(|&b| b == b'\n').unwrap_or(part.len());
        self.nul |= part[..end].contains(&0);
        self.first_line_len += end;
        self.first_line_done = end < part.len() || self.first_line_len >= FIRST_LINE_LIMIT;
    }

    /// Decides what the whole upload is.
    pub fn finish(self) -> Kind {
        let head = &self.head[..self.head_len];
        if head.is_empty() {
            return Kind::Text(TextEncoding::Utf8);
        }
        if let Some(encoding) = utf16_bom(head) {
            return Kind::Text(encoding);
        }
        if let Some(kind) = magic(head) {
            return kind;
        }
        if self.nul {
            return Kind::Binary {
                what: "binary data",
            };
        }
        if head.starts_with(UTF8_BOM) {
            return Kind::Text(TextEncoding::Utf8);
        }
        Kind::Text(self.utf8.verdict())
    }

    /// Copies the start of `piece` into `head` while it is not full.
    fn keep_head(&mut self, piece: &[u8]) {
        let n = (HEAD_LEN - self.head_len).min(piece.len());
        self.head[self.head_len..self.head_len + n].copy_from_slice(&piece[..n]);
        self.head_len += n;
    }
}

/// The encoding named by a UTF-16 byte-order mark at the start of `head`.
fn utf16_bom(head: &[u8]) -> Option<TextEncoding> {
    if head.starts_with(b"\xFF\xFE") {
        Some(TextEncoding::Utf16Le)
    } else if head.starts_with(b"\xFE\xFF") {
        Some(TextEncoding::Utf16Be)
    } else {
        None
    }
}

/// The kind named by the magic bytes at the start of `head`.
fn magic(head: &[u8]) -> Option<Kind> {
    MAGIC
        .iter()
        .find(|(prefix, _)| head.starts_with(prefix))
        .map(|&(_, kind)| kind)
}

/// A streaming UTF-8 check: was every byte valid, and was there a valid multi-byte sequence?
#[derive(Debug, Clone, Copy, Default)]
struct Utf8Scan {
    /// An invalid byte sequence was seen.
    invalid: bool,
    /// A valid multi-byte sequence was seen; the verdict is then UTF-8 and scanning stops.
    multibyte: bool,
    /// The start of a sequence cut by the end of the last piece.
    pending: [u8; 3],
    /// How many bytes of `pending` are held.
    pending_len: usize,
}

impl Utf8Scan {
    /// Checks the next piece, continuing any sequence the last one cut.
    fn feed(&mut self, piece: &[u8]) {
        if self.multibyte {
            return;
        }
        let rest = self.complete_pending(piece);
        self.scan(rest);
    }

    /// Rules 6 to 8 of [`Sniffer::finish`]; a sequence cut by the end of the upload is invalid.
    fn verdict(&self) -> TextEncoding {
        let valid = !self.invalid && self.pending_len == 0;
        if valid || self.multibyte {
            TextEncoding::Utf8
        } else {
            TextEncoding::Windows1252
        }
    }

    /// Joins the held bytes with the start of `piece` and judges that sequence; returns the part
    /// of `piece` left to scan.
    fn complete_pending<'a>(&mut self, piece: &'a [u8]) -> &'a [u8] {
        let held = self.pending_len;
        if held == 0 {
            return piece;
        }
        // A sequence is at most 4 bytes long, so 4 joined bytes always settle it.
        let take = piece.len().min(4 - held);
        let mut joined = [0; 4];
        joined[..held].copy_from_slice(&self.pending[..held]);
        joined[held..held + take].copy_from_slice(&piece[..take]);
        self.pending_len = 0;
        match std::str::from_utf8(&joined[..held + take]) {
            // The held lead byte started a complete, valid sequence.
            Ok(_) => {
                self.multibyte = true;
                &[]
            }
            Err(e) if e.valid_up_to() > 0 => {
                self.multibyte = true;
                &[]
            }
            Err(e) => match e.error_len() {
                Some(bad) => {
                    self.invalid = true;
                    &piece[bad.saturating_sub(held).min(piece.len())..]
                }
                // Still incomplete: the piece was shorter than the rest of the sequence.
                None => {
                    self.hold(&joined[..held + take]);
                    &[]
                }
            },
        }
    }

    /// Scans whole runs with the standard library until a valid multi-byte sequence is found, the
    /// bytes end, or they end inside a sequence (which is then held for the next piece).
    fn scan(&mut self, mut rest: &[u8]) {
        while !rest.is_ascii() {
            let error = match std::str::from_utf8(rest) {
                // Valid and not all ASCII: it holds a multi-byte sequence.
                Ok(_) => {
                    self.multibyte = true;
                    return;
                }
                Err(error) => error,
            };
            let (valid, after) = rest.split_at(error.valid_up_to());
            if !valid.is_ascii() {
                self.multibyte = true;
                return;
            }
            match error.error_len() {
                Some(bad) => {
                    self.invalid = true;
                    rest = &after[bad..];
                }
                None => {
                    self.hold(after);
                    return;
                }
            }
        }
    }

    /// Keeps the start of a cut sequence (at most 3 bytes; anything longer is invalid).
    fn hold(&mut self, bytes: &[u8]) {
        if bytes.len() > self.pending.len() {
            self.invalid = true;
            return;
        }
        self.pending[..bytes.len()].copy_from_slice(bytes);
        self.pending_len = bytes.len();
    }
}

/// Streams `input`, encoded as `from`, to UTF-8 in `output` with no BOM, in bounded memory (64 KiB
/// buffers and encoding_rs's streaming decoder); malformed UTF-16 (and Windows-1252's few
/// unassigned bytes) become U+FFFD. Returns the bytes written.
///
/// For [`TextEncoding::Utf8`] it copies the bytes as they are, dropping a leading BOM: invalid
/// bytes are kept, so that the rows holding them are reported as invalid rather than silently
/// changed.
pub fn transcode(
    from: TextEncoding,
    input: &mut impl Read,
    output: &mut impl Write,
) -> io::Result<u64> {
    match from.decoded_with() {
        None => copy_without_bom(input, output),
        Some(encoding) => decode(encoding.new_decoder_with_bom_removal(), input, output),
    }
}

/// Copies `input` to `output`, leaving out a leading UTF-8 BOM.
fn copy_without_bom(input: &mut impl Read, output: &mut impl Write) -> io::Result<u64> {
    let mut start = [0; UTF8_BOM.len()];
    let n = read_up_to(input, &mut start)?;
    let start = start[..n].strip_prefix(UTF8_BOM).unwrap_or(&start[..n]);
    output.write_all(start)?;
    let rest = io::copy(input, output)?;
    Ok(start.len() as u64 + rest)
}

/// Decodes all of `input` to UTF-8 with `decoder`, a buffer at a time.
fn decode(mut decoder: Decoder, input: &mut impl Read, output: &mut impl Write) -> io::Result<u64> {
    let mut src = vec![0; TRANSCODE_BUFFER];
    let mut dst = vec![0; TRANSCODE_BUFFER];
    let mut written = 0;
    loop {
        let n = read_some(input, &mut src)?;
        let last = n == 0;
        written += decode_piece(&mut decoder, &src[..n], &mut dst, last, output)?;
        if last {
            return Ok(written);
        }
    }
}

/// Decodes one buffer of input, writing each time `dst` fills.
fn decode_piece(
    decoder: &mut Decoder,
    mut src: &[u8],
    dst: &mut [u8],
    last: bool,
    output: &mut impl Write,
) -> io::Result<u64> {
    let mut written = 0;
    loop {
        let (result, read, out, _replaced) = decoder.decode_to_utf8(src, dst, last);
        output.write_all(&dst[..out])?;
        written += out as u64;
        src = &src[read..];
        if matches!(result, CoderResult::InputEmpty) {
            return Ok(written);
        }
    }
}

/// One `read`, retried when interrupted; 0 means the end of the input.
fn read_some(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

/// Fills `buf` unless the input ends first; returns how many bytes were read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = read_some(input, &mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAMES: &str = "José Núñez, Zoë Brontë, Søren";

    fn sniff(pieces: &[&[u8]]) -> Kind {
        let mut sniffer = Sniffer::new();
        for piece in pieces {
            sniffer.feed(piece);
        }
        sniffer.finish()
    }

    fn sniff_whole(bytes: &[u8]) -> Kind {
        sniff(&[bytes])
    }

    fn utf16(text: &str, little_endian: bool) -> Vec<u8> {
        text.encode_utf16()
            .flat_map(|unit| {
                if little_endian {
                    unit.to_le_bytes()
                } else {
                    unit.to_be_bytes()
                }
            })
            .collect()
    }

    fn with_prefix(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
        [prefix, rest].concat()
    }

    fn transcoded(from: TextEncoding, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = transcode(from, &mut &input[..], &mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    /// A reader that hands out its bytes in the given piece sizes (cycled), to cut sequences.
    struct Trickle<'a> {
        bytes: &'a [u8],
        sizes: Vec<usize>,
        next: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.next % self.sizes.len()].max(1);
            self.next += 1;
            let n = size.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn labels_name_each_encoding() {
        assert_eq!(TextEncoding::Utf8.label(), "UTF-8");
        assert_eq!(TextEncoding::Utf16Le.label(), "UTF-16 LE");
        assert_eq!(TextEncoding::Utf16Be.label(), "UTF-16 BE");
        assert_eq!(TextEncoding::Windows1252.label(), "Windows-1252");
    }

    #[test]
    fn an_empty_upload_is_utf8_text() {
        assert_eq!(sniff(&[]), Kind::Text(TextEncoding::Utf8));
        assert_eq!(sniff(&[b"", b""]), Kind::Text(TextEncoding::Utf8));
    }

    #[test]
    fn utf16_byte_order_marks_name_the_byte_order() {
        let le = with_prefix(b"\xFF\xFE", &utf16("Email\r\n", true));
        let be = with_prefix(b"\xFE\xFF", &utf16("Email\r\n", false));
        assert_eq!(sniff_whole(&le), Kind::Text(TextEncoding::Utf16Le));
        assert_eq!(sniff_whole(&be), Kind::Text(TextEncoding::Utf16Be));
    }

    #[test]
    fn a_utf16_bom_split_across_pieces_is_still_seen() {
        let le = with_prefix(b"\xFF\xFE", &utf16("Email", true));
        assert_eq!(
            sniff(&[&le[..1], &le[1..]]),
            Kind::Text(TextEncoding::Utf16Le)
        );
    }

    #[test]
    fn a_utf8_bom_is_utf8_even_split_across_pieces() {
        let bytes = with_prefix(UTF8_BOM, b"Email\n");
        assert_eq!(sniff_whole(&bytes), Kind::Text(TextEncoding::Utf8));
        let (a, b) = bytes.split_at(2);
        assert_eq!(
            sniff(&[&a[..1], &a[1..], b]),
            Kind::Text(TextEncoding::Utf8)
        );
    }

    #[test]
    fn zip_and_ole2_containers_are_workbooks() {
        assert_eq!(sniff_whole(b"PK\x03\x04\x14\x00rest"), Kind::Workbook);
        let ole = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\x00\x00";
        assert_eq!(sniff_whole(ole), Kind::Workbook);
        assert_eq!(sniff(&[&ole[..3], &ole[3..]]), Kind::Workbook);
    }

    #[test]
    fn known_binary_formats_are_named() {
        let cases: [(&[u8], &str); 5] = [
            (b"\x89PNG\r\n\x1A\n\x00\x00\x00\rIHDR", "a PNG image"),
            (b"\xFF\xD8\xFF\xE0\x00\x10JFIF", "a JPEG image"),
            (b"GIF89a\x01\x00", "a GIF image"),
            (b"%PDF-1.7\n%\xE2\xE3", "a PDF document"),
            (b"\x1F\x8B\x08\x00", "a GZIP archive"),
        ];
        for (bytes, what) in cases {
            assert_eq!(sniff_whole(bytes), Kind::Binary { what }, "{what}");
        }
    }

    #[test]
    fn a_nul_byte_in_the_first_line_is_binary_data() {
        let binary = Kind::Binary {
            what: "binary data",
        };
        assert_eq!(sniff_whole(b"Em\x00ail,Role\nab,Admin\n"), binary);
        assert_eq!(sniff(&[b"Em", b"\x00", b"ail\n"]), binary);
        assert_eq!(sniff_whole(&with_prefix(UTF8_BOM, b"a\x00b")), binary);
    }

    #[test]
    fn a_nul_byte_in_a_later_line_is_row_content() {
        let text = Kind::Text(TextEncoding::Utf8);
        assert_eq!(sniff_whole(b"Email,Role\nab\x00c,Admin\n"), text);
        assert_eq!(sniff(&[b"Email,Role", b"\n", b"x", b"\x00"]), text);
        let mut long_line = vec![b'a'; FIRST_LINE_LIMIT];
        long_line.push(0);
        assert_eq!(
            sniff_whole(&long_line),
            text,
            "searched no further than the header check"
        );
    }

    #[test]
    fn utf16_without_a_bom_is_binary_data() {
        let binary = Kind::Binary {
            what: "binary data",
        };
        assert_eq!(sniff_whole(&utf16("Email,Role\n", true)), binary);
        assert_eq!(sniff_whole(&utf16("Email,Role\n", false)), binary);
    }

    #[test]
    fn valid_utf8_is_utf8() {
        assert_eq!(
            sniff_whole(b"Email\nada@example.com\n"),
            Kind::Text(TextEncoding::Utf8)
        );
        assert_eq!(
            sniff_whole(NAMES.as_bytes()),
            Kind::Text(TextEncoding::Utf8)
        );
    }

    #[test]
    fn a_multibyte_character_split_across_pieces_is_valid_utf8() {
        let text = "Zoë,Brontë\n".as_bytes();
        let split = text.iter().position(|&b| b == 0xC3).unwrap() + 1;
        let kind = sniff(&[&text[..split], &text[split..]]);
        assert_eq!(kind, Kind::Text(TextEncoding::Utf8));
        // A four-byte character cut after each of its bytes, one byte per piece.
        let emoji = "a😀b".as_bytes();
        let pieces: Vec<&[u8]> = emoji.chunks(1).collect();
        assert_eq!(sniff(&pieces), Kind::Text(TextEncoding::Utf8));
    }

    #[test]
    fn invalid_utf8_without_multibyte_sequences_is_windows_1252() {
        let (bytes, _, _) = WINDOWS_1252.encode(NAMES);
        assert_eq!(sniff_whole(&bytes), Kind::Text(TextEncoding::Windows1252));
        let pieces: Vec<&[u8]> = bytes.chunks(3).collect();
        assert_eq!(sniff(&pieces), Kind::Text(TextEncoding::Windows1252));
    }

    #[test]
    fn a_sequence_cut_by_the_end_of_the_upload_is_invalid() {
        assert_eq!(
            sniff_whole(b"Email\xC3"),
            Kind::Text(TextEncoding::Windows1252)
        );
        assert_eq!(
            sniff(&[b"Email", b"\xE2\x82"]),
            Kind::Text(TextEncoding::Windows1252)
        );
    }

    #[test]
    fn a_cut_sequence_that_goes_on_wrong_is_invalid() {
        assert_eq!(
            sniff(&[b"ab\xC3", b"(x"]),
            Kind::Text(TextEncoding::Windows1252)
        );
        assert_eq!(
            sniff(&[b"ab\xE2", b"\x82", b"x"]),
            Kind::Text(TextEncoding::Windows1252)
        );
    }

    #[test]
    fn utf8_with_a_few_corrupt_bytes_stays_utf8() {
        let mut bytes = NAMES.as_bytes().to_vec();
        bytes.extend_from_slice(b"\nBad\xFF,Row\xE9\n");
        assert_eq!(sniff_whole(&bytes), Kind::Text(TextEncoding::Utf8));
        // Corrupt bytes first, the valid multi-byte character only in a later piece.
        let kind = sniff(&[b"Bad\xE9,\xFF\n", b"Jos\xC3", b"\xA9\n"]);
        assert_eq!(kind, Kind::Text(TextEncoding::Utf8));
    }

    #[test]
    fn utf8_is_copied_without_its_bom() {
        let bytes = with_prefix(UTF8_BOM, NAMES.as_bytes());
        assert_eq!(transcoded(TextEncoding::Utf8, &bytes), NAMES.as_bytes());
        assert_eq!(
            transcoded(TextEncoding::Utf8, NAMES.as_bytes()),
            NAMES.as_bytes()
        );
        assert_eq!(transcoded(TextEncoding::Utf8, b"\xEF\xBB"), b"\xEF\xBB");
        assert_eq!(transcoded(TextEncoding::Utf8, b""), b"");
    }

    #[test]
    fn utf8_keeps_invalid_bytes_for_the_row_checks() {
        assert_eq!(transcoded(TextEncoding::Utf8, b"a\xFFb"), b"a\xFFb");
    }

    #[test]
    fn utf16_round_trips_without_its_bom() {
        for little_endian in [true, false] {
            let bom: &[u8] = if little_endian {
                b"\xFF\xFE"
            } else {
                b"\xFE\xFF"
            };
            let from = if little_endian {
                TextEncoding::Utf16Le
            } else {
                TextEncoding::Utf16Be
            };
            let bytes = with_prefix(bom, &utf16(NAMES, little_endian));
            assert_eq!(transcoded(from, &bytes), NAMES.as_bytes(), "{from:?}");
            let no_bom = utf16(NAMES, little_endian);
            assert_eq!(transcoded(from, &no_bom), NAMES.as_bytes(), "{from:?}");
        }
    }

    #[test]
    fn windows_1252_round_trips() {
        let (bytes, _, _) = WINDOWS_1252.encode(NAMES);
        assert_eq!(
            transcoded(TextEncoding::Windows1252, &bytes),
            NAMES.as_bytes()
        );
    }

    #[test]
    fn malformed_utf16_becomes_replacement_characters() {
        // A lone high surrogate, then an odd trailing byte.
        let bytes = b"\xFF\xFEa\x00\x00\xD8b\x00c";
        let out = transcoded(TextEncoding::Utf16Le, bytes);
        assert_eq!(String::from_utf8(out).unwrap(), "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn transcoding_streams_through_buffers_larger_than_one() {
        let text = NAMES.repeat(10_000);
        let bytes = with_prefix(b"\xFF\xFE", &utf16(&text, true));
        assert!(bytes.len() > 4 * TRANSCODE_BUFFER);
        assert_eq!(transcoded(TextEncoding::Utf16Le, &bytes), text.as_bytes());
    }

    /// Sniffs 100 MiB of ASCII, of Windows-1252 with an accent every line, and of UTF-8 with a
    /// corrupt byte near the end, in 64 KiB pieces. Run with `cargo test --release -p
    /// invite-shared sniffer_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing; run in release"]
    fn sniffer_throughput() {
        let ascii = b"Ada,Lovelace,ada.lovelace@example.com,Admin,,\r\n".to_vec();
        let latin = WINDOWS_1252
            .encode("José,Núñez,jose@example.com,Admin,,\r\n")
            .0
            .to_vec();
        let utf8 = "Zoë,Brontë,zoe@example.com,Builder,,\r\n"
            .as_bytes()
            .to_vec();
        for (line, expected, corrupt) in [
            (ascii, TextEncoding::Utf8, false),
            (latin, TextEncoding::Windows1252, false),
            (utf8, TextEncoding::Utf8, true),
        ] {
            let mut input = line.repeat((100 << 20) / line.len());
            if corrupt {
                let at = input.len() - 10;
                input[at] = 0xFF;
            }
            let start = std::time::Instant::now();
            let mut sniffer = Sniffer::new();
            for piece in input.chunks(64 << 10) {
                sniffer.feed(piece);
            }
            let kind = sniffer.finish();
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(kind, Kind::Text(expected));
            println!("{expected:?}: {:.0} MB/s", input.len() as f64 / secs / 1e6);
        }
    }

    fn text_like_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600),
            ".{0,200}".prop_map(String::into_bytes),
            "[a-z,\n\u{e0}-\u{ff}]{0,200}".prop_map(|s| WINDOWS_1252.encode(&s).0.into_owned()),
            (
                ".{0,100}",
                proptest::collection::vec(any::<u8>(), 0..4),
                ".{0,100}"
            )
                .prop_map(|(a, bad, b)| [a.as_bytes(), &bad, b.as_bytes()].concat()),
        ]
    }

    fn encodings() -> impl Strategy<Value = TextEncoding> {
        prop_oneof![
            Just(TextEncoding::Utf8),
            Just(TextEncoding::Utf16Le),
            Just(TextEncoding::Utf16Be),
            Just(TextEncoding::Windows1252),
        ]
    }

    proptest! {
        #[test]
        fn splitting_never_changes_the_kind(
            bytes in text_like_bytes(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&bytes[start..cut]);
                start = cut;
            }
            pieces.push(&bytes[start..]);
            prop_assert_eq!(sniff(&pieces), sniff_whole(&bytes));
        }

        #[test]
        fn transcoding_anything_gives_utf8(
            from in encodings(),
            bytes in text_like_bytes(),
            sizes in proptest::collection::vec(1usize..9, 1..5),
        ) {
            let mut trickle = Trickle { bytes: &bytes, sizes, next: 0 };
            let mut out = Vec::new();
            let written = transcode(from, &mut trickle, &mut out).unwrap();
            prop_assert_eq!(written, out.len() as u64);
            if from == TextEncoding::Utf8 {
                let expected = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
                prop_assert_eq!(&out[..], expected);
            } else {
                prop_assert!(std::str::from_utf8(&out).is_ok());
                let whole = transcoded(from, &bytes);
                prop_assert_eq!(out, whole);
            }
        }
    }
}

//! The CSV's header row: dialect sniffing, column matching and the synchronous "is this file usable" check.

use csv::{ByteRecord, ReaderBuilder, Terminator};

/// Most columns a header row may have.
pub const MAX_COLUMNS: usize = crate::intake::records::MAX_COLUMNS;

/// Excel's "CSV UTF-8" export starts with one.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A column the import understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// The invitee's given name.
    FirstName,
    /// The invitee's family name.
    LastName,
    /// The invitee's email address.
    Email,
    /// The invitee's role in the workspace.
    Role,
    /// `|`-separated names of workspace groups.
    Groups,
    /// A JSON object kept with the membership.
    Metadata,
}

impl Column {
    /// Every column, in template order.
    pub const ALL: [Column; 6] = [
        Column::FirstName,
        Column::LastName,
        Column::Email,
        Column::Role,
        Column::Groups,
        Column::Metadata,
    ];

    /// The canonical header text, as written in the template.
    pub fn name(self) -> &'static str {
        match self {
            Column::FirstName => "First Name",
            Column::LastName => "Last Name",
            Column::Email => "Email",
            Column::Role => "User Role",
            Column::Groups => "Group",
            Column::Metadata => "Metadata",
        }
    }

    /// Matches a header cell already reduced by [`normalize`].
    fn from_key(key: &str) -> Option<Column> {
        Some(match key {
            "firstname" => Column::FirstName,
            "lastname" => Column::LastName,
            "email" | "emailaddress" => Column::Email,
            "userrole" | "role" => Column::Role,
            "group" | "groups" => Column::Groups,
            "metadata" => Column::Metadata,
            _ => return None,
        })
    }

    /// The field name used in row errors and the results file.
    pub fn field(self) -> &'static str {
        match self {
            Column::FirstName => "first_name",
            Column::LastName => "last_name",
            Column::Email => "email",
            Column::Role => "role",
            Column::Groups => "groups",
            Column::Metadata => "metadata",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Why a header row cannot be used; the messages are shown to the admin as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// There is no header row at all.
    #[error("The file is empty: the first line must be a header row naming the columns.")]
    Empty,
    /// The header row is not UTF-8 text.
    #[error(
        "The header row is not valid UTF-8 text; save the file as \"CSV UTF-8\" and upload it again."
    )]
    NotUtf8,
    /// Required columns are absent; lists them by their canonical names.
    #[error("{}", missing_message(.0))]
    Missing(Vec<&'static str>),
    /// Two header cells name the same column (possibly through aliases); holds its canonical name.
    #[error("The header has more than one \"{0}\" column; keep only one.")]
    Duplicate(String),
    /// More header cells than [`MAX_COLUMNS`]: not a list of people.
    #[error(
        "The header row has {0} columns; at most {MAX_COLUMNS} are accepted. Keep the columns of the template."
    )]
    TooManyColumns(usize),
}

fn missing_message(missing: &[&str]) -> String {
    let list = missing
        .iter()
        .map(|name| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ");
    if missing.len() == 1 {
        format!("The header is missing a required column: {list}.")
    } else {
        format!("The header is missing required columns: {list}.")
    }
}

/// Where each known column sits in the file, and which columns were not recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Indexed by [`Column::slot`]; private so a `Header` always satisfies the required-column rule.
    indexes: [Option<usize>; 6],
    /// The names of unrecognised columns as written in the file, in file order, for the import's warnings.
    pub unknown: Vec<String>,
}

impl Header {
    /// Matches the cells of a header row to columns, rejecting rows the import could not use.
    pub fn parse(record: &ByteRecord) -> Result<Header, HeaderError> {
        if record.iter().all(|cell| is_blank(strip_bom(cell))) {
            return Err(HeaderError::Empty);
        }
        if record.len() > MAX_COLUMNS {
            return Err(HeaderError::TooManyColumns(record.len()));
        }
        let mut indexes = [None; 6];
        let mut unknown = Vec::new();
        for (i, raw) in record.iter().enumerate() {
            let raw = if i == 0 { first_cell(raw) } else { raw };
            let text = std::str::from_utf8(raw).map_err(|_| HeaderError::NotUtf8)?;
            let text = text.trim();
            if text.is_empty() {
                // Trailing delimiters are common in spreadsheet exports; not worth a warning.
                continue;
            }
            match Column::from_key(&normalize(text)) {
                Some(column) if indexes[column.slot()].is_some() => {
                    // Picking one silently could invite people with the wrong address.
                    return Err(HeaderError::Duplicate(column.name().to_owned()));
                }
                Some(column) => indexes[column.slot()] = Some(i),
                None => unknown.push(text.to_owned()),
            }
        }

        let mut missing = Vec::new();
        if indexes[Column::FirstName.slot()].is_none() && indexes[Column::LastName.slot()].is_none()
        {
            missing.push("First Name or Last Name");
        }
        for column in [Column::Email, Column::Role] {
            if indexes[column.slot()].is_none() {
                missing.push(column.name());
            }
        }
        if !missing.is_empty() {
            return Err(HeaderError::Missing(missing));
        }
        Ok(Header { indexes, unknown })
    }

    /// Reads and parses the header from the start of a file, returning the sniffed delimiter too.
    ///
    /// `bytes` may be just the first chunk of an upload, as long as it holds the whole header row.
    pub fn read(bytes: &[u8]) -> Result<(Header, u8), HeaderError> {
        // Stripped before the csv reader sees it, so that a quoted first cell is still unquoted.
        let bytes = strip_bom(bytes);
        let delimiter = sniff_delimiter(bytes);
        let mut reader = reader_builder(delimiter).from_reader(bytes);
        let mut record = ByteRecord::new();
        match reader.read_byte_record(&mut record) {
            Ok(true) => Header::parse(&record).map(|header| (header, delimiter)),
            // Reading from a slice cannot fail on I/O, and a flexible reader never reports
            // unequal lengths, so an error here means there was nothing to read.
            Ok(false) | Err(_) => Err(HeaderError::Empty),
        }
    }

    /// The position of `column` in each record, if the file has it.
    pub fn index(&self, column: Column) -> Option<usize> {
        self.indexes[column.slot()]
    }
}

/// Picks `,`, `;` or tab (Excel's "Unicode Text") from the first line, whichever occurs most
/// outside quotes; `,` on a tie.
pub fn sniff_delimiter(head: &[u8]) -> u8 {
    let head = strip_bom(head);
    // The csv reader skips blank lines, so the header is the first line with content.
    let start = head
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(head.len());
    let (mut commas, mut semicolons, mut tabs) = (0usize, 0usize, 0usize);
    let mut quoted = false;
    for &b in &head[start..] {
        match b {
            // A doubled quote inside a quoted field toggles twice, which is what we want.
            b'"' => quoted = !quoted,
            b'\r' | b'\n' if !quoted => break,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semicolons += 1,
            b'\t' if !quoted => tabs += 1,
            _ => {}
        }
    }
    if tabs > commas.max(semicolons) {
        b'\t'
    } else if semicolons > commas {
        b';'
    } else {
        b','
    }
}

/// A csv reader builder for the import's dialect; rows are read as raw records and the header is
/// handled by [`Header::parse`].
pub fn reader_builder(delimiter: u8) -> ReaderBuilder {
    let mut builder = ReaderBuilder::new();
    builder
        // Header matching is ours: aliases, BOM, duplicates.
        .has_headers(false)
        // Spreadsheets drop trailing empty cells; a short row is not a broken file.
        .flexible(true)
        .delimiter(delimiter)
        .quote(b'"')
        .quoting(true)
        .double_quote(true)
        .escape(None)
        .comment(None)
        // Accepts CRLF, LF and lone CR.
        .terminator(Terminator::CRLF);
    builder
}

/// Reduces a header cell to its matching key: lower case without spaces, `_` or `-`.
fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| !(c.is_whitespace() || *c == '_' || *c == '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes)
}

/// The first header cell without its BOM, unquoted if the BOM kept the csv reader from doing so.
fn first_cell(raw: &[u8]) -> &[u8] {
    match raw.strip_prefix(UTF8_BOM) {
        // A reader that did not skip the BOM sees `<BOM>"Email"` as an unquoted field that
        // happens to contain quotes.
        Some(rest) if rest.len() >= 2 && rest.starts_with(b"\"") && rest.ends_with(b"\"") => {
            &rest[1..rest.len() - 1]
        }
        Some(rest) => rest,
        None => raw,
    }
}

fn is_blank(cell: &[u8]) -> bool {
    match std::str::from_utf8(cell) {
        Ok(text) => text.trim().is_empty(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(cells: &[&str]) -> ByteRecord {
        ByteRecord::from(cells.to_vec())
    }

    fn parse(cells: &[&str]) -> Result<Header, HeaderError> {
        Header::parse(&record(cells))
    }

    fn read(text: &str) -> Result<(Header, u8), HeaderError> {
        Header::read(text.as_bytes())
    }

    #[test]
    fn canonical_names_are_matched_in_any_order() {
        let header = parse(&[
            "Metadata",
            "User Role",
            "Email",
            "Group",
            "Last Name",
            "First Name",
        ])
        .unwrap();
        assert_eq!(header.index(Column::Metadata), Some(0));
        assert_eq!(header.index(Column::Role), Some(1));
        assert_eq!(header.index(Column::Email), Some(2));
        assert_eq!(header.index(Column::Groups), Some(3));
        assert_eq!(header.index(Column::LastName), Some(4));
        assert_eq!(header.index(Column::FirstName), Some(5));
        assert!(header.unknown.is_empty());
    }

    #[test]
    fn aliases_are_matched_ignoring_case_spaces_underscores_and_dashes() {
        let cases: &[(&str, Column)] = &[
            ("first_name", Column::FirstName),
            ("firstname", Column::FirstName),
            ("FIRST-NAME", Column::FirstName),
            ("last_name", Column::LastName),
            ("Last name", Column::LastName),
            ("lastname", Column::LastName),
            ("email", Column::Email),
            ("E-mail", Column::Email),
            ("Email address", Column::Email),
            ("email_address", Column::Email),
            ("role", Column::Role),
            ("user_role", Column::Role),
            ("USER ROLE", Column::Role),
            ("groups", Column::Groups),
            ("Group", Column::Groups),
            ("meta_data", Column::Metadata),
        ];
        for &(name, column) in cases {
            let mut cells = Column::ALL.map(Column::name);
            let at = column.slot();
            cells[at] = name;
            let header = parse(&cells).unwrap_or_else(|e| panic!("{name:?}: {e}"));
            assert_eq!(header.index(column), Some(at), "{name:?}");
            assert!(header.unknown.is_empty(), "{name:?}");
        }
    }

    #[test]
    fn surrounding_whitespace_in_names_is_ignored() {
        let header = parse(&["  Email ", "\tRole", "First Name  "]).unwrap();
        assert_eq!(header.index(Column::Email), Some(0));
    }

    #[test]
    fn unknown_columns_are_kept_in_order_with_their_original_names() {
        let header = parse(&["Department", "Email", "Role", "First Name", "Phone No."]).unwrap();
        assert_eq!(header.unknown, ["Department", "Phone No."]);
    }

    #[test]
    fn blank_header_cells_are_neither_columns_nor_warnings() {
        let header = parse(&["Email", "Role", "First Name", "", " "]).unwrap();
        assert!(header.unknown.is_empty());
    }

    #[test]
    fn one_name_column_is_enough() {
        assert!(parse(&["Email", "Role", "Last Name"]).is_ok());
        assert!(parse(&["Email", "Role", "First Name"]).is_ok());
    }

    #[test]
    fn missing_email_and_role_are_both_listed() {
        assert_eq!(
            parse(&["First Name", "Last Name"]),
            Err(HeaderError::Missing(vec!["Email", "User Role"]))
        );
    }

    #[test]
    fn missing_both_names_is_reported_as_one_requirement() {
        let err = parse(&["Email", "Role"]).unwrap_err();
        assert_eq!(err, HeaderError::Missing(vec!["First Name or Last Name"]));
        assert_eq!(
            err.to_string(),
            "The header is missing a required column: \"First Name or Last Name\"."
        );
    }

    #[test]
    fn everything_missing_is_listed_in_one_message() {
        let err = parse(&["Department"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "The header is missing required columns: \"First Name or Last Name\", \"Email\", \"User Role\"."
        );
    }

    #[test]
    fn a_column_named_twice_is_an_error() {
        assert_eq!(
            parse(&["Email", "Role", "First Name", "email"]),
            Err(HeaderError::Duplicate("Email".into()))
        );
    }

    #[test]
    fn a_column_named_twice_through_aliases_is_an_error() {
        assert_eq!(
            parse(&["Email", "Role", "First Name", "Email Address"]),
            Err(HeaderError::Duplicate("Email".into()))
        );
        assert_eq!(
            parse(&["User Role", "Email", "role", "First Name"]),
            Err(HeaderError::Duplicate("User Role".into()))
        );
    }

    #[test]
    fn an_empty_record_is_empty() {
        assert_eq!(Header::parse(&ByteRecord::new()), Err(HeaderError::Empty));
        assert_eq!(parse(&["", "  "]), Err(HeaderError::Empty));
    }

    #[test]
    fn a_non_utf8_header_is_rejected() {
        let record = ByteRecord::from(vec![&b"Email"[..], b"Role", b"Pr\xe9nom"]);
        assert_eq!(Header::parse(&record), Err(HeaderError::NotUtf8));
    }

    #[test]
    fn a_bom_on_the_first_cell_is_ignored() {
        let record = ByteRecord::from(vec![&b"\xEF\xBB\xBFEmail"[..], b"Role", b"First Name"]);
        let header = Header::parse(&record).unwrap();
        assert_eq!(header.index(Column::Email), Some(0));
    }

    #[test]
    fn a_bom_before_a_quoted_first_cell_is_ignored_by_parse() {
        let record = ByteRecord::from(vec![&b"\xEF\xBB\xBF\"Email\""[..], b"Role", b"First Name"]);
        let header = Header::parse(&record).unwrap();
        assert_eq!(header.index(Column::Email), Some(0));
    }

    #[test]
    fn read_ignores_a_bom_before_a_quoted_first_cell() {
        let (header, _) = read("\u{FEFF}\"Email\",\"Role\",\"First Name\"\n").unwrap();
        assert_eq!(header.index(Column::Email), Some(0));
        assert!(header.unknown.is_empty());
    }

    #[test]
    fn read_sniffs_semicolons() {
        let (header, delimiter) =
            read("First Name;Email;Role\nAna;ana@example.com;Admin\n").unwrap();
        assert_eq!(delimiter, b';');
        assert_eq!(header.index(Column::Role), Some(2));
    }

    #[test]
    fn read_sniffs_tabs() {
        let (header, delimiter) =
            read("First Name\tEmail\tUser Role\nAna\tana@example.com\tAdmin\n").unwrap();
        assert_eq!(delimiter, b'\t');
        assert_eq!(header.index(Column::Role), Some(2));
    }

    #[test]
    fn a_header_over_the_column_limit_is_refused() {
        let mut cells: Vec<String> = (0..MAX_COLUMNS).map(|i| format!("extra {i}")).collect();
        cells[..3].clone_from_slice(&["Email".into(), "Role".into(), "First Name".into()]);
        assert!(Header::parse(&ByteRecord::from(cells.clone())).is_ok());
        cells.push("one more".into());
        assert_eq!(
            Header::parse(&ByteRecord::from(cells)),
            Err(HeaderError::TooManyColumns(MAX_COLUMNS + 1))
        );
    }

    #[test]
    fn read_defaults_to_commas() {
        let (_, delimiter) = read("First Name,Email,Role\n").unwrap();
        assert_eq!(delimiter, b',');
    }

    #[test]
    fn read_accepts_crlf() {
        let (header, _) = read("First Name,Email,Role\r\nAna,ana@example.com,Admin\r\n").unwrap();
        assert_eq!(header.index(Column::Role), Some(2));
        assert!(header.unknown.is_empty());
    }

    #[test]
    fn read_accepts_a_header_without_a_line_ending() {
        assert!(read("First Name,Email,Role").is_ok());
    }

    #[test]
    fn read_works_on_a_truncated_upload() {
        let (header, _) = read("Email,Role,Last Name\nana@example.com,Admin,Ló").unwrap();
        assert_eq!(header.index(Column::LastName), Some(2));
    }

    #[test]
    fn read_handles_quoted_names_with_delimiters_and_newlines() {
        let (header, delimiter) =
            read("\"Email\";\"Role\";\"Name, first\";\"Notes\nmore\";First Name\n").unwrap();
        assert_eq!(delimiter, b';');
        assert_eq!(header.unknown, ["Name, first", "Notes\nmore"]);
        assert_eq!(header.index(Column::FirstName), Some(4));
    }

    #[test]
    fn read_skips_leading_blank_lines() {
        let (header, delimiter) = read("\r\n\nEmail;Role;First Name\n").unwrap();
        assert_eq!(delimiter, b';');
        assert_eq!(header.index(Column::Email), Some(0));
    }

    #[test]
    fn read_of_nothing_is_empty() {
        assert_eq!(read(""), Err(HeaderError::Empty));
        assert_eq!(read("\u{FEFF}"), Err(HeaderError::Empty));
        assert_eq!(read("\n\n"), Err(HeaderError::Empty));
    }

    #[test]
    fn sniffing_ignores_delimiters_inside_quotes() {
        assert_eq!(sniff_delimiter(b"\"a;b;c;d\",x,y"), b',');
        assert_eq!(sniff_delimiter(b"\"a,b,c,d\";x;y"), b';');
        assert_eq!(sniff_delimiter(b"\"a\"\";b;c\";x,y"), b',');
    }

    #[test]
    fn sniffing_looks_only_at_the_first_line() {
        assert_eq!(sniff_delimiter(b"a,b;c,d\nx;y;z;w;v"), b',');
        assert_eq!(sniff_delimiter(b"a;b\r\nx,y,z"), b';');
    }

    #[test]
    fn sniffing_a_tie_or_nothing_gives_commas() {
        assert_eq!(sniff_delimiter(b""), b',');
        assert_eq!(sniff_delimiter(b"Email"), b',');
        assert_eq!(sniff_delimiter(b"a;b,c"), b',');
    }

    #[test]
    fn the_reader_reads_rfc4180_rows() {
        let data = "Email,Role,First Name\r\n\"ana@example.com\",Admin,\"Lopez, \"\"Ana\"\"\nJr\"\r\nbob@example.com,Builder\n";
        let mut reader = reader_builder(b',').from_reader(data.as_bytes());
        let records: Vec<ByteRecord> = reader.byte_records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 3);
        assert_eq!(&records[1][2], b"Lopez, \"Ana\"\nJr");
        assert_eq!(records[2].len(), 2, "short rows are allowed");
    }

    #[test]
    fn column_names_are_the_template_names() {
        let names: Vec<_> = Column::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "First Name",
                "Last Name",
                "Email",
                "User Role",
                "Group",
                "Metadata"
            ]
        );
        for column in Column::ALL {
            assert_eq!(Column::from_key(&normalize(column.name())), Some(column));
        }
    }

    proptest! {
        #[test]
        fn read_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Header::read(&bytes);
        }

        #[test]
        fn read_never_panics_on_csv_like_text(
            text in r#"(\u{FEFF})?([A-Za-z _\-";,]|\r|\n|é){0,80}"#
        ) {
            if let Ok((header, delimiter)) = Header::read(text.as_bytes()) {
                prop_assert!(delimiter == b',' || delimiter == b';');
                prop_assert!(header.index(Column::Email).is_some());
                prop_assert!(header.index(Column::Role).is_some());
            }
        }

        #[test]
        fn parse_never_panics(cells in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..24), 0..10
        )) {
            let _ = Header::parse(&ByteRecord::from(cells));
        }

        #[test]
        fn sniff_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let d = sniff_delimiter(&bytes);
            prop_assert!(d == b',' || d == b';' || d == b'\t');
        }
    }
}

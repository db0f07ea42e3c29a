//! One CSV row turned into a typed invitee, or into every reason it cannot be one.

use csv::ByteRecord;
use serde::Serialize;
use serde_json::{Map, Value};

use super::email::{self, DisplayName, InviteeEmail};
use super::header::{Column, Header};
use super::role::Role;

/// Longer names break email greetings and member lists; nobody's name is this long.
const MAX_NAME_CHARS: usize = 100;
const MAX_GROUP_CHARS: usize = 100;
/// Metadata is stored per membership, a million rows at a time.
const MAX_METADATA_BYTES: usize = 4096;
/// How much of an offending group name to quote back.
const MAX_ECHO_CHARS: usize = 40;

/// A raw record of the file together with what is needed to read it.
#[derive(Debug, Clone, Copy)]
pub struct CsvRow<'a> {
    /// The row number a spreadsheet shows; the header is row 1.
    pub row: u64,
    /// The file's parsed header, to find each column.
    pub header: &'a Header,
    /// The record's raw cells.
    pub record: &'a ByteRecord,
}

/// A row that passed every row-level rule; only [`TryFrom<CsvRow>`] builds one.
#[derive(Debug, Clone, PartialEq)]
// Keeps the fields readable elsewhere while forbidding struct literals outside this crate.
#[non_exhaustive]
pub struct NewInvitee {
    /// The spreadsheet row it came from.
    pub row: u64,
    /// Trimmed, at most 100 characters; `None` when the cell was empty.
    pub first_name: Option<String>,
    /// Trimmed, at most 100 characters; `None` when the cell was empty.
    pub last_name: Option<String>,
    /// The parsed, lower-cased address.
    pub email: InviteeEmail,
    /// The role to grant.
    pub role: Role,
    /// Trimmed, non-empty, distinct group names in file order; existence is checked by the store.
    pub groups: Vec<String>,
    /// A JSON object of at most 4 KiB; never log it, it may hold secrets.
    pub metadata: Option<Map<String, Value>>,
    /// What the admin should know about how the row was read, for its line in the results.
    pub note: Option<&'static str>,
}

/// Characters of an email cell kept to name its row in the results when it is not an address:
/// more than any address has, never the whole of a 64 KiB cell.
const MAX_ECHOED_EMAIL_CHARS: usize = 256;

/// The note of a row whose names came from a `Name <address>` email cell.
pub const NAME_FROM_EMAIL_CELL: &str =
    "the name was taken from the email cell (Name <address>), the name cells being empty";

/// One failing field of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// One of `first_name`, `last_name`, `name`, `email`, `role`, `groups`, `metadata`, `row`.
    pub field: &'static str,
    /// A human explanation, shown to the admin after the field name.
    pub message: String,
}

/// A row that cannot become an invitee, with every reason why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidRow {
    /// The spreadsheet row it came from.
    pub row: u64,
    /// The trimmed, lower-cased email cell if it was not empty, so the results file can name the row.
    pub email: Option<String>,
    /// Every failing field, in column order; never empty.
    pub errors: Vec<RowError>,
}

impl InvalidRow {
    /// All messages as one line for the results file: `email: "x" is not …; role: …`.
    pub fn reason(&self) -> String {
        self.errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl TryFrom<CsvRow<'_>> for NewInvitee {
    type Error = InvalidRow;

    fn try_from(csv_row: CsvRow<'_>) -> Result<Self, Self::Error> {
        let CsvRow {
            row,
            header,
            record,
        } = csv_row;
        let cell = |column: Column| cell(header, record, column);
        if record.iter().all(is_blank) {
            return Err(InvalidRow {
                row,
                email: None,
                errors: vec![RowError {
                    field: "row",
                    message: "empty row".to_owned(),
                }],
            });
        }

        // Kept even when unparsable, so the results file can still say which person the row meant;
        // characters that would hide or reorder it are written as code points.
        let raw: String = String::from_utf8_lossy(cell(Column::Email))
            .trim()
            .chars()
            .take(MAX_ECHOED_EMAIL_CHARS)
            .collect();
        let raw_email = Some(email::escape_unsafe(&raw.to_lowercase())).filter(|e| !e.is_empty());

        let mut errors = Vec::new();
        let mut first_name = check(
            &mut errors,
            "first_name",
            parse_name(cell(Column::FirstName)),
        );
        let mut last_name = check(&mut errors, "last_name", parse_name(cell(Column::LastName)));
        let parsed_email = parse_email(cell(Column::Email));
        let names_blank = is_blank(cell(Column::FirstName)) && is_blank(cell(Column::LastName));
        let note = match parsed_email.as_ref().map(|(_, name)| name) {
            Ok(Some(name)) if names_blank => {
                first_name = Some(name.first.clone());
                last_name = Some(name.last.clone());
                Some(NAME_FROM_EMAIL_CELL)
            }
            _ => None,
        };
        // A name cell that failed its own rule still counts as given: one message is enough.
        if names_blank && note.is_none() {
            errors.push(RowError {
                field: "name",
                message: "a first name or a last name is required".to_owned(),
            });
        }
        let email = check(&mut errors, "email", parsed_email).map(|(email, _)| email);
        let role = check(&mut errors, "role", parse_role(cell(Column::Role)));
        let groups = check(&mut errors, "groups", parse_groups(cell(Column::Groups)));
        let metadata = check(
            &mut errors,
            "metadata",
            parse_metadata(cell(Column::Metadata)),
        );

        match (first_name, last_name, email, role, groups, metadata) {
            (
                Some(first_name),
                Some(last_name),
                Some(email),
                Some(role),
                Some(groups),
                Some(metadata),
            ) if errors.is_empty() => Ok(NewInvitee {
                row,
                first_name,
                last_name,
                email,
                role,
                groups,
                metadata,
                note,
            }),
            _ => Err(InvalidRow {
                row,
                email: raw_email,
                errors,
            }),
        }
    }
}

/// The raw cell of `column`; empty when the file has no such column or the record is short.
fn cell<'r>(header: &Header, record: &'r ByteRecord, column: Column) -> &'r [u8] {
    // Spreadsheets drop trailing empty cells, so a short record is not an error.
    header
        .index(column)
        .and_then(|i| record.get(i))
        .unwrap_or_default()
}

/// Records a failing field and lets the caller carry on to the next one.
fn check<T>(
    errors: &mut Vec<RowError>,
    field: &'static str,
    result: Result<T, String>,
) -> Option<T> {
    result
        .map_err(|message| errors.push(RowError { field, message }))
        .ok()
}

/// The trimmed text of a cell, or the message for a cell in another encoding.
fn text(cell: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(cell)
        .map(str::trim)
        .map_err(|_| "is not valid UTF-8 (save the file as \"CSV UTF-8\")".to_owned())
}

fn is_blank(cell: &[u8]) -> bool {
    // Invalid UTF-8 is content, not blankness: the admin must hear about it.
    text(cell).is_ok_and(str::is_empty)
}

fn parse_name(cell: &[u8]) -> Result<Option<String>, String> {
    let name = text(cell)?;
    if name.is_empty() {
        return Ok(None);
    }
    let len = name.chars().count();
    if len > MAX_NAME_CHARS {
        return Err(format!(
            "is longer than {MAX_NAME_CHARS} characters ({len})"
        ));
    }
    // Names are written into emails; a line break in one could forge extra lines.
    if name.chars().any(char::is_control) {
        return Err("contains a line break or another control character".to_owned());
    }
    Ok(Some(name.to_owned()))
}

fn parse_email(cell: &[u8]) -> Result<(InviteeEmail, Option<DisplayName>), String> {
    match text(cell)? {
        "" => Err("is required".to_owned()),
        email => {
            let (email, name) = InviteeEmail::parse_cell(email)?;
            let name = name.map(check_display_name).transpose()?;
            Ok((email, name))
        }
    }
}

/// A display name's parts obey the name cells' rules.
fn check_display_name(name: DisplayName) -> Result<DisplayName, String> {
    let part = |part: Option<String>| {
        parse_name(part.unwrap_or_default().as_bytes())
            .map_err(|why| format!("the name before <…> {why}"))
    };
    Ok(DisplayName {
        first: part(name.first)?,
        last: part(name.last)?,
    })
}

fn parse_role(cell: &[u8]) -> Result<Role, String> {
    match text(cell)? {
        "" => Err("is required".to_owned()),
        role => Role::parse(role),
    }
}

fn parse_groups(cell: &[u8]) -> Result<Vec<String>, String> {
    let mut groups: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    for group in text(cell)?.split('|').map(str::trim) {
        if group.is_empty() || groups.iter().any(|g| g == group) {
            continue;
        }
        let len = group.chars().count();
        if len > MAX_GROUP_CHARS {
            problems.push(format!(
                "group {} is longer than {MAX_GROUP_CHARS} characters ({len})",
                echo(group)
            ));
        } else if group.chars().any(char::is_control) {
            problems.push(format!(
                "group {} contains a line break or another control character",
                echo(group)
            ));
        }
        groups.push(group.to_owned());
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(problems.join(", "))
    }
}

/// Messages here never quote the value: metadata may carry tokens or personal data.
fn parse_metadata(cell: &[u8]) -> Result<Option<Map<String, Value>>, String> {
    let json = text(cell)?;
    if json.is_empty() {
        return Ok(None);
    }
    if json.len() > MAX_METADATA_BYTES {
        return Err(format!(
            "is larger than 4 KiB ({} bytes; at most {MAX_METADATA_BYTES})",
            json.len()
        ));
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(other) => Err(format!(
            "must be a JSON object such as {{\"team\": \"sales\"}}, not {}",
            kind(&other)
        )),
        Err(err) => Err(format!(
            "is not valid JSON (line {}, column {})",
            err.line(),
            err.column()
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn echo(s: &str) -> String {
    if s.chars().count() <= MAX_ECHO_CHARS {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX_ECHO_CHARS).collect();
        format!("{head:?}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::header::reader_builder;
    use proptest::prelude::*;
    use serde_json::json;

    const ALL_COLUMNS: [&str; 6] = [
        "First Name",
        "Last Name",
        "Email",
        "User Role",
        "Group",
        "Metadata",
    ];

    fn header(cells: &[&str]) -> Header {
        Header::parse(&ByteRecord::from(cells.to_vec())).unwrap()
    }

    fn convert(header: &Header, record: &ByteRecord) -> Result<NewInvitee, InvalidRow> {
        NewInvitee::try_from(CsvRow {
            row: 7,
            header,
            record,
        })
    }

    /// Converts a row of the full six-column layout.
    fn invitee(cells: &[&str]) -> Result<NewInvitee, InvalidRow> {
        convert(&header(&ALL_COLUMNS), &ByteRecord::from(cells.to_vec()))
    }

    fn valid(cells: &[&str]) -> NewInvitee {
        invitee(cells).unwrap_or_else(|e| panic!("{cells:?}: {}", e.reason()))
    }

    fn errors(cells: &[&str]) -> Vec<(&'static str, String)> {
        let invalid = invitee(cells).expect_err("row should be invalid");
        invalid
            .errors
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    fn fields(cells: &[&str]) -> Vec<&'static str> {
        errors(cells).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn a_complete_row_becomes_an_invitee() {
        let invitee = valid(&[
            "Ana",
            "López",
            "Ana@Example.com",
            "Builder",
            "Sales|EMEA",
            r#"{"team": "sales", "seat": 4}"#,
        ]);
        assert_eq!(invitee.row, 7);
        assert_eq!(invitee.first_name.as_deref(), Some("Ana"));
        assert_eq!(invitee.last_name.as_deref(), Some("López"));
        assert_eq!(invitee.email.as_str(), "ana@example.com");
        assert_eq!(invitee.role, Role::Builder);
        assert_eq!(invitee.groups, ["Sales", "EMEA"]);
        let expected = json!({"team": "sales", "seat": 4});
        assert_eq!(invitee.metadata.as_ref(), expected.as_object());
    }

    #[test]
    fn every_cell_is_trimmed() {
        let invitee = valid(&[
            "  Ana ",
            "\tLópez\u{a0}",
            " ana@example.com ",
            " Admin ",
            " Sales ",
            " {} ",
        ]);
        assert_eq!(invitee.first_name.as_deref(), Some("Ana"));
        assert_eq!(invitee.last_name.as_deref(), Some("López"));
        assert_eq!(invitee.role, Role::Admin);
        assert_eq!(invitee.groups, ["Sales"]);
        assert_eq!(invitee.metadata, Some(Map::new()));
    }

    #[test]
    fn optional_cells_may_be_empty() {
        let invitee = valid(&["Ana", "", "ana@example.com", "End User", "", ""]);
        assert_eq!(invitee.last_name, None);
        assert!(invitee.groups.is_empty());
        assert_eq!(invitee.metadata, None);
    }

    #[test]
    fn a_last_name_alone_is_enough() {
        let invitee = valid(&["", "López", "ana@example.com", "end_user"]);
        assert_eq!(invitee.first_name, None);
        assert_eq!(invitee.role, Role::EndUser);
    }

    #[test]
    fn a_short_record_reads_missing_cells_as_empty() {
        let invitee = valid(&["Ana", "", "ana@example.com", "Admin"]);
        assert!(invitee.groups.is_empty());
        assert_eq!(invitee.metadata, None);
    }

    #[test]
    fn cells_beyond_the_header_are_ignored() {
        assert!(invitee(&["Ana", "", "ana@example.com", "Admin", "", "", "extra"]).is_ok());
    }

    #[test]
    fn columns_are_found_through_the_header_in_any_order() {
        let header = header(&["Role", "Department", "email_address", "last_name"]);
        let record = ByteRecord::from(vec!["Admin", "Finance", "ana@example.com", "López"]);
        let invitee = convert(&header, &record).unwrap();
        assert_eq!(invitee.role, Role::Admin);
        assert_eq!(invitee.last_name.as_deref(), Some("López"));
        assert_eq!(invitee.first_name, None);
        assert!(invitee.groups.is_empty());
    }

    #[test]
    fn names_may_be_100_characters_but_not_101() {
        let hundred = "é".repeat(100);
        assert!(invitee(&[&hundred, "", "ana@example.com", "Admin"]).is_ok());
        let long = "é".repeat(101);
        assert_eq!(
            errors(&[&long, &long, "ana@example.com", "Admin"]),
            [
                (
                    "first_name",
                    "is longer than 100 characters (101)".to_owned()
                ),
                (
                    "last_name",
                    "is longer than 100 characters (101)".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn names_with_line_breaks_are_rejected() {
        assert_eq!(
            fields(&["Ana\nBcc: x", "", "ana@example.com", "Admin"]),
            ["first_name"]
        );
    }

    #[test]
    fn a_row_without_any_name_is_rejected() {
        assert_eq!(
            errors(&["", "  ", "ana@example.com", "Admin"]),
            [("name", "a first name or a last name is required".to_owned())]
        );
    }

    #[test]
    fn email_is_required() {
        assert_eq!(
            errors(&["Ana", "", " ", "Admin"]),
            [("email", "is required".to_owned())]
        );
    }

    #[test]
    fn an_invalid_email_is_quoted_back() {
        let invalid = invitee(&["Ana", "", "Ana AT example", "Admin"]).unwrap_err();
        assert_eq!(invalid.email.as_deref(), Some("ana at example"));
        assert_eq!(invalid.errors[0].field, "email");
        assert!(
            invalid.errors[0]
                .message
                .starts_with("\"Ana AT example\" is not a valid email address"),
            "{}",
            invalid.errors[0].message
        );
    }

    #[test]
    fn a_name_and_address_cell_fills_empty_name_cells_and_says_so() {
        let invitee = valid(&["", "", "Ada Lovelace <Ada@Example.com>", "Admin"]);
        assert_eq!(invitee.email.as_str(), "ada@example.com");
        assert_eq!(invitee.first_name.as_deref(), Some("Ada"));
        assert_eq!(invitee.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(invitee.note, Some(NAME_FROM_EMAIL_CELL));

        let own = valid(&["Augusta", "King", "Ada Lovelace <ada@example.com>", "Admin"]);
        assert_eq!(own.first_name.as_deref(), Some("Augusta"));
        assert_eq!(own.last_name.as_deref(), Some("King"));
        assert_eq!(own.note, None);

        assert_eq!(fields(&["", "", "<ada@example.com>", "Admin"]), ["name"]);
        let long = format!("{} Lovelace <ada@example.com>", "A".repeat(150));
        assert_eq!(fields(&["", "", &long, "Admin"]), ["name", "email"]);
    }

    #[test]
    fn a_refused_email_cell_is_kept_short_with_unsafe_characters_written_out() {
        let cell = format!("\u{202E}{}", "x".repeat(5000));
        let invalid = invitee(&["Ana", "", &cell, "Admin"]).unwrap_err();
        let kept = invalid.email.unwrap();
        assert!(kept.starts_with("\\u{202e}xxx"), "{kept}");
        assert_eq!(
            kept.chars().count(),
            "\\u{202e}".len() + MAX_ECHOED_EMAIL_CHARS - 1
        );
    }

    #[test]
    fn role_is_required() {
        assert_eq!(
            errors(&["Ana", "", "ana@example.com", ""]),
            [("role", "is required".to_owned())]
        );
    }

    #[test]
    fn an_unknown_role_is_rejected() {
        assert_eq!(fields(&["Ana", "", "ana@example.com", "Owner"]), ["role"]);
    }

    #[test]
    fn groups_are_split_trimmed_and_deduplicated_in_order() {
        let invitee = valid(&[
            "Ana",
            "",
            "ana@example.com",
            "Admin",
            " Sales | | EMEA|Sales |Ops||",
        ]);
        assert_eq!(invitee.groups, ["Sales", "EMEA", "Ops"]);
    }

    #[test]
    fn a_group_longer_than_100_characters_is_rejected() {
        let ok = "g".repeat(100);
        assert!(invitee(&["Ana", "", "ana@example.com", "Admin", &ok]).is_ok());
        let long = "g".repeat(101);
        let errs = errors(&[
            "Ana",
            "",
            "ana@example.com",
            "Admin",
            &format!("Sales|{long}"),
        ]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "groups");
        assert!(
            errs[0].1.contains("longer than 100 characters"),
            "{}",
            errs[0].1
        );
    }

    #[test]
    fn metadata_must_be_a_json_object() {
        for (value, kind) in [
            ("[1, 2]", "an array"),
            ("\"hello\"", "a string"),
            ("42", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
        ] {
            let errs = errors(&["Ana", "", "ana@example.com", "Admin", "", value]);
            assert_eq!(errs.len(), 1, "{value}");
            assert_eq!(errs[0].0, "metadata");
            assert!(errs[0].1.ends_with(&format!("not {kind}")), "{}", errs[0].1);
        }
    }

    #[test]
    fn metadata_that_is_not_json_is_rejected_without_echoing_it() {
        let errs = errors(&[
            "Ana",
            "",
            "ana@example.com",
            "Admin",
            "",
            "{\"api_key\": sk_live_SECRET}",
        ]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "metadata");
        assert!(errs[0].1.starts_with("is not valid JSON"), "{}", errs[0].1);
        assert!(!errs[0].1.contains("SECRET"));
        assert!(!errs[0].1.contains("api_key"));
    }

    #[test]
    fn metadata_may_be_4_kib_but_not_more() {
        let fits = format!("{{\"k\": \"{}\"}}", "x".repeat(4096 - 9));
        assert_eq!(fits.len(), 4096);
        assert!(invitee(&["Ana", "", "ana@example.com", "Admin", "", &fits]).is_ok());
        let too_big = format!("{{\"k\": \"{}\"}}", "x".repeat(4096 - 8));
        let errs = errors(&["Ana", "", "ana@example.com", "Admin", "", &too_big]);
        assert_eq!(errs[0].0, "metadata");
        assert!(
            errs[0].1.starts_with("is larger than 4 KiB"),
            "{}",
            errs[0].1
        );
        assert!(!errs[0].1.contains("xxx"));
    }

    #[test]
    fn a_non_utf8_cell_is_an_error_for_its_field() {
        let header = header(&ALL_COLUMNS);
        let record = ByteRecord::from(vec![
            &b"Ren\xe9"[..],
            b"",
            b"rene@example.com",
            b"Admin",
            b"Caf\xe9",
        ]);
        let invalid = convert(&header, &record).unwrap_err();
        let fields: Vec<_> = invalid.errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["first_name", "groups"]);
        assert!(invalid.errors[0].message.starts_with("is not valid UTF-8"));
    }

    #[test]
    fn a_non_utf8_email_is_reported_lossily_for_the_results_file() {
        let header = header(&ALL_COLUMNS);
        let record = ByteRecord::from(vec![&b"Ana"[..], b"", b"Ren\xe9@Example.com", b"Admin"]);
        let invalid = convert(&header, &record).unwrap_err();
        assert_eq!(invalid.email.as_deref(), Some("ren\u{fffd}@example.com"));
        assert_eq!(invalid.errors[0].field, "email");
    }

    #[test]
    fn a_blank_row_is_one_error() {
        let invalid = invitee(&["", " ", "", "\t"]).unwrap_err();
        assert_eq!(invalid.email, None);
        assert_eq!(invalid.reason(), "row: empty row");
        assert_eq!(invitee(&[]).unwrap_err().reason(), "row: empty row");
    }

    #[test]
    fn every_failing_field_is_reported_in_column_order() {
        let invalid =
            invitee(&["", "", "not-an-email", "Owner", &"g".repeat(101), "[]"]).unwrap_err();
        let fields: Vec<_> = invalid.errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "email", "role", "groups", "metadata"]);
        assert_eq!(invalid.row, 7);
        assert_eq!(invalid.email.as_deref(), Some("not-an-email"));
    }

    #[test]
    fn reason_joins_field_and_message_pairs() {
        let invalid = invitee(&["Ana", "", "x", "Owner"]).unwrap_err();
        assert_eq!(
            invalid.reason(),
            "email: \"x\" is not a valid email address (it has no @); \
             role: \"Owner\" is not a role; use Admin, Builder or End User"
        );
    }

    #[test]
    fn rows_read_from_a_semicolon_crlf_file_with_quotes_and_a_bom() {
        let file = "\u{FEFF}\"Email\";Role;First Name;Last Name;Group;Metadata\r\n\
                    ana@example.com;Admin;\"Ana; Maria\";\"López, García\";\"Sales|Ops\";\"{\r\n  \"\"team\"\": 1\r\n}\"\r\n\
                    bob@example.com;Builder;Bob\r\n";
        let (header, delimiter) = Header::read(file.as_bytes()).unwrap();
        assert_eq!(delimiter, b';');
        let mut reader = reader_builder(delimiter).from_reader(file.as_bytes());
        let records: Vec<ByteRecord> = reader.byte_records().map(Result::unwrap).collect();
        assert_eq!(
            records.len(),
            3,
            "a quoted line break does not start a new row"
        );
        let invitees: Vec<NewInvitee> = records[1..]
            .iter()
            .zip(2..)
            .map(|(record, row)| {
                NewInvitee::try_from(CsvRow {
                    row,
                    header: &header,
                    record,
                })
                .unwrap_or_else(|e| panic!("row {row}: {}", e.reason()))
            })
            .collect();
        assert_eq!(invitees[0].row, 2);
        assert_eq!(invitees[0].email.as_str(), "ana@example.com");
        assert_eq!(invitees[0].first_name.as_deref(), Some("Ana; Maria"));
        assert_eq!(invitees[0].last_name.as_deref(), Some("López, García"));
        assert_eq!(invitees[0].groups, ["Sales", "Ops"]);
        assert_eq!(
            invitees[0].metadata.as_ref(),
            json!({"team": 1}).as_object()
        );
        assert_eq!(invitees[1].row, 3);
        assert_eq!(invitees[1].role, Role::Builder);
    }

    proptest! {
        #[test]
        fn try_from_never_panics_on_arbitrary_records(
            cells in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            row in any::<u64>(),
        ) {
            let header = header(&ALL_COLUMNS);
            let record = ByteRecord::from(cells);
            match NewInvitee::try_from(CsvRow { row, header: &header, record: &record }) {
                Ok(invitee) => prop_assert_eq!(invitee.row, row),
                Err(invalid) => {
                    prop_assert_eq!(invalid.row, row);
                    prop_assert!(!invalid.errors.is_empty());
                }
            }
        }

        #[test]
        fn accepted_rows_satisfy_every_rule(
            first in r"[ \t]?[\PC]{0,110}",
            last in r"[ ]?[a-zA-Z\n]{0,5}",
            email in r"[ ]?[a-zA-Z0-9.]{1,8}@[a-z]{1,8}(\.[a-zA-Z]{2,4})?",
            role in "(Admin|builder|End[ _-]?User|owner| )",
            groups in r"([ a-zA-Z]{0,8}\|?){0,4}",
            metadata in r#"(\{"[a-z]{1,3}": ?[0-9]{1,3}\}|\[\]|\{|"s"|)"#,
        ) {
            let header = header(&ALL_COLUMNS);
            let record = ByteRecord::from(vec![&first, &last, &email, &role, &groups, &metadata]);
            match NewInvitee::try_from(CsvRow { row: 2, header: &header, record: &record }) {
                Ok(invitee) => {
                    prop_assert!(invitee.first_name.is_some() || invitee.last_name.is_some());
                    for name in invitee.first_name.iter().chain(&invitee.last_name) {
                        prop_assert!(!name.is_empty());
                        prop_assert_eq!(name.trim(), name.as_str());
                        prop_assert!(name.chars().count() <= MAX_NAME_CHARS);
                    }
                    prop_assert_eq!(invitee.email.as_str(), email.trim().to_lowercase());
                    for (i, group) in invitee.groups.iter().enumerate() {
                        prop_assert!(!group.is_empty());
                        prop_assert_eq!(group.trim(), group.as_str());
                        prop_assert!(!invitee.groups[..i].contains(group));
                    }
                }
                Err(invalid) => {
                    prop_assert!(!invalid.errors.is_empty());
                    prop_assert!(!invalid.reason().is_empty());
                }
            }
        }

        #[test]
        fn metadata_values_never_appear_in_messages(
            secret in "[A-Za-z0-9]{12,20}",
            shape in 0..4usize,
        ) {
            let marker = format!("SECRET{secret}");
            let metadata = match shape {
                0 => format!("{{\"token\": {marker}}}"),
                1 => format!("[\"{marker}\"]"),
                2 => format!("\"{marker}\""),
                _ => format!("{{\"token\": \"{marker}{}\"}}", "x".repeat(4096)),
            };
            let errs = errors(&["Ana", "", "ana@example.com", "Admin", "", &metadata]);
            prop_assert_eq!(errs.len(), 1);
            prop_assert!(!errs[0].1.contains("SECRET"), "{}", errs[0].1);
        }
    }
}

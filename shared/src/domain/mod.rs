//! Parsed, always-valid domain values: the CSV header, rows, emails, roles and search terms.

pub mod email;
pub mod header;
pub mod invitee;
pub mod redirect;
pub mod role;
pub mod search;

pub use email::InviteeEmail;
pub use header::{Column, Header, HeaderError, reader_builder, sniff_delimiter};
pub use invitee::{CsvRow, InvalidRow, NewInvitee, RowError};
pub use role::Role;

//! Parsed, always-valid domain values: the CSV header, rows, emails and roles.

pub mod email;
pub mod header;
pub mod invitee;
pub mod role;

pub use email::InviteeEmail;
pub use header::{Column, Header, HeaderError, reader_builder, sniff_delimiter};
pub use invitee::{CsvRow, InvalidRow, NewInvitee, RowError};
pub use role::Role;

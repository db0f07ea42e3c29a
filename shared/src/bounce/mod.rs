//! The bounce reader's building blocks (docs/product.md, "Bounces and complaints"): per-delivery
//! return paths, reading delivery reports and complaints, and reading the bounce mailbox over
//! IMAP. Which email a report marks, and how, is the ledger's business, not this module's.

pub mod imap;
pub mod mailbox_url;
pub mod report;
pub mod verp;

pub use imap::{Cursor, MailboxReader, Outcome, Pass, Uid};
pub use mailbox_url::{MailboxUrl, Security};
pub use report::{Report, parse};
pub use verp::ReturnPaths;

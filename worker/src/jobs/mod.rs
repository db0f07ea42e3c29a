//! One job per file: processing an import, and sending invitations.

pub mod process_import;
pub mod send_invites;

//! The mailer: renders invitation emails and sends them over SMTP or into an outbox folder.

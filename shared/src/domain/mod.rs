//! Parsed, always-valid domain values: the CSV header, rows, emails and roles.

//! Queue job payloads. They carry ids only: the database is the ledger, the queue says "there is work".

use serde::{Deserialize, Serialize};

use crate::ids::ImportId;

/// Validate and apply every row of a stored import, resuming at its checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessImport {
    /// The import to process.
    pub import_id: ImportId,
}

/// Claim due email deliveries and send them until none is due.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SendInvites {
    /// The import whose rows made the deliveries, for tracing only: any due delivery is sent.
    pub import_id: Option<ImportId>,
}

//! A member's timeline as the route reads it (`docs/product.md`, "A member's timeline").

use crate::db::Db;
use crate::ids::{MemberId, WorkspaceId};
use crate::service::{Result, Step as _, next_cursor};
use crate::store::timeline::{self, Event, Position};

/// A page of a member's timeline, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The events.
    pub events: Vec<Event>,
    /// Where the next page starts; `None` on the last.
    pub next_cursor: Option<Position>,
}

/// The member's events after `cursor` (from the newest when `None`), at most `limit`; `None`
/// when the workspace has no such member.
pub async fn page(
    db: &Db,
    (workspace, member): (WorkspaceId, MemberId),
    cursor: Option<Position>,
    limit: i64,
) -> Result<Option<Page>> {
    let events = db
        .run(move |c| Ok(timeline::page(c, (workspace, member), cursor, limit)?))
        .await
        .step("reading the member's timeline")?;
    Ok(events.map(|events| {
        let next_cursor = next_cursor(&events, limit, |e| e.position);
        Page {
            events,
            next_cursor,
        }
    }))
}

//! The member list as the routes and the CLI read it: a page of a workspace's members, filtered
//! (status, latest email, import, a search term) and in id order.

use crate::db::Db;
use crate::ids::{MemberId, WorkspaceId};
use crate::service::{Result, Step as _, next_cursor};
use crate::store::members::{self, MemberFilter, MemberView};

/// A page of members, in id order.
#[derive(Debug, Clone)]
pub struct Page {
    /// The members.
    pub members: Vec<MemberView>,
    /// The cursor of the next page (pass it as `filter.after`); `None` on the last.
    pub next_cursor: Option<MemberId>,
}

/// The workspace's members matching `filter`, at most `limit`, after `filter.after`. Never another
/// workspace's, whatever the filter: the store filters by `workspace` first.
pub async fn page(
    db: &Db,
    workspace: WorkspaceId,
    filter: MemberFilter,
    limit: i64,
) -> Result<Page> {
    let members = db
        .run(move |c| Ok(members::list(c, workspace, &filter, limit)?))
        .await
        .step("listing members")?;
    let next_cursor = next_cursor(&members, limit, |m| m.id);
    Ok(Page {
        members,
        next_cursor,
    })
}

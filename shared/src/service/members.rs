//! The member list as the routes and the CLI read it: a page of a workspace's members, filtered
//! (status, latest email, import, a search term) and in id order.

use chrono::DateTime;

use crate::db::Db;
use crate::domain::search::SearchTerm;
use crate::ids::{ImportId, MemberId, WorkspaceId};
use crate::service::{Result, Step as _, next_cursor};
use crate::status::{DeliveryState, MemberStatus};
use crate::store::members::{self, MemberFilter, MemberView};

/// The member filters as a client writes them (the list's query, a remind call's body, the CLI's
/// options): one reading of them for every caller.
#[derive(Debug, Clone, Default)]
pub struct FilterText {
    /// A member status (`invited`, `requested`, `active`, `archived`).
    pub status: Option<String>,
    /// The state of the member's latest email (`pending`, `sending`, `sent`, `failed`, `cancelled`,
    /// `bounced`, `complained`).
    pub email_status: Option<String>,
    /// The import that created the members.
    pub import: Option<i64>,
    /// An RFC 3339 time: only members invited before it.
    pub invited_before: Option<String>,
    /// Part of an address or name (`docs/product.md`, "Finding a member").
    pub q: Option<String>,
}

/// A filter that cannot be read; the message says which value and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidFilter(pub String);

impl FilterText {
    /// The [`MemberFilter`] these texts ask for.
    pub fn parse(&self) -> std::result::Result<MemberFilter, InvalidFilter> {
        let unknown = |name: &str, value: &str| InvalidFilter(format!("unknown {name} `{value}`"));
        let invited_before = self
            .invited_before
            .as_deref()
            .map(|text| {
                DateTime::parse_from_rfc3339(text.trim())
                    .map(|at| at.naive_utc())
                    .map_err(|_| {
                        InvalidFilter(format!(
                            "invited_before `{text}` is not an RFC 3339 time, such as \
                             2026-12-01T00:00:00Z"
                        ))
                    })
            })
            .transpose()?;
        Ok(MemberFilter {
            status: self
                .status
                .as_deref()
                .map(|s| MemberStatus::parse(s).ok_or_else(|| unknown("status", s)))
                .transpose()?,
            email_status: self
                .email_status
                .as_deref()
                .map(|s| DeliveryState::parse(s).ok_or_else(|| unknown("email_status", s)))
                .transpose()?,
            import: self.import.map(ImportId),
            invited_before,
            search: self
                .q
                .as_deref()
                .map(SearchTerm::parse)
                .transpose()
                .map_err(|e| InvalidFilter(format!("q: {e}")))?
                .flatten(),
            ..MemberFilter::default()
        })
    }
}

impl FilterText {
    /// [`FilterText::parse`] for an action on the members it chooses (a remind): `None`, no
    /// member, for a `q` that is given but searches for nothing (empty, or spaces, marks or
    /// invisible characters only), where the list would show every member.
    pub fn parse_to_act(&self) -> std::result::Result<Option<MemberFilter>, InvalidFilter> {
        let filter = self.parse()?;
        Ok((self.q.is_none() || filter.search.is_some()).then_some(filter))
    }
}

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

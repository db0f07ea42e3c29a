//! Members of a workspace as admins and support list them, and the status a new invitation gives.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::config::Edition;
use crate::db::DbConn;
use crate::db::backend::{BackendConnection, columns};
use crate::db::schema::{accounts, deliveries, groups, member_groups, members};
use crate::domain::role::Role;
use crate::domain::search::{SearchTerm, member_text};
use crate::ids::{AccountId, ImportId, MemberId, WorkspaceId};
use crate::status::{DeliveryState, MemberStatus, SuppressionReason};
use crate::store::invitations::invitations_of;
use crate::{on_conn, write_transaction};

/// The status an invitation gives: `requested` on cloud for a person who never activated an
/// account anywhere, `invited` otherwise (`docs/product.md`, "Members and statuses").
pub fn invitee_status(edition: Edition, activated: bool) -> MemberStatus {
    if edition == Edition::Cloud && !activated {
        MemberStatus::Requested
    } else {
        MemberStatus::Invited
    }
}

/// Filters of the member list; all optional.
#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    /// Only members with this status.
    pub status: Option<MemberStatus>,
    /// Only members whose latest delivery is in this state.
    pub email_status: Option<DeliveryState>,
    /// Only members created by this import.
    pub import: Option<ImportId>,
    /// Only members invited (their membership created) before this time.
    pub invited_before: Option<NaiveDateTime>,
    /// Only members with an id greater than this (the page cursor).
    pub after: Option<MemberId>,
    /// Only the member with this id.
    pub id: Option<MemberId>,
    /// Only members whose address or names contain this term, folded (`docs/product.md`,
    /// "Finding a member").
    pub search: Option<SearchTerm>,
}

/// A member as the API lists it.
#[derive(Debug, Clone)]
pub struct MemberView {
    /// Primary key.
    pub id: MemberId,
    /// The person's address.
    pub email: String,
    /// First name, as this workspace's file gave it.
    pub first_name: Option<String>,
    /// Last name, as this workspace's file gave it.
    pub last_name: Option<String>,
    /// The role in the workspace.
    pub role: Role,
    /// Membership status.
    pub status: MemberStatus,
    /// Group names.
    pub groups: Vec<String>,
    /// State of the latest invitation email.
    pub email_status: Option<DeliveryState>,
    /// Last send error of that email.
    pub last_error: Option<String>,
    /// Send attempts of that email so far.
    pub email_attempts: Option<i32>,
    /// Why reminders and resends to the member's address are refused, if they are.
    pub suppressed: Option<SuppressionReason>,
    /// The import that created it.
    pub import_id: Option<ImportId>,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// A member and its person's address, before its groups and latest email are added.
#[derive(Queryable, Selectable)]
#[diesel(table_name = members, check_for_backend(diesel::sqlite::Sqlite))]
struct MemberRow {
    id: MemberId,
    #[diesel(select_expression = accounts::email)]
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    role: Role,
    status: MemberStatus,
    suppressed_reason: Option<SuppressionReason>,
    import_id: Option<ImportId>,
    created_at: NaiveDateTime,
}

/// `$query`, a boxed select from `members` joined with `accounts`, narrowed to the members of
/// `$workspace` that the [`MemberFilter`] `$filter` lets through; `$full_text` says the connection
/// is SQLite's, whose trigram index is a table of its own ([`full_text`]). The member list and reminders
/// (`crate::store::reminders`) choose members by this one definition.
///
/// A macro because a boxed query names its backend in its type, so a function taking one would
/// have to be written once per backend; this is expanded inside each arm of `on_conn!` or
/// `write_transaction!` instead, where the backend is known.
macro_rules! filtered_members {
    ($query:expr, $workspace:expr, $filter:expr, $full_text:expr) => {{
        use $crate::db::schema::{deliveries, invitations, members};
        let filter: &$crate::store::members::MemberFilter = $filter;
        let mut query = $query.filter(members::workspace_id.eq($workspace));
        if let Some(status) = filter.status {
            query = query.filter(members::status.eq(status));
        }
        if let Some(import) = filter.import {
            query = query.filter(members::import_id.eq(import));
        }
        if let Some(before) = filter.invited_before {
            query = query.filter(members::created_at.lt(before));
        }
        if let Some(id) = filter.id {
            query = query.filter(members::id.eq(id));
        }
        if let Some(after) = filter.after {
            query = query.filter(members::id.gt(after));
        }
        if let Some(term) = &filter.search {
            // SQLite cannot index `LIKE '%…%'`: there its trigram index answers a term of 3
            // characters or more. PostgreSQL's trigram GIN index serves the pattern itself.
            // Either way the workspace filter above keeps the search inside the workspace.
            match $crate::store::members::trigram_phrase(term).filter(|_| $full_text) {
                Some(phrase) => {
                    query = query.filter(
                        diesel::dsl::sql::<diesel::sql_types::Bool>(
                            "members.id IN (SELECT rowid FROM members_search \
                             WHERE members_search MATCH ",
                        )
                        .bind::<diesel::sql_types::Text, _>(phrase)
                        .sql(")"),
                    );
                }
                None => {
                    let pattern = $crate::store::members::like_pattern(term);
                    query = query.filter(members::search_text.like(pattern).escape('\\'));
                }
            }
        }
        if let Some(state) = filter.email_status {
            // The latest delivery only, so the filter agrees with the `email_status` shown: a
            // member resent after a failure is no longer "failed". A member's later deliveries
            // are found through its invitations, which are indexed by member.
            let later = diesel::alias!(deliveries as later);
            let a_later_one = invitations::table
                .inner_join(later.on(later.field(deliveries::invitation_id).eq(invitations::id)))
                .filter(invitations::member_id.eq(deliveries::member_id))
                .filter(later.field(deliveries::id).gt(deliveries::id));
            let latest_in_state = deliveries::table
                .filter(deliveries::state.eq(state))
                .filter(diesel::dsl::not(diesel::dsl::exists(a_later_one)))
                .select(deliveries::member_id);
            query = query.filter(members::id.eq_any(latest_in_state));
        }
        query
    }};
}
pub(crate) use filtered_members;

/// A page of members in id order, `limit` long.
pub fn list(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    filter: &MemberFilter,
    limit: i64,
) -> QueryResult<Vec<MemberView>> {
    let full_text = full_text(conn);
    on_conn!(conn, |c| {
        let query = members::table
            .inner_join(accounts::table)
            .order(members::id)
            .limit(limit)
            .select(MemberRow::as_select())
            .into_boxed();
        let rows: Vec<MemberRow> =
            filtered_members!(query, workspace, filter, full_text).load(c)?;
        let ids: Vec<MemberId> = rows.iter().map(|r| r.id).collect();
        let groups_of = group_names(c, &ids)?;
        let email_of = latest_emails(c, &ids)?;
        Ok(views(rows, groups_of, email_of))
    })
}

/// Whether searches on `conn` go through the FTS5 trigram table (SQLite) rather than a pattern
/// on `members.search_text`, which PostgreSQL's trigram GIN index serves.
pub(crate) fn full_text(conn: &DbConn) -> bool {
    matches!(conn, DbConn::Sqlite(_))
}

/// `%term%` with the term's own `\`, `%` and `_` escaped by `\`: a substring, taken literally.
pub(crate) fn like_pattern(term: &SearchTerm) -> String {
    let mut pattern = String::with_capacity(term.as_str().len() + 2);
    pattern.push('%');
    for c in term.as_str().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The FTS5 query that finds `term` as a substring through the trigram index: the term as one
/// quoted phrase (a `"` in it doubled, every other character literal); `None` for a term shorter
/// than a trigram, which the index cannot answer.
pub(crate) fn trigram_phrase(term: &SearchTerm) -> Option<String> {
    (term.chars() >= 3).then(|| format!("\"{}\"", term.as_str().replace('"', "\"\"")))
}

/// A membership's id, address and names: what its search text is made of.
type TextOf = (MemberId, String, Option<String>, Option<String>);

/// Writes the search text of each membership of `sources`.
fn write_search_texts<C: BackendConnection>(c: &mut C, sources: &[TextOf]) -> QueryResult<()> {
    for (id, email, first, last) in sources {
        let text = member_text(email, first.as_deref(), last.as_deref());
        c.execute(diesel::update(members::table.find(*id)).set(members::search_text.eq(text)))?;
    }
    Ok(())
}

/// Rewrites the search text of every membership of `account`, whose address changed.
pub fn refresh_search_texts(conn: &mut DbConn, account: AccountId) -> QueryResult<usize> {
    on_conn!(conn, |c| {
        let sources: Vec<TextOf> = c.load(
            members::table
                .inner_join(accounts::table)
                .filter(members::account_id.eq(account))
                .select((
                    members::id,
                    accounts::email,
                    members::first_name,
                    members::last_name,
                )),
        )?;
        write_search_texts(c, &sources)?;
        Ok(sources.len())
    })
}

/// Fills the search text of up to `batch` memberships that have none, the first after `after` in
/// id order, in one transaction; the last one filled and how many were (`None` when none was
/// left).
pub fn fill_search_texts(
    conn: &mut DbConn,
    after: MemberId,
    batch: i64,
) -> QueryResult<Option<(MemberId, usize)>> {
    write_transaction!(conn, |c| {
        let sources: Vec<TextOf> = c.load(
            members::table
                .inner_join(accounts::table)
                .filter(members::id.gt(after))
                .filter(members::search_text.eq(""))
                .order(members::id)
                .limit(batch)
                .select((
                    members::id,
                    accounts::email,
                    members::first_name,
                    members::last_name,
                )),
        )?;
        write_search_texts(c, &sources)?;
        Ok(sources.last().map(|s| (s.0, sources.len())))
    })
}

/// The names of the groups of each of the members `ids`, in name order.
pub(crate) fn group_names<C: BackendConnection>(
    c: &mut C,
    ids: &[MemberId],
) -> QueryResult<HashMap<MemberId, Vec<String>>> {
    let named: Vec<(MemberId, String)> = c.load(
        member_groups::table
            .inner_join(groups::table)
            .filter(member_groups::member_id.eq_any(ids))
            .order(groups::name)
            .select((member_groups::member_id, groups::name)),
    )?;
    let mut groups_of: HashMap<MemberId, Vec<String>> = HashMap::new();
    for (member, name) in named {
        groups_of.entry(member).or_default().push(name);
    }
    Ok(groups_of)
}

/// The latest email of each of the members `ids`.
fn latest_emails<C: BackendConnection>(
    c: &mut C,
    ids: &[MemberId],
) -> QueryResult<HashMap<MemberId, LatestEmail>> {
    let emails: Vec<LatestEmail> = c.load(
        deliveries::table
            .filter(deliveries::invitation_id.eq_any(invitations_of(ids)))
            .order(deliveries::id)
            .select(columns::<LatestEmail>()),
    )?;
    // Ascending ids, so the last one seen per member is its latest email.
    Ok(emails.into_iter().map(|e| (e.member_id, e)).collect())
}

/// A member's latest email.
#[derive(Queryable, Selectable)]
#[diesel(table_name = deliveries, check_for_backend(diesel::sqlite::Sqlite))]
struct LatestEmail {
    member_id: MemberId,
    state: DeliveryState,
    last_error: Option<String>,
    attempts: i32,
}

/// The members of `rows` as the API shows them.
fn views(
    rows: Vec<MemberRow>,
    mut groups_of: HashMap<MemberId, Vec<String>>,
    mut email_of: HashMap<MemberId, LatestEmail>,
) -> Vec<MemberView> {
    rows.into_iter()
        .map(|row| {
            let email = email_of.remove(&row.id);
            MemberView {
                id: row.id,
                email: row.email,
                first_name: row.first_name,
                last_name: row.last_name,
                role: row.role,
                status: row.status,
                groups: groups_of.remove(&row.id).unwrap_or_default(),
                email_status: email.as_ref().map(|e| e.state),
                email_attempts: email.as_ref().map(|e| e.attempts),
                last_error: email.and_then(|e| e.last_error),
                suppressed: row.suppressed_reason,
                import_id: row.import_id,
                created_at: row.created_at,
            }
        })
        .collect()
}

/// One member of the workspace (`None` when it belongs to another or does not exist).
pub fn view(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    member: MemberId,
) -> QueryResult<Option<MemberView>> {
    let filter = MemberFilter {
        id: Some(member),
        ..MemberFilter::default()
    };
    Ok(list(conn, workspace, &filter, 1)?.into_iter().next())
}

/// An admin who invited a member, in the member's workspace: whose name an invitation shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct InvitedBy {
    /// The member's workspace.
    pub workspace: WorkspaceId,
    /// The inviting admin's account (`members.invited_by`).
    pub admin: AccountId,
}

/// An inviting admin's membership, with the address of its account.
#[derive(Queryable, Selectable)]
#[diesel(table_name = members, check_for_backend(diesel::sqlite::Sqlite))]
struct InviterRow {
    workspace_id: WorkspaceId,
    account_id: AccountId,
    #[diesel(select_expression = accounts::email)]
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

/// The display name of each admin of `invites`, made by [`display_name`] from that admin's own
/// membership of the same workspace. What another workspace knows of the admin never
/// shows; an admin who is not a member of the workspace is left out, as no inviter on record.
pub(crate) fn inviter_names<C: BackendConnection>(
    c: &mut C,
    invites: &[InvitedBy],
) -> QueryResult<HashMap<InvitedBy, String>> {
    if invites.is_empty() {
        return Ok(HashMap::new());
    }
    let wanted: HashSet<InvitedBy> = invites.iter().copied().collect();
    let workspaces: HashSet<WorkspaceId> = wanted.iter().map(|i| i.workspace).collect();
    let admins: HashSet<AccountId> = wanted.iter().map(|i| i.admin).collect();
    let rows: Vec<InviterRow> = c.load(
        members::table
            .inner_join(accounts::table)
            .filter(members::workspace_id.eq_any(workspaces))
            .filter(members::account_id.eq_any(admins))
            .select(columns::<InviterRow>()),
    )?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let key = InvitedBy {
                workspace: row.workspace_id,
                admin: row.account_id,
            };
            let name = display_name(
                row.first_name.as_deref(),
                row.last_name.as_deref(),
                row.email,
            );
            (key, name)
        })
        // Both filters together can match an admin of one workspace in another.
        .filter(|(key, _)| wanted.contains(key))
        .collect())
}

/// "First Last" from a membership's names, each trimmed and an empty one left out; the account's
/// address, as people read it, when neither has anything to show. The one place an inviter's
/// display name is made.
fn display_name(first_name: Option<&str>, last_name: Option<&str>, email: String) -> String {
    let parts: Vec<&str> = [first_name, last_name]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    if parts.is_empty() {
        crate::domain::email::display(&email)
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::display_name;

    fn shown(first: Option<&str>, last: Option<&str>) -> String {
        display_name(first, last, "admin@example.com".to_owned())
    }

    #[test]
    fn a_display_name_joins_the_trimmed_names_that_are_there() {
        assert_eq!(shown(Some(" Grace "), Some("Hopper\t")), "Grace Hopper");
        assert_eq!(shown(Some("Grace"), None), "Grace");
        assert_eq!(shown(Some("  "), Some("Hopper")), "Hopper");
    }

    #[test]
    fn without_a_name_the_address_is_shown() {
        for (first, last) in [(None, None), (Some(""), Some("  ")), (Some("\t"), None)] {
            assert_eq!(
                shown(first, last),
                "admin@example.com",
                "{first:?} {last:?}"
            );
        }
        let international = display_name(None, None, "admin@xn--bcher-kva.de".to_owned());
        assert_eq!(international, "admin@bücher.de");
    }
}

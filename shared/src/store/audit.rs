//! The audit log: who did what in a workspace. Entries name ids (`import 12`, `member 34`,
//! `token 5`), never an invitation link or an API token.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::backend::BackendConnection;
use crate::db::schema::{accounts, audit_events};
use crate::ids::{
    AccountId, AuditEventId, ImportId, MemberId, TokenId, WebhookEndpointId, WorkspaceId,
};
use crate::on_conn;
use crate::store::now;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A file was uploaded for import.
    Upload,
    /// A file was uploaded for a dry run.
    DryRun,
    /// An import's failed sends were queued again.
    Retry,
    /// A member was sent a new invitation email.
    Resend,
    /// An invitation link was minted for an admin to copy.
    InvitationLink,
    /// A member was archived.
    Archive,
    /// A member was unarchived (and emailed a new link).
    Unarchive,
    /// A member's suppressed address was cleared for emails again.
    Unsuppress,
    /// A member's address was corrected (and a new link emailed to it).
    AddressChange,
    /// An API token was created.
    TokenCreate,
    /// An API token was revoked.
    TokenRevoke,
    /// A finished import's stored file was deleted once `UPLOAD_RETENTION` had passed.
    UploadDelete,
    /// An import was cancelled: its rows stopped and its unsent emails were cancelled.
    ImportCancel,
    /// The members matching a filter were sent reminders (one entry per call).
    Remind,
    /// A webhook endpoint was created.
    WebhookCreate,
    /// A webhook endpoint was deleted.
    WebhookDelete,
    /// A test event was queued to a webhook endpoint.
    WebhookTest,
    /// A webhook delivery was queued again.
    WebhookReplay,
    /// A disabled webhook endpoint was enabled again.
    WebhookEnable,
    /// A workspace setting was changed (`PUT …/settings`, `invite-api settings`).
    SettingsChange,
}

impl Action {
    /// The stored and shown name, e.g. `invitation_link`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Upload => "upload",
            Action::DryRun => "dry_run",
            Action::Retry => "retry",
            Action::Resend => "resend",
            Action::InvitationLink => "invitation_link",
            Action::Archive => "archive",
            Action::Unarchive => "unarchive",
            Action::Unsuppress => "unsuppress",
            Action::AddressChange => "address_change",
            Action::TokenCreate => "token_create",
            Action::TokenRevoke => "token_revoke",
            Action::UploadDelete => "upload_delete",
            Action::ImportCancel => "import_cancel",
            Action::Remind => "remind",
            Action::WebhookCreate => "webhook_create",
            Action::WebhookDelete => "webhook_delete",
            Action::WebhookTest => "webhook_test",
            Action::WebhookReplay => "webhook_replay",
            Action::WebhookEnable => "webhook_enable",
            Action::SettingsChange => "settings_change",
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An admin, through the API.
    Admin(AccountId),
    /// An operator at the command line (`invite-api retry`, `resend`, `import`, `token`), or the
    /// service itself (housekeeping deleting an upload past its retention).
    Operator,
}

/// What an action was done to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An import.
    Import(ImportId),
    /// A member.
    Member(MemberId),
    /// An API token, by id.
    Token(TokenId),
    /// A webhook endpoint, by id.
    Webhook(WebhookEndpointId),
    /// A workspace setting, by name (never its value).
    Setting(&'static str),
    /// The members a remind call went through, counted: never who they are. The suppressed count
    /// is written only when there were any.
    Reminded {
        /// Members reminded.
        reminded: u64,
        /// Members matched but not eligible.
        skipped: u64,
        /// Members matched who have not accepted but whose address is suppressed.
        suppressed: u64,
    },
}

impl Target {
    pub(crate) fn text(self) -> String {
        match self {
            Target::Import(id) => format!("import {id}"),
            Target::Member(id) => format!("member {id}"),
            Target::Token(id) => format!("token {id}"),
            Target::Setting(name) => format!("setting {name}"),
            Target::Webhook(id) => format!("webhook {id}"),
            Target::Reminded {
                reminded,
                skipped,
                suppressed: 0,
            } => format!("members: {reminded} reminded, {skipped} skipped"),
            Target::Reminded {
                reminded,
                skipped,
                suppressed,
            } => {
                format!("members: {reminded} reminded, {skipped} skipped, {suppressed} suppressed")
            }
        }
    }
}

/// One entry of the log, as shown.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::sqlite::Sqlite))]
pub struct Entry {
    /// Its id (the cursor of the next page).
    pub id: AuditEventId,
    /// The acting admin's email; `None` for an operator at the command line.
    #[diesel(select_expression = accounts::email.nullable())]
    pub actor: Option<String>,
    /// [`Action::as_str`].
    pub action: String,
    /// [`Target`] as text.
    pub target: String,
    /// When.
    pub created_at: NaiveDateTime,
}

/// Records one action.
pub fn record(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    actor: Actor,
    action: Action,
    target: Target,
) -> QueryResult<()> {
    on_conn!(conn, |c| record_on(c, workspace, actor, action, target))
}

/// [`record`] on a backend's connection, so that a transaction records its own action.
pub(crate) fn record_on<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    actor: Actor,
    action: Action,
    target: Target,
) -> QueryResult<()> {
    let actor = match actor {
        Actor::Admin(account) => Some(account),
        Actor::Operator => None,
    };
    c.execute(diesel::insert_into(audit_events::table).values((
        audit_events::workspace_id.eq(workspace),
        audit_events::actor_account_id.eq(actor),
        audit_events::action.eq(action.as_str()),
        audit_events::target.eq(target.text()),
        audit_events::created_at.eq(now()),
    )))
    .map(drop)
}

/// The workspace's entries older than `before` (all when `None`), newest first.
pub fn page(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    before: Option<AuditEventId>,
    limit: i64,
) -> QueryResult<Vec<Entry>> {
    on_conn!(conn, |c| {
        audit_events::table
            .left_join(accounts::table)
            .filter(audit_events::workspace_id.eq(workspace))
            .filter(audit_events::id.lt(before.unwrap_or(AuditEventId(i64::MAX))))
            .order(audit_events::id.desc())
            .limit(limit)
            .select(Entry::as_select())
            .load(c)
    })
}

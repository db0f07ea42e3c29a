//! `GET …/members/{id}/events?cursor=&limit=`: the member's timeline, newest first.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use invite_shared::domain::email;
use invite_shared::ids::MemberId;
use invite_shared::service::timeline;
use invite_shared::status::{DeliveryState, InvitationCause, ReportKind};
use invite_shared::store::timeline::{AttemptResult, Event, Position, SupportAction, What};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::imports::Timestamp;

/// Most events in one page.
const MAX_PAGE: i64 = 500;

/// Longest cursor read: longer text is no cursor.
const MAX_CURSOR: usize = 64;

/// Query of the timeline.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// `next_cursor` of the previous page.
    #[param(
        pattern = r"^(-?[0-9]{1,18}\.(import|invitation|email|failed|sent|opened|accepted|audit|report)\.-?[0-9]{1,18})?$"
    )]
    pub cursor: Option<String>,
    /// Events per page (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// One event of a member's timeline: when, its `kind`, and the details of that kind.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MemberEvent)]
pub struct EventJson {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub what: EventKind,
}

/// What happened, by `kind`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MemberEventKind)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The import row that made the membership.
    Imported {
        /// The import.
        import_id: i64,
        /// Its file's name.
        file_name: String,
        /// The row, numbered as a spreadsheet shows it (header = 1).
        row: Option<i64>,
    },
    /// An invitation was made.
    Invited {
        /// The invitation.
        invitation_id: i64,
        /// What made it: `import`, `resend`, `unarchive`, `invitation_link`, `reminder` or
        /// `address_change`; `null` for an
        /// invitation from before causes were recorded.
        cause: Option<InvitationCause>,
    },
    /// An invitation email was queued; `state` is where it stands now.
    Email {
        /// The email.
        email_id: i64,
        /// The invitation it carries.
        invitation_id: i64,
        /// Its state now.
        state: EmailState,
        /// Its send attempts so far.
        attempts: i32,
    },
    /// A send attempt of an email, with the mail server's reply.
    SendAttempt {
        /// The email.
        email_id: i64,
        /// How it ended.
        result: AttemptJson,
        /// The server's reply (`250 …`, `451 4.7.1 …`, `550 …`), or the error in words.
        reply: Option<String>,
    },
    /// One of the member's links was opened for the first time.
    Opened {
        /// The invitation of the link.
        invitation_id: i64,
    },
    /// The invitation was accepted: the member became `active`.
    Accepted {
        /// The invitation accepted.
        invitation_id: i64,
    },
    /// Support sent a new invitation email.
    Resend {
        /// The admin's address, or `operator` for the command line.
        actor: String,
    },
    /// Support copied a link.
    InvitationLink {
        /// The admin's address, or `operator` for the command line.
        actor: String,
    },
    /// The member was archived.
    Archive {
        /// The admin's address, or `operator` for the command line.
        actor: String,
    },
    /// The member was unarchived (and emailed a new link).
    Unarchive {
        /// The admin's address, or `operator` for the command line.
        actor: String,
    },
    /// A report about an email read from the bounce mailbox: the recipient's server gave up
    /// (`bounced`), is still trying (`delayed`), or the recipient reported it as abuse
    /// (`complained`).
    BounceReport {
        /// The email it is about.
        email_id: i64,
        /// What it reported.
        report: ReportKind,
        /// The enhanced status code it gave (`5.1.1`, `4.4.1`); `null` for a complaint.
        status: Option<String>,
        /// The reporting server's diagnostic, in its words; `null` for a complaint.
        diagnostic: Option<String>,
    },
    /// The suppression of the member's address was cleared.
    Unsuppress {
        /// The admin's address, or `operator` for the command line.
        actor: String,
    },
    /// The member's address was corrected (and a new link emailed to it).
    AddressChange {
        /// The admin's address, or `operator` for the command line.
        actor: String,
    },
}

/// Where an email stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MemberEmailState)]
#[serde(rename_all = "snake_case")]
pub enum EmailState {
    /// Waiting for its next attempt.
    Pending,
    /// Being sent.
    Sending,
    /// Accepted by the mail server.
    Sent,
    /// Failed for good (support may retry it).
    Failed,
    /// Not sent: the member was archived or the import cancelled.
    Cancelled,
    /// Not sent: a later invitation (a resend, an unarchive) replaced it.
    Superseded,
    /// Sent, then reported undeliverable (a bounce).
    Bounced,
    /// Sent, then reported as abuse.
    Complained,
}

/// How a send attempt ended.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SendAttemptResult)]
#[serde(rename_all = "snake_case")]
pub enum AttemptJson {
    /// Accepted by the mail server.
    Accepted,
    /// A temporary failure: the email is tried again.
    Retried,
    /// The failure that made the email `failed`.
    Failed,
}

/// A page of a member's timeline, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = MemberEventPage)]
pub struct EventPage {
    /// The events, newest first.
    pub events: Vec<EventJson>,
    /// The `cursor` of the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Read a member's timeline
///
/// What happened to the member, newest first: the import row that made them, each invitation,
/// each email with every send attempt and the mail server's reply, each bounce, delay or
/// complaint reported about it, support actions with the acting admin, the first opening of a
/// link and the acceptance. A page at a time: pass `next_cursor` as `cursor` for the next page.
/// 404 for another workspace's member.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/members/{id}/events",
    operation_id = "list_member_events",
    tag = "members",
    security(("bearer" = [])),
    params(
        WorkspacePath,
        ("id" = i64, Path, description = "The member's id."),
        EventsQuery,
    ),
    responses(
        (status = 200, description = "The member's events, newest first.", body = EventPage),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
pub async fn list(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
    Valid(Query(query)): Valid<Query<EventsQuery>>,
) -> Result<Json<EventPage>, ApiError> {
    // An empty `cursor=` is the first page, as no cursor is.
    let cursor = query
        .cursor
        .as_deref()
        .filter(|text| !text.is_empty())
        .map(cursor)
        .transpose()?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let member = (admin.workspace_id, MemberId(id));
    let page = timeline::page(&state.db, member, cursor, limit)
        .await?
        .ok_or(ApiError::NotFound("member"))?;
    Ok(Json(EventPage {
        events: page.events.into_iter().map(event_json).collect(),
        next_cursor: page.next_cursor.map(|p| p.cursor()),
    }))
}

/// A `cursor` read back, or 400 naming it.
fn cursor(text: &str) -> Result<Position, ApiError> {
    Some(text)
        .filter(|t| t.len() <= MAX_CURSOR)
        .and_then(Position::from_cursor)
        .ok_or_else(|| ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: "`cursor` is not a `next_cursor` of this list".into(),
        })
}

/// The JSON of one event.
fn event_json(event: Event) -> EventJson {
    let what = match event.what {
        What::Imported {
            import,
            file_name,
            row,
        } => EventKind::Imported {
            import_id: import.0,
            file_name,
            row,
        },
        What::Invited { invitation, cause } => EventKind::Invited {
            invitation_id: invitation.0,
            cause,
        },
        What::Email {
            email,
            invitation,
            state,
            superseded,
            attempts,
        } => EventKind::Email {
            email_id: email.0,
            invitation_id: invitation.0,
            state: email_state(state, superseded),
            attempts,
        },
        What::Attempt {
            email,
            result,
            reply,
        } => EventKind::SendAttempt {
            email_id: email.0,
            result: match result {
                AttemptResult::Accepted => AttemptJson::Accepted,
                AttemptResult::Retried => AttemptJson::Retried,
                AttemptResult::Failed => AttemptJson::Failed,
            },
            reply,
        },
        What::Opened { invitation } => EventKind::Opened {
            invitation_id: invitation.0,
        },
        What::Accepted { invitation } => EventKind::Accepted {
            invitation_id: invitation.0,
        },
        What::Support { action, actor } => support_json(action, actor),
        What::Report {
            email,
            kind,
            status,
            diagnostic,
        } => EventKind::BounceReport {
            email_id: email.0,
            report: kind,
            status,
            diagnostic,
        },
    };
    EventJson {
        at: Timestamp(event.position.at),
        what,
    }
}

/// An email's state as the timeline shows it.
fn email_state(state: DeliveryState, superseded: bool) -> EmailState {
    match state {
        DeliveryState::Cancelled if superseded => EmailState::Superseded,
        DeliveryState::Cancelled => EmailState::Cancelled,
        DeliveryState::Pending => EmailState::Pending,
        DeliveryState::Sending => EmailState::Sending,
        DeliveryState::Sent => EmailState::Sent,
        DeliveryState::Failed => EmailState::Failed,
        DeliveryState::Bounced => EmailState::Bounced,
        DeliveryState::Complained => EmailState::Complained,
    }
}

/// A support action with its actor: the admin's address as people read it, or `operator`.
fn support_json(action: SupportAction, actor: Option<String>) -> EventKind {
    let actor = actor.map_or_else(|| "operator".to_owned(), |a| email::display(&a));
    match action {
        SupportAction::Resend => EventKind::Resend { actor },
        SupportAction::InvitationLink => EventKind::InvitationLink { actor },
        SupportAction::Archive => EventKind::Archive { actor },
        SupportAction::Unarchive => EventKind::Unarchive { actor },
        SupportAction::Unsuppress => EventKind::Unsuppress { actor },
        SupportAction::AddressChange => EventKind::AddressChange { actor },
    }
}

//! Members: the paginated list with filters, one member, and the support actions on a member.

pub mod archive;
pub mod change_email;
pub mod events;
pub mod invitation_link;
pub mod remind;
pub mod resend;
pub mod unsuppress;

use axum::Json;
use axum::extract::{Path, Query, State};
use invite_shared::domain::email;
use invite_shared::ids::MemberId;
use invite_shared::service::members::{self as members_service, FilterText, InvalidFilter};
use invite_shared::service::support::Limited;
use invite_shared::status::{DeliveryState, MemberStatus, SuppressionReason};
use invite_shared::store::members::{self, MemberFilter, MemberView};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest, ErrorBody};
use crate::extract::Valid;
use crate::limits::too_many;
use crate::routes::WorkspacePath;
use crate::routes::imports::Timestamp;

const MAX_PAGE: i64 = 500;

/// Query of the member list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `invited`, `requested`, `active` or `archived`.
    #[param(value_type = Option<MemberStatus>)]
    pub status: Option<String>,
    /// `pending`, `sending`, `sent`, `failed`, `cancelled`, `bounced` or `complained`: the state
    /// of the latest email.
    #[param(value_type = Option<DeliveryState>)]
    pub email_status: Option<String>,
    /// Only members created by this import.
    pub import: Option<i64>,
    /// Only members whose address or first or last name contains this text, ignoring case and
    /// accents (`jose` finds `José`, `bucher` finds `anne@bücher.de`); `%` and `_` are plain
    /// characters. At most 200 characters; empty: no filter.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Page size, at most 500 (default 100).
    pub limit: Option<i64>,
}

/// A member as the API shows it: `email_status`, `last_error` and `email_attempts` describe the
/// latest invitation email.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Member)]
pub struct MemberJson {
    /// Its id.
    pub id: i64,
    /// The person's address, lower-cased, an international domain shown decoded
    /// (`user@bücher.de`).
    pub email: String,
    /// First name, as this workspace's own files gave it (another workspace's never shows).
    pub first_name: Option<String>,
    /// Last name, as this workspace's own files gave it.
    pub last_name: Option<String>,
    /// `Admin`, `Builder` or `End User`.
    #[schema(example = "End User")]
    pub role: String,
    /// Membership status.
    #[schema(value_type = MemberStatus)]
    pub status: String,
    /// The names of the member's groups.
    pub groups: Vec<String>,
    /// The state of the latest invitation email.
    #[schema(value_type = Option<DeliveryState>)]
    pub email_status: Option<String>,
    /// The last send error of that email (the mail server's reply).
    pub last_error: Option<String>,
    /// Send attempts of that email so far.
    pub email_attempts: Option<i32>,
    /// `bounced` or `complained` when an email to the member's address bounced or drew a
    /// complaint: resends and reminders skip the member until support corrects the address or
    /// unsuppresses it; `null` otherwise.
    pub suppressed: Option<SuppressionReason>,
    /// The import that created the membership.
    pub import_id: Option<i64>,
    /// When the membership was created.
    pub created_at: Timestamp,
}

/// A page of members.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberPage {
    /// The members, in id order.
    pub members: Vec<MemberJson>,
    /// The `cursor` of the next page; `null` on the last.
    pub next_cursor: Option<i64>,
}

/// List the workspace's members
///
/// Filtered by status, by the state of their latest email, by import, or by `q`, part of their
/// address or name (case- and accent-insensitive); a page at a time: pass `next_cursor` as
/// `cursor` for the next page (`null` on the last).
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/members",
    operation_id = "list_members",
    tag = "members",
    security(("bearer" = [])),
    params(WorkspacePath, ListQuery),
    responses(
        (status = 200, description = "A page of members.", body = MemberPage),
        (status = 400, response = BadRequest),
        (
            status = 422,
            description = "An unknown `status` or `email_status`, or a `q` over 200 characters: \
                           `invalid_filter`.",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
pub async fn list(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Query(query)): Valid<Query<ListQuery>>,
) -> Result<Json<MemberPage>, ApiError> {
    let filter = list_filter(&query)?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let page = members_service::page(&state.db, admin.workspace_id, filter, limit).await?;
    Ok(Json(MemberPage {
        members: page.members.into_iter().map(member_json).collect(),
        next_cursor: page.next_cursor.map(|id| id.0),
    }))
}

/// The store's filter of a list query; 422 `invalid_filter` for a value it cannot be.
fn list_filter(query: &ListQuery) -> Result<MemberFilter, ApiError> {
    let text = FilterText {
        status: query.status.clone(),
        email_status: query.email_status.clone(),
        import: query.import,
        q: query.q.clone(),
        ..FilterText::default()
    };
    let filter = text.parse().map_err(invalid_filter)?;
    Ok(MemberFilter {
        after: query.cursor.map(MemberId),
        ..filter
    })
}

/// 422 `invalid_filter`, saying which filter value cannot be read and why.
pub(crate) fn invalid_filter(e: InvalidFilter) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_filter",
        message: e.to_string(),
    }
}

/// Get a member
///
/// 404 when it belongs to another workspace.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/members/{id}",
    operation_id = "get_member",
    tag = "members",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The member's id.")),
    responses(
        (status = 200, description = "The member.", body = MemberJson),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
pub async fn get(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<MemberJson>, ApiError> {
    let filter = MemberFilter {
        id: Some(MemberId(id)),
        ..MemberFilter::default()
    };
    let found = state
        .db
        .run(move |c| Ok(members::list(c, admin.workspace_id, &filter, 1)?))
        .await?;
    found
        .into_iter()
        .next()
        .map(|m| Json(member_json(m)))
        .ok_or(ApiError::NotFound("member"))
}

/// The member JSON: `email_status`, `last_error` and `email_attempts` describe the latest email.
pub fn member_json(m: MemberView) -> MemberJson {
    MemberJson {
        id: m.id.0,
        role: m.role.label().to_owned(),
        email: email::display(&m.email),
        first_name: m.first_name,
        last_name: m.last_name,
        status: m.status.to_string(),
        groups: m.groups,
        email_status: m.email_status.map(|s| s.to_string()),
        last_error: m.last_error,
        email_attempts: m.email_attempts,
        suppressed: m.suppressed,
        import_id: m.import_id.map(|i| i.0),
        created_at: Timestamp(m.created_at),
    }
}

/// 409 for an action that needs a member who has not accepted yet.
fn already_active() -> ApiError {
    ApiError::Conflict {
        code: "member_active",
        message: "this member has accepted their invitation already; there is nothing to send"
            .into(),
    }
}

/// 409 for an action on an archived member.
fn archived() -> ApiError {
    ApiError::Conflict {
        code: "member_archived",
        message: "this member is archived: unarchive them first, which emails them a new link"
            .into(),
    }
}

/// 409 `suppressed` for an action that would email a suppressed address, saying why and what to
/// do instead (`remedy`).
fn suppressed(reason: SuppressionReason, remedy: &str) -> ApiError {
    let why = match reason {
        SuppressionReason::Bounced => "an email to this member's address bounced",
        SuppressionReason::Complained => {
            "this member's address reported an email from this workspace as abuse"
        }
    };
    ApiError::Conflict {
        code: "suppressed",
        message: format!("{why}, so no more emails go to it: {remedy}"),
    }
}

/// The 429 of a support action its limits refused, counted by the limit that refused it.
fn limited(limited: Limited) -> ApiError {
    match limited {
        Limited::CoolingDown(wait) => too_many(
            "member_cooldown",
            wait,
            format!(
                "this member had a resend, unarchive, copied link or address correction less than \
                 MEMBER_ACTION_COOLDOWN ago; try again in {} s",
                wait.as_secs()
            ),
        ),
        Limited::DailyQuota(wait) => too_many(
            "workspace_daily_quota",
            wait,
            "this workspace has queued its SUPPORT_EMAILS_PER_DAY resend, unarchive and address \
             correction emails for today (UTC); try again after midnight UTC"
                .into(),
        ),
    }
}

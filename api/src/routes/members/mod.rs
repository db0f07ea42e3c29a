//! Members: the paginated list with filters, one member, and the support actions on a member.

pub mod archive;
pub mod invitation_link;
pub mod resend;

use axum::Json;
use axum::extract::{Path, Query, State};
use invite_shared::ids::ImportId;
use invite_shared::status::{DeliveryState, MemberStatus};
use invite_shared::store::members::{self, MemberFilter, MemberView};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;
use crate::routes::imports::rfc3339;
use crate::routes::role_label;

const MAX_PAGE: i64 = 500;

/// Query of the member list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// `invited`, `requested`, `active` or `archived`.
    pub status: Option<String>,
    /// `pending`, `sending`, `sent`, `failed` or `cancelled`: the state of the latest email.
    pub email_status: Option<String>,
    /// Only members created by this import.
    pub import: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Page size, at most 500 (default 100).
    pub limit: Option<i64>,
}

/// A page of members and the cursor of the next page (`null` on the last).
pub async fn list(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Query(query)): Valid<Query<ListQuery>>,
) -> Result<Json<Value>, ApiError> {
    let invalid = |name: &str, value: &str| ApiError::Unprocessable {
        code: "invalid_filter",
        message: format!("unknown {name} `{value}`"),
    };
    let filter = MemberFilter {
        status: query
            .status
            .as_deref()
            .map(|s| MemberStatus::parse(s).ok_or_else(|| invalid("status", s)))
            .transpose()?,
        email_status: query
            .email_status
            .as_deref()
            .map(|s| DeliveryState::parse(s).ok_or_else(|| invalid("email_status", s)))
            .transpose()?,
        import: query.import.map(ImportId),
        after: query.cursor,
        id: None,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let page = state
        .db
        .run(move |c| Ok(members::list(c, admin.workspace_id, &filter, limit)?))
        .await?;
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|m| m.id))
        .flatten();
    let members: Vec<Value> = page.into_iter().map(member_json).collect();
    Ok(Json(json!({ "members": members, "next_cursor": next })))
}

/// One member; 404 when it belongs to another workspace.
pub async fn get(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<Value>, ApiError> {
    let filter = MemberFilter {
        id: Some(id),
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
pub fn member_json(m: MemberView) -> Value {
    json!({
        "id": m.id,
        "email": m.email,
        "first_name": m.first_name,
        "last_name": m.last_name,
        "role": role_label(&m.role),
        "status": m.status,
        "groups": m.groups,
        "email_status": m.email_status,
        "last_error": m.last_error,
        "email_attempts": m.email_attempts,
        "import_id": m.import_id,
        "created_at": rfc3339(m.created_at),
    })
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

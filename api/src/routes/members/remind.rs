//! `POST …/members/remind`: a reminder email to every member a filter chooses who has not accepted
//! yet, within the cooldown and the cap per member.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use invite_shared::service::members::FilterText;
use invite_shared::service::reminders;
use invite_shared::status::{DeliveryState, MemberStatus};
use invite_shared::store::members::MemberFilter;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{
    AdminErrors, ApiError, BadRequest, ErrorBody, PayloadTooLarge, UnsupportedMediaType,
};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::members::invalid_filter;

/// Body of `POST …/members/remind`: the member list's filters, all optional (`{}` chooses every
/// member of the workspace).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemindFilter {
    /// Only members with this status; only `invited` and `requested` members can be reminded,
    /// so others are counted as skipped.
    #[schema(value_type = Option<MemberStatus>)]
    pub status: Option<String>,
    /// Only members whose latest email is in this state.
    #[schema(value_type = Option<DeliveryState>)]
    pub email_status: Option<String>,
    /// Only members created by this import (another workspace's import chooses nobody).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<i64>)]
    pub import: Option<i64>,
    /// Only members invited before this time (RFC 3339, e.g. `2026-12-01T00:00:00Z`): when their
    /// membership was created.
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-01T00:00:00Z")]
    pub invited_before: Option<String>,
    /// Only members whose address or name contains this, ignoring case and accents, as the
    /// member list's `q`.
    #[schema(max_length = 200)]
    pub q: Option<String>,
}

/// An id written as a JSON number without a fraction, `3` or `3.0`: JSON Schema's `integer`, which
/// the document promises, admits both, while serde's `i64` refuses the second.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(i64),
        Float(f64),
    }
    // The ends round to ±2^63 as floats, which a number just outside the range rounds to as well:
    // both are left out.
    let within = |x: f64| x > i64::MIN as f64 && x < i64::MAX as f64;
    match Option::<Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Number::Int(n)) => Ok(Some(n)),
        Some(Number::Float(x)) if x.fract() == 0.0 && within(x) => Ok(Some(x as i64)),
        Some(Number::Float(x)) => Err(D::Error::custom(format!(
            "import: {x} is not an import id (a whole number)"
        ))),
    }
}

/// What a remind call did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RemindOutcome {
    /// Members sent a reminder email (queued, sent under the rate cap).
    pub reminded: u64,
    /// Members the filter chose who were not reminded: accepted, archived, reminded less than
    /// `REMIND_COOLDOWN` ago, reminded `REMIND_MAX` times already, or whose email has not gone
    /// out yet (still waiting or being sent).
    pub skipped: u64,
    /// Members the filter chose who have not accepted but whose address bounced or complained
    /// (`suppressed`): not reminded until support corrects the address or unsuppresses it.
    pub suppressed: u64,
}

/// Remind members who have not accepted
///
/// Every member the filter chooses who is still `invited` or `requested` gets a reminder email
/// with a fresh link (valid `INVITE_TTL` from its sending; an expired link is thereby renewed),
/// at most once per `REMIND_COOLDOWN` and `REMIND_MAX` times per member; their earlier unsent
/// email is `cancelled`. Those whose address bounced or complained are counted as `suppressed`,
/// the rest as `skipped`. Two calls at once remind a member once. **202**
/// `{"reminded","skipped","suppressed"}`; one `remind` entry in the audit log.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/members/remind",
    operation_id = "remind_members",
    tag = "members",
    security(("bearer" = [])),
    params(WorkspacePath),
    request_body = RemindFilter,
    responses(
        (status = 202, description = "The reminders are queued.", body = RemindOutcome),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (
            status = 422,
            description = "An unknown `status` or `email_status`, or an `invited_before` that is \
                not an RFC 3339 time (`invalid_filter`); a body that is not a JSON object of \
                these fields (`invalid_request`).",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Json(body)): Valid<Json<RemindFilter>>,
) -> Result<(StatusCode, Json<RemindOutcome>), ApiError> {
    let Some(filter) = member_filter(body)? else {
        let nobody = RemindOutcome {
            reminded: 0,
            skipped: 0,
            suppressed: 0,
        };
        return Ok((StatusCode::ACCEPTED, Json(nobody)));
    };
    let done = reminders::remind(
        &state.db,
        &state.queue,
        &state.settings,
        admin.audit(),
        filter,
    )
    .await?;
    let outcome = RemindOutcome {
        reminded: done.reminded,
        skipped: done.skipped,
        suppressed: done.suppressed,
    };
    Ok((StatusCode::ACCEPTED, Json(outcome)))
}

/// The filter the body asks for (`None`: nobody); 422 `invalid_filter` saying what it cannot read.
fn member_filter(body: RemindFilter) -> Result<Option<MemberFilter>, ApiError> {
    let text = FilterText {
        status: body.status,
        email_status: body.email_status,
        import: body.import,
        invited_before: body.invited_before,
        q: body.q,
    };
    text.parse_to_act().map_err(invalid_filter)
}

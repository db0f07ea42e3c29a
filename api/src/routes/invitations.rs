//! Public invitation links: show one, accept it. Browsers (an `Accept` that prefers `text/html`)
//! get small HTML pages with a plain form and no script; API clients get JSON, and errors in the
//! API's `{"error":{…}}` shape.

use askama::Template;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT, CONTENT_SECURITY_POLICY, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use invite_shared::domain::email;
use invite_shared::domain::redirect::RedirectTemplate;
use invite_shared::service::handover;
use invite_shared::status::MemberStatus;
use invite_shared::store::invitations::{self, InvitationView, Lookup};
use serde::Serialize;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Valid;
use crate::routes::imports::{Timestamp, rfc3339};
use crate::security::PAGE_POLICY;

/// An invitation as its link shows it to an API client.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    /// The workspace's name.
    pub workspace: String,
    /// The invitee's address.
    pub email: String,
    /// The role offered: `Admin`, `Builder` or `End User`.
    #[schema(example = "End User")]
    pub role: String,
    /// The membership's status.
    pub status: MemberStatus,
    /// When the link stops working.
    pub expires_at: Timestamp,
}

/// An accepted invitation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AcceptedInvitation {
    /// The workspace's name.
    pub workspace: String,
    /// The new member's address.
    pub email: String,
    /// `active`.
    pub status: MemberStatus,
    /// Where a browser is sent next when the workspace hands over to its own application (its
    /// `accept_redirect_url`, filled, with the hand-over token as the `token` query parameter);
    /// absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
}

/// Show an invitation
///
/// The workspace, inviter, role and expiry of a link, and for browsers the form that accepts it.
/// JSON by default; HTML when `Accept` prefers `text/html` to `application/json` (a browser),
/// for refusals too. Answers carry `Cache-Control: no-store` and `Vary: Accept`.
#[utoipa::path(
    get,
    path = "/invitations/{token}",
    operation_id = "show_invitation",
    tag = "invitations",
    params((
        "token" = String,
        Path,
        description = "The link's token, from the invitation email."
    )),
    responses(
        (
            status = 200,
            description = "The invitation; for a browser, a page with the form that accepts it.",
            content((Invitation = "application/json"), (String = "text/html")),
        ),
        (
            status = 404,
            description = "No link has this token: `not_found`, or a page in words.",
            content((ErrorBody = "application/json"), (String = "text/html")),
        ),
        (
            status = 409,
            description = "Accepted already: `invitation_used`, or a page in words.",
            content((ErrorBody = "application/json"), (String = "text/html")),
        ),
        (
            status = 410,
            description = "Expired (`invitation_expired`) or withdrawn when the member was \
                archived (`invitation_revoked`), or a page in words.",
            content((ErrorBody = "application/json"), (String = "text/html")),
        ),
        (
            status = 500,
            description = "A failure of the service: `internal`, or a page in words.",
            content((ErrorBody = "application/json"), (String = "text/html")),
        ),
        (
            status = 503,
            description = "The database is unavailable: `unavailable`, or a page in words.",
            content((ErrorBody = "application/json"), (String = "text/html")),
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again.")),
        ),
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(state): State<AppState>,
    Valid(Path(token)): Valid<Path<String>>,
    headers: HeaderMap,
) -> Response {
    let format = Format::negotiate(&headers);
    let lookup = {
        let token = token.clone();
        state
            .db
            .run(move |c| Ok(invitations::open(c, &token)?))
            .await
    };
    answer(format, lookup, |view| match format {
        Format::Html => {
            let policy = page_policy(view.accept_redirect_url.as_deref());
            let mut page = render(StatusCode::OK, &InvitationPage::new(view, token));
            page.headers_mut().insert(CONTENT_SECURITY_POLICY, policy);
            page
        }
        Format::Json => Json(invitation_json(view)).into_response(),
    })
}

/// The page's Content Security Policy: the pages' own, whose `form-action` also lets the accept
/// form's redirect reach the workspace's application when it has one (browsers check a form's
/// redirects against `form-action` too). An origin that is not plainly a scheme, host and port is
/// left out rather than written into the header.
fn page_policy(accept_redirect_url: Option<&str>) -> HeaderValue {
    let origin = accept_redirect_url
        .and_then(|url| RedirectTemplate::stored(url.to_owned()).origin())
        .filter(|origin| {
            origin
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:/-[]".contains(&b))
        });
    let policy = match origin {
        Some(origin) => PAGE_POLICY.replace(
            "form-action 'self'",
            &format!("form-action 'self' {origin}"),
        ),
        None => PAGE_POLICY.to_owned(),
    };
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static(PAGE_POLICY))
}

/// Accept an invitation
///
/// The member becomes `active`; browsers get a welcome page, or, when the workspace has an
/// `accept_redirect_url`, 303 to it with a hand-over token (`GET /api/v1/acceptances/{token}`
/// verifies it), which JSON clients get as `redirect_url`. Takes no body (the page's form posts an
/// empty one). JSON or HTML as for `GET /invitations/{token}`.
#[utoipa::path(
    post,
    path = "/invitations/{token}/accept",
    operation_id = "accept_invitation",
    tag = "invitations",
    params((
        "token" = String,
        Path,
        description = "The link's token, from the invitation email."
    )),
    responses(
        (
            status = 200,
            description = "Accepted: the member is `active`; for a browser, a welcome page.",
            content((AcceptedInvitation = "application/json"), (String = "text/html")),
        ),
        (
            status = 303,
            description = "Accepted, by a browser, in a workspace with an `accept_redirect_url`: \
                on to the workspace's application, with the hand-over token.",
            headers(("Location" = String, description = "The filled `accept_redirect_url` with \
                `token=…` appended.")),
        ),
        (
            status = 404,
            description = "No link has this token: `not_found`, or a page in words.",
            content((ErrorBody = "application/json"), (String = "text/html")),
        ),
        (
            status = 409,
            description = "Accepted already: `invitation_used`, or a page in words.",
            content((ErrorBody = "application/json"), (String = "text/html")),
        ),
        (
            status = 410,
            description = "Expired (`invitation_expired`) or withdrawn when the member was \
                archived (`invitation_revoked`), or a page in words.",
            content((ErrorBody = "application/json"), (String = "text/html")),
        ),
        (
            status = 500,
            description = "A failure of the service: `internal`, or a page in words.",
            content((ErrorBody = "application/json"), (String = "text/html")),
        ),
        (
            status = 503,
            description = "The database is unavailable: `unavailable`, or a page in words.",
            content((ErrorBody = "application/json"), (String = "text/html")),
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again.")),
        ),
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn accept(
    State(state): State<AppState>,
    Valid(Path(token)): Valid<Path<String>>,
    headers: HeaderMap,
) -> Response {
    let format = Format::negotiate(&headers);
    let ttl = state.settings.accept_handover_ttl;
    let (lookup, redirect) = match handover::accept(&state.db, token, ttl).await {
        Ok(accepted) => (Ok(accepted.lookup), accepted.redirect),
        Err(error) => (Err(error), None),
    };
    answer(format, lookup, |view| match (format, redirect) {
        (Format::Html, Some(url)) => Redirect::to(&url).into_response(),
        (Format::Html, None) => render(StatusCode::OK, &WelcomePage::new(view)),
        (Format::Json, redirect_url) => Json(AcceptedInvitation {
            workspace: view.workspace,
            email: email::display(&view.email),
            status: MemberStatus::Active,
            redirect_url,
        })
        .into_response(),
    })
}

/// The answer to a lookup: `valid`'s for a usable link, else why not, in the client's format.
/// Never stored by a cache: the URL carries the token.
fn answer<E: Into<ApiError>>(
    format: Format,
    lookup: Result<Lookup, E>,
    valid: impl FnOnce(InvitationView) -> Response,
) -> Response {
    let mut response = match lookup.map(usable) {
        Ok(Ok(view)) => valid(view),
        Ok(Err(refused)) => refused.answer(format),
        Err(error) => failed(format, error.into()),
    };
    // `Cache-Control: no-store` comes with every answer under `/invitations/` (see `security`).
    let vary = HeaderValue::from_static("Accept");
    response.headers_mut().insert(VARY, vary);
    response
}

/// The JSON of `GET /invitations/{token}`.
fn invitation_json(view: InvitationView) -> Invitation {
    Invitation {
        role: view.role.label().to_owned(),
        workspace: view.workspace,
        email: email::display(&view.email),
        status: view.status,
        expires_at: Timestamp(view.expires_at),
    }
}

/// A failure of the service itself: the API's error for JSON clients; for browsers the same
/// status and headers (`Retry-After`) with a page in words.
fn failed(format: Format, error: ApiError) -> Response {
    let response = error.into_response();
    if format == Format::Json {
        return response;
    }
    let page = ProblemPage {
        heading: "Something went wrong".into(),
        what_happened: "We could not open your invitation just now.".into(),
        what_to_do: "Please try again in a few minutes, using the same link.".into(),
    };
    match page.render() {
        Ok(html) => {
            let (mut parts, _) = response.into_parts();
            parts.headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            Response::from_parts(parts, Body::from(html))
        }
        Err(_) => response,
    }
}

/// A page with its status; a template that cannot render is an internal error.
fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::Internal(anyhow::Error::new(e).context("rendering an invitation page"))
            .into_response(),
    }
}

/// The view of a usable link, or why it cannot be used.
fn usable(lookup: Lookup) -> Result<InvitationView, Refused> {
    match lookup {
        Lookup::Valid(view, _) => Ok(view),
        Lookup::NotFound => Err(Refused::Unknown),
        Lookup::Expired { workspace } => Err(Refused::Expired { workspace }),
        Lookup::Revoked { workspace } => Err(Refused::Revoked { workspace }),
        Lookup::AlreadyUsed { workspace } => Err(Refused::Used { workspace }),
    }
}

/// Why a link cannot be used. Pages name the workspace of a real link (its holder was told it by
/// email) and say nothing about a token that matches no link.
#[derive(Debug)]
enum Refused {
    /// No link has this token.
    Unknown,
    /// Past its expiry.
    Expired { workspace: String },
    /// Withdrawn: the member was archived.
    Revoked { workspace: String },
    /// Accepted already, through this link or another of the same invitation.
    Used { workspace: String },
}

impl Refused {
    /// The answer in the client's format.
    fn answer(self, format: Format) -> Response {
        match format {
            Format::Json => self.into_api_error().into_response(),
            Format::Html => render(self.status(), &self.page()),
        }
    }

    /// 404, 410 or 409, as `docs/product.md`'s "Invitation links" says.
    fn status(&self) -> StatusCode {
        match self {
            Refused::Unknown => StatusCode::NOT_FOUND,
            Refused::Expired { .. } | Refused::Revoked { .. } => StatusCode::GONE,
            Refused::Used { .. } => StatusCode::CONFLICT,
        }
    }

    /// The JSON error API clients have always had.
    fn into_api_error(self) -> ApiError {
        match self {
            Refused::Unknown => ApiError::NotFound("invitation"),
            Refused::Expired { .. } => ApiError::Gone {
                code: "invitation_expired",
                message: "this invitation link has expired; ask an admin to resend it".into(),
            },
            Refused::Revoked { .. } => ApiError::Gone {
                code: "invitation_revoked",
                message: "this invitation is no longer valid".into(),
            },
            Refused::Used { .. } => ApiError::Conflict {
                code: "invitation_used",
                message: "this invitation has already been accepted".into(),
            },
        }
    }

    /// What happened and what to do, in words.
    fn page(&self) -> ProblemPage {
        let (heading, what_happened, what_to_do) = match self {
            Refused::Unknown => (
                "Invitation link not found".to_owned(),
                "This invitation link is not valid. Part of it may be missing.".to_owned(),
                "Open the link straight from your invitation email, or copy the whole address. \
                 If it still does not work, ask the person who invited you to send a new \
                 invitation."
                    .to_owned(),
            ),
            Refused::Expired { workspace } => (
                "This invitation has expired".to_owned(),
                format!(
                    "Your invitation to join {workspace} was valid for a limited time, and this \
                     link has expired."
                ),
                format!(
                    "Ask an admin of {workspace} to resend it. If you have received a newer \
                     invitation email, use the link in that one."
                ),
            ),
            Refused::Revoked { workspace } => (
                "This invitation is no longer valid".to_owned(),
                format!("Your invitation to join {workspace} has been withdrawn."),
                format!(
                    "If you think this is a mistake, ask an admin of {workspace} to invite you \
                     again."
                ),
            ),
            Refused::Used { workspace } => (
                "This invitation has already been accepted".to_owned(),
                format!(
                    "This invitation to join {workspace} has been accepted, so its link cannot \
                     be used again."
                ),
                format!(
                    "If you accepted it, you are a member of {workspace} and there is nothing \
                     more to do. If you did not, tell an admin of {workspace}."
                ),
            ),
        };
        ProblemPage {
            heading,
            what_happened,
            what_to_do,
        }
    }
}

/// The invitation, with the form that accepts it. Every value is escaped by the template.
#[derive(Template)]
#[template(path = "invitations/show.html")]
struct InvitationPage {
    workspace: String,
    first_name: Option<String>,
    inviter: Option<String>,
    role: String,
    email: String,
    expires_iso: String,
    expires_text: String,
    token: String,
}

impl InvitationPage {
    fn new(view: InvitationView, token: String) -> InvitationPage {
        InvitationPage {
            role: view.role.label().to_owned(),
            expires_iso: rfc3339(view.expires_at),
            expires_text: view.expires_at.format("%-d %B %Y at %H:%M UTC").to_string(),
            workspace: view.workspace,
            first_name: view.first_name.filter(|name| !name.trim().is_empty()),
            inviter: view.inviter,
            email: email::display(&view.email),
            token,
        }
    }
}

/// After accepting: the person is now a member.
#[derive(Template)]
#[template(path = "invitations/welcome.html")]
struct WelcomePage {
    workspace: String,
    role: String,
}

impl WelcomePage {
    fn new(view: InvitationView) -> WelcomePage {
        WelcomePage {
            role: view.role.label().to_owned(),
            workspace: view.workspace,
        }
    }
}

/// A link that cannot be used, or a failure: what happened and what to do.
#[derive(Template)]
#[template(path = "invitations/problem.html")]
struct ProblemPage {
    heading: String,
    what_happened: String,
    what_to_do: String,
}

/// How the client wants its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// A page, for a browser.
    Html,
    /// The API's JSON.
    Json,
}

impl Format {
    /// HTML when `Accept` prefers `text/html` to `application/json` (a browser's navigation), by
    /// quality and then by how specifically each is named; JSON otherwise, including no header,
    /// `*/*` and a tie, so API clients keep their JSON.
    fn negotiate(headers: &HeaderMap) -> Format {
        let ranges: Vec<MediaRange> = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(MediaRange::parse)
            .collect();
        let html = Preference::of(&ranges, "text", "html");
        let json = Preference::of(&ranges, "application", "json");
        if html.quality > 0 && html > json {
            Format::Html
        } else {
            Format::Json
        }
    }
}

/// How much a client wants one media type: the quality of the most specific range naming it.
/// Ordered by quality, then specificity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Preference {
    /// `q` in thousandths: 0 (not acceptable) to 1000.
    quality: u16,
    /// 2 for `type/subtype`, 1 for `type/*`, 0 for `*/*`.
    specificity: u8,
}

impl Preference {
    /// The preference `ranges` give `kind/subtype`; not acceptable when no range matches.
    fn of(ranges: &[MediaRange], kind: &str, subtype: &str) -> Preference {
        ranges
            .iter()
            .filter_map(|range| range.specificity_for(kind, subtype).map(|s| (s, range)))
            .max_by_key(|(specificity, range)| (*specificity, range.quality))
            .map(|(specificity, range)| Preference {
                quality: range.quality,
                specificity,
            })
            .unwrap_or_default()
    }
}

/// One entry of an `Accept` header, e.g. `text/html` or `*/*;q=0.8`.
#[derive(Debug)]
struct MediaRange {
    kind: String,
    subtype: String,
    quality: u16,
}

impl MediaRange {
    /// Reads one comma-separated entry; `None` when it is not `type/subtype[;params]`.
    fn parse(entry: &str) -> Option<MediaRange> {
        let mut parts = entry.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        let mut quality = 1000;
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                quality = parse_quality(value.trim())?;
            }
        }
        Some(MediaRange {
            kind: kind.trim().to_ascii_lowercase(),
            subtype: subtype.trim().to_ascii_lowercase(),
            quality,
        })
    }

    /// How specifically this range names `kind/subtype`, or `None` if it does not match.
    fn specificity_for(&self, kind: &str, subtype: &str) -> Option<u8> {
        match (self.kind.as_str(), self.subtype.as_str()) {
            ("*", "*") => Some(0),
            (k, "*") if k == kind => Some(1),
            (k, s) if k == kind && s == subtype => Some(2),
            _ => None,
        }
    }
}

/// A `q` value (`0` to `1`, up to three decimals) in thousandths.
fn parse_quality(value: &str) -> Option<u16> {
    let q: f32 = value.parse().ok()?;
    (0.0..=1.0)
        .contains(&q)
        .then(|| (q * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_for(accept: Option<&str>) -> Format {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(ACCEPT, HeaderValue::from_str(accept).unwrap());
        }
        Format::negotiate(&headers)
    }

    #[test]
    fn browsers_get_html() {
        for accept in [
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "text/html, */*",
            "application/json;q=0.5, text/html",
        ] {
            assert_eq!(format_for(Some(accept)), Format::Html, "{accept}");
        }
    }

    #[test]
    fn api_clients_and_ties_keep_json() {
        for accept in [
            None,
            Some("*/*"),
            Some("application/json"),
            Some("application/json, text/html;q=0.9"),
            Some("text/html, application/json"),
            Some("text/html;q=0, */*"),
            Some("text/html;q=lots"),
            Some("not a media type"),
        ] {
            assert_eq!(format_for(accept), Format::Json, "{accept:?}");
        }
    }

    fn view(workspace: &str, inviter: Option<&str>) -> InvitationView {
        InvitationView {
            workspace: workspace.into(),
            email: "ada@example.com".into(),
            first_name: Some(workspace.into()),
            status: invite_shared::status::MemberStatus::Invited,
            role: invite_shared::domain::role::Role::EndUser,
            expires_at: chrono::NaiveDate::from_ymd_opt(2030, 6, 1)
                .unwrap()
                .and_hms_opt(9, 30, 0)
                .unwrap(),
            invitation_id: invite_shared::ids::InvitationId(1),
            inviter: inviter.map(str::to_owned),
            accept_redirect_url: None,
        }
    }

    #[test]
    fn the_page_renders_markup_from_the_csv_as_text() {
        let markup = "<img src=x onerror=alert(1)>";
        let page = InvitationPage::new(view(markup, Some(markup)), "tok".into())
            .render()
            .unwrap();

        assert!(
            page.contains("&#60;img") || page.contains("&lt;img"),
            "{page}"
        );
        assert!(!page.contains("<img"), "{page}");
    }

    #[test]
    fn the_page_names_the_inviter_role_expiry_and_carries_the_form() {
        let page = InvitationPage::new(view("Acme", Some("Grace Hopper")), "tok".into())
            .render()
            .unwrap();

        assert!(page.contains("Grace Hopper invited you"), "{page}");
        assert!(page.contains("End User"), "{page}");
        assert!(page.contains("1 June 2030 at 09:30 UTC"), "{page}");
        assert!(page.contains(r#"<form method="post" action="/invitations/tok/accept">"#));
        assert!(!page.contains("<script"), "no script: {page}");
        assert!(!page.contains("style="), "no inline style: {page}");
    }

    #[test]
    fn without_an_inviter_on_record_the_page_names_the_workspace_admins() {
        let page = InvitationPage::new(view("Acme", None), "tok".into())
            .render()
            .unwrap();

        assert!(page.contains("An admin of Acme invited you"), "{page}");
        assert!(!page.contains("Invited by"), "{page}");
    }
}

//! Security headers on every answer: `nosniff` on all of them; on HTML pages, a strict Content
//! Security Policy (no inline script or style, nothing from outside the service), no `Referer`
//! (invitation URLs carry tokens) and no framing; and `Cache-Control: no-store` on every answer of
//! the API and of the invitation pages, which carry secrets (tokens, links) or people's data.

use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The policy of every HTML page: scripts, styles and requests from this origin only, forms posted
/// to it only, never framed.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// Paths whose answers no cache may keep: the API (API tokens, invitation links, people's names
/// and addresses) and the invitation pages (their URL is the invitee's secret).
const UNCACHED_PREFIXES: [&str; 2] = ["/api/", "/invitations/"];

/// Middleware: adds the security headers to the response of `next`.
pub async fn headers(request: Request, next: Next) -> Response {
    let uncached = is_uncached(request.uri().path());
    let mut response = next.run(request).await;
    protect(response.headers_mut());
    if uncached {
        let no_store = HeaderValue::from_static("no-store");
        response.headers_mut().insert(CACHE_CONTROL, no_store);
    }
    response
}

/// Whether answers to `path` carry `Cache-Control: no-store`.
fn is_uncached(path: &str) -> bool {
    UNCACHED_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// Adds the headers suited to a response's content type. A handler that set one of the page
/// headers itself keeps its own value.
pub fn protect(headers: &mut HeaderMap) {
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !is_html(headers) {
        return;
    }
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, PAGE_POLICY),
        (REFERRER_POLICY, "no-referrer"),
        (X_FRAME_OPTIONS, "DENY"),
    ] {
        set_unless_present(headers, name, value);
    }
}

fn set_unless_present(headers: &mut HeaderMap, name: HeaderName, value: &'static str) {
    headers
        .entry(name)
        .or_insert_with(|| HeaderValue::from_static(value));
}

/// Whether the body is `text/html` (with or without parameters).
fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        protect(&mut headers);
        headers
    }

    #[test]
    fn html_gets_the_page_headers_and_nosniff() {
        let headers = protected("text/html; charset=utf-8");

        assert_eq!(headers[CONTENT_SECURITY_POLICY], PAGE_POLICY);
        assert_eq!(headers[REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn other_bodies_get_nosniff_only() {
        let headers = protected("application/json");

        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(headers.get(CONTENT_SECURITY_POLICY).is_none());
        assert!(headers.get(REFERRER_POLICY).is_none());
        assert!(headers.get(X_FRAME_OPTIONS).is_none());
    }

    #[test]
    fn the_api_and_the_invitation_pages_are_never_cached_and_the_rest_may_be() {
        assert!(is_uncached("/api/v1/workspaces/acme/tokens"));
        assert!(is_uncached("/invitations/abc/accept"));
        assert!(!is_uncached("/assets/admin.js"));
        assert!(!is_uncached("/metrics"));
    }

    #[test]
    fn a_policy_set_by_a_handler_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));

        protect(&mut headers);

        assert_eq!(headers[CONTENT_SECURITY_POLICY], "sandbox");
    }
}

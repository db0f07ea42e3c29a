//! A workspace's `accept_redirect_url`: the template of the address an accepted invitation sends
//! the browser to, with the placeholders `{member_id}`, `{email}` and `{workspace}`.
//!
//! An admin's template is checked when it is set, so a stored one is known to make an `https` URL
//! (or `http` on a loopback host) whatever values fill it: placeholders stand only in the path,
//! query or fragment, and their values are percent-encoded, so no value can move the URL to
//! another site. The hand-over token is appended as the `token` query parameter.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::{Host, Url};

/// The longest template accepted, in characters: browsers and proxies handle URLs far longer, and
/// a setting longer than this is a mistake.
pub const MAX_LEN: usize = 2000;

/// What a value is percent-encoded against: everything but RFC 3986's unreserved characters, so a
/// value is one opaque piece of a path segment or a query value.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The placeholders a template may use.
const PLACEHOLDERS: [&str; 3] = ["member_id", "email", "workspace"];

/// The query parameter that carries the hand-over token.
pub const TOKEN_PARAM: &str = "token";

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTemplate(String);

/// The values a template is filled with: the new member's.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The member's id.
    pub member_id: i64,
    /// Their address, as people read it.
    pub email: &'a str,
    /// The workspace's slug.
    pub workspace: &'a str,
}

/// Why a template is refused, in words for the admin who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Nothing but whitespace.
    #[error("the URL is empty; send null to go back to the service's own welcome page")]
    Empty,
    /// Over [`MAX_LEN`] characters.
    #[error("the URL is longer than {MAX_LEN} characters")]
    TooLong,
    /// A `{…}` that is not one of [`PLACEHOLDERS`], or a lone brace.
    #[error(
        "`{0}` is not a placeholder: use {{member_id}}, {{email}} or {{workspace}}, and write \
         any other brace as %7B or %7D"
    )]
    UnknownPlaceholder(String),
    /// Not a URL once filled.
    #[error("this is not a URL: {0}")]
    NotUrl(String),
    /// Neither `https` nor `http` on a loopback host.
    #[error(
        "the URL must start with https:// (http:// is allowed only for localhost, 127.0.0.1 \
         or [::1])"
    )]
    NotHttps,
    /// Carries a user name or password.
    #[error("the URL must not carry a user name or password")]
    Credentials,
    /// A placeholder in the scheme, host or port.
    #[error("placeholders may stand only in the path, query or fragment, not in the host")]
    PlaceholderInHost,
    /// A `token` query parameter of its own.
    #[error("the URL already has a `token` query parameter, which the service adds itself")]
    TokenParam,
}

impl RedirectTemplate {
    /// Checks an admin's template (surrounding whitespace trimmed).
    pub fn parse(raw: &str) -> Result<RedirectTemplate, TemplateError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(TemplateError::Empty);
        }
        if raw.chars().count() > MAX_LEN {
            return Err(TemplateError::TooLong);
        }
        let template = RedirectTemplate(raw.to_owned());
        // Two sets of values that differ in every placeholder: a placeholder in the host would
        // give two origins.
        let one = template.filled(Values {
            member_id: 1,
            email: "a@example.com",
            workspace: "a",
        })?;
        let other = template.filled(Values {
            member_id: 2,
            email: "b@example.org",
            workspace: "b",
        })?;
        let url = checked(&one)?;
        if url.origin() != checked(&other)?.origin() {
            return Err(TemplateError::PlaceholderInHost);
        }
        if url.query_pairs().any(|(name, _)| name == TOKEN_PARAM) {
            return Err(TemplateError::TokenParam);
        }
        Ok(template)
    }

    /// A template read from the database, where only checked ones are written.
    pub fn stored(text: String) -> RedirectTemplate {
        RedirectTemplate(text)
    }

    /// The template as the admin wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin every URL of this template has (`https://app.example.com`), for the invitation
    /// page's `form-action`; `None` for a template that no longer makes a URL.
    pub fn origin(&self) -> Option<String> {
        let values = Values {
            member_id: 1,
            email: "a@example.com",
            workspace: "a",
        };
        let url = Url::parse(&self.filled(values).ok()?).ok()?;
        Some(url.origin().ascii_serialization())
    }

    /// The URL for one member, with `token` appended as the `token` query parameter (after the
    /// template's own query, before its fragment); `None` when the filled template is not an
    /// allowed URL (a template stored before today's checks).
    pub fn url(&self, values: Values<'_>, token: &str) -> Option<String> {
        let mut url = checked(&self.filled(values).ok()?).ok()?;
        url.query_pairs_mut().append_pair(TOKEN_PARAM, token);
        Some(url.into())
    }

    /// The template with its placeholders replaced by the percent-encoded values.
    fn filled(&self, values: Values<'_>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.0.len() + 40);
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find(['{', '}']) {
            out.push_str(&rest[..open]);
            let after = &rest[open..];
            let close = after.find('}').filter(|_| after.starts_with('{'));
            let Some(close) = close else {
                return Err(TemplateError::UnknownPlaceholder(after[..1].to_owned()));
            };
            let name = &after[1..close];
            let value = match name {
                "member_id" => values.member_id.to_string(),
                "email" => values.email.to_owned(),
                "workspace" => values.workspace.to_owned(),
                _ => {
                    return Err(TemplateError::UnknownPlaceholder(
                        after[..=close].to_owned(),
                    ));
                }
            };
            debug_assert!(PLACEHOLDERS.contains(&name));
            out.extend(utf8_percent_encode(&value, VALUE));
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `text` as a URL the browser may be sent to: `https`, or `http` on a loopback host, with no
/// credentials.
fn checked(text: &str) -> Result<Url, TemplateError> {
    let url = Url::parse(text).map_err(|e| TemplateError::NotUrl(e.to_string()))?;
    let allowed = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => url.host().as_ref().is_some_and(is_loopback),
        _ => false,
    };
    if !allowed {
        return Err(TemplateError::NotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TemplateError::Credentials);
    }
    Ok(url)
}

/// `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADA: Values<'static> = Values {
        member_id: 42,
        email: "ada+x@bücher.de",
        workspace: "acme",
    };

    fn url(template: &str) -> String {
        RedirectTemplate::parse(template)
            .unwrap()
            .url(ADA, "tok")
            .unwrap()
    }

    #[test]
    fn values_are_percent_encoded_and_the_token_is_appended() {
        assert_eq!(
            url("https://app.example.com/welcome?member={member_id}&email={email}"),
            "https://app.example.com/welcome?member=42&email=ada%2Bx%40b%C3%BCcher.de&token=tok"
        );
        assert_eq!(
            url("https://app.example.com/{workspace}/join"),
            "https://app.example.com/acme/join?token=tok"
        );
        assert_eq!(
            url("https://app.example.com/join#{member_id}"),
            "https://app.example.com/join?token=tok#42"
        );
        assert_eq!(
            url("http://127.0.0.1:9000/w?x=1"),
            "http://127.0.0.1:9000/w?x=1&token=tok"
        );
    }

    #[test]
    fn a_value_cannot_add_parameters_or_leave_its_place() {
        let values = Values {
            member_id: 1,
            email: "a&token=evil#x/../@evil.com",
            workspace: "w",
        };
        let made = RedirectTemplate::parse("https://app.example.com/?e={email}")
            .unwrap()
            .url(values, "tok")
            .unwrap();
        let parsed = Url::parse(&made).unwrap();
        assert_eq!(parsed.host_str(), Some("app.example.com"));
        let tokens: Vec<_> = parsed.query_pairs().filter(|(k, _)| k == "token").collect();
        assert_eq!(tokens.len(), 1, "{made}");
        assert_eq!(parsed.fragment(), None, "{made}");
    }

    #[test]
    fn bad_templates_are_refused_with_their_reason() {
        use TemplateError::*;
        for (template, error) in [
            ("  ", Empty),
            ("http://app.example.com/", NotHttps),
            ("ftp://app.example.com/", NotHttps),
            ("javascript:alert(1)", NotHttps),
            ("/welcome", NotUrl("relative URL without a base".into())),
            ("https://user:pw@app.example.com/", Credentials),
            ("https://{workspace}.example.com/", PlaceholderInHost),
            (
                "https://app.example.com/?id={id}",
                UnknownPlaceholder("{id}".into()),
            ),
            ("https://app.example.com/{", UnknownPlaceholder("{".into())),
            ("https://app.example.com/}", UnknownPlaceholder("}".into())),
            ("https://app.example.com/?token=x", TokenParam),
        ] {
            assert_eq!(RedirectTemplate::parse(template), Err(error), "{template}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(MAX_LEN));
        assert_eq!(RedirectTemplate::parse(&long), Err(TooLong));
    }

    #[test]
    fn loopback_hosts_may_use_http() {
        for template in [
            "http://localhost:3000/",
            "http://127.0.0.1/",
            "http://[::1]:80/",
        ] {
            assert!(RedirectTemplate::parse(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn the_origin_is_the_templates_site() {
        let template = RedirectTemplate::parse("https://app.example.com:8443/{workspace}").unwrap();
        assert_eq!(
            template.origin().as_deref(),
            Some("https://app.example.com:8443")
        );
    }
}

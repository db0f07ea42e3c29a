//! The emails' content: the templates in `templates/invitation/` and `templates/reminder/`, and
//! their rendering.

use chrono::{DateTime, Utc};

use crate::status::InvitationKind;

/// The three parts of one email's template.
struct Template {
    subject: &'static str,
    text: &'static str,
    html: &'static str,
}

/// Compiles in the templates of `templates/{folder}/`, so a deployed binary can never run with a
/// missing or mismatched template folder. A macro because `include_str!` needs a literal path.
macro_rules! template {
    ($folder:literal) => {
        Template {
            subject: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../templates/",
                $folder,
                "/subject.txt"
            )),
            text: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../templates/",
                $folder,
                "/body.txt"
            )),
            html: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../templates/",
                $folder,
                "/body.html"
            )),
        }
    };
}

/// The invitation email, sent by an import, a resend or an unarchive.
const INVITATION: Template = template!("invitation");

/// The reminder email (`docs/product.md`, "Reminders"): its own subject and wording, the same
/// values and the same escaping.
const REMINDER: Template = template!("reminder");

/// Greeting name used when the CSV row gave no first name, so "Hi {{first_name}}," still reads well.
const ANONYMOUS_GREETING: &str = "there";

/// Everything an invitation or reminder email says; `render` turns it into subject and bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationEmail {
    /// Which email: the invitation, or a reminder of it.
    pub kind: InvitationKind,
    /// Display name of the workspace the invitee joins.
    pub workspace: String,
    /// Display name of the admin who sent the invitation.
    pub inviter: String,
    /// The invitee's first name, if the CSV had one.
    pub first_name: Option<String>,
    /// The invitee's email address.
    pub to: String,
    /// The full invitation URL, token included.
    pub link: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// A rendered invitation: a one-line subject and the two alternative bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line, guaranteed free of CR/LF and other control characters.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body with every value HTML-escaped.
    pub html: String,
}

impl InvitationEmail {
    /// Fills the compiled-in templates of this email's kind with its values.
    pub fn render(&self) -> Rendered {
        let template = match self.kind {
            InvitationKind::Invitation => &INVITATION,
            InvitationKind::Reminder => &REMINDER,
        };
        let first_name = self
            .first_name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .unwrap_or(ANONYMOUS_GREETING);
        let expires = format_expiry(self.expires_at);
        let values = [
            ("workspace", self.workspace.as_str()),
            ("inviter", self.inviter.as_str()),
            ("first_name", first_name),
            ("link", self.link.as_str()),
            ("expires", expires.as_str()),
        ];

        let subject = substitute(template.subject.trim(), &values, |value, out| {
            out.push_str(&single_line(value))
        });
        Rendered {
            // A value may itself end in whitespace once newlines became spaces.
            subject: subject.trim().to_owned(),
            text: substitute(template.text, &values, |value, out| out.push_str(value)),
            html: substitute(template.html, &values, escape_html),
        }
    }
}

/// "3 December 2026 15:04 UTC": unambiguous across locales, unlike 03/12/2026.
fn format_expiry(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y %H:%M UTC").to_string()
}

/// Replaces each `{{name}}` in one pass, so a value that itself contains `{{link}}` is left alone.
/// Unknown placeholders stay verbatim; the tests catch them in the compiled-in templates.
fn substitute(
    template: &str,
    values: &[(&str, &str)],
    write_value: impl Fn(&str, &mut String),
) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after_open = &rest[start + 2..];
        let Some(end) = after_open.find("}}") else {
            break;
        };
        let name = after_open[..end].trim();
        match values.iter().find(|(key, _)| *key == name) {
            Some((_, value)) => write_value(value, &mut out),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after_open[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Control characters in a header would let a workspace name inject headers or break the subject.
fn single_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Escapes for both element content and quoted attribute values (the link sits in `href="…"`).
fn escape_html(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn invitation() -> InvitationEmail {
        InvitationEmail {
            kind: InvitationKind::Invitation,
            workspace: "Acme Research".to_owned(),
            inviter: "Grace Hopper".to_owned(),
            first_name: Some("Ada".to_owned()),
            to: "ada@example.com".to_owned(),
            link: "https://invite.example.com/invitations/abc_DEF-123".to_owned(),
            expires_at: Utc.with_ymd_and_hms(2026, 12, 3, 15, 4, 0).unwrap(),
        }
    }

    #[test]
    fn render_substitutes_every_placeholder_in_every_part() {
        let rendered = invitation().render();

        for part in [&rendered.subject, &rendered.text, &rendered.html] {
            assert!(!part.contains("{{"), "placeholder left in:\n{part}");
        }
        assert_eq!(
            rendered.subject,
            "Grace Hopper invited you to join Acme Research"
        );
        for body in [&rendered.text, &rendered.html] {
            assert!(body.contains("Hi Ada,"));
            assert!(body.contains("Grace Hopper"));
            assert!(body.contains("Acme Research"));
            assert!(body.contains("https://invite.example.com/invitations/abc_DEF-123"));
            assert!(body.contains("3 December 2026 15:04 UTC"));
        }
    }

    #[test]
    fn greeting_reads_well_without_a_first_name() {
        for first_name in [None, Some(String::new()), Some("  ".to_owned())] {
            let rendered = InvitationEmail {
                first_name,
                ..invitation()
            }
            .render();

            assert!(rendered.text.starts_with("Hi there,"));
            assert!(rendered.html.contains("Hi there,"));
        }
    }

    #[test]
    fn html_body_escapes_values_while_text_body_keeps_them_plain() {
        let rendered = InvitationEmail {
            workspace: "<script>alert('x')</script>".to_owned(),
            inviter: "Tom & \"Jerry\"".to_owned(),
            link: "https://invite.example.com/invitations/a?b=1&c=2".to_owned(),
            ..invitation()
        }
        .render();

        assert!(!rendered.html.contains("<script>"));
        assert!(
            rendered
                .html
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
        );
        assert!(rendered.html.contains("Tom &amp; &quot;Jerry&quot;"));
        assert!(
            rendered
                .html
                .contains("href=\"https://invite.example.com/invitations/a?b=1&amp;c=2\"")
        );
        assert!(rendered.text.contains("<script>alert('x')</script>"));
        assert!(rendered.subject.contains("<script>"));
    }

    #[test]
    fn subject_stays_on_one_line_when_values_contain_newlines() {
        let rendered = InvitationEmail {
            workspace: "Acme\r\nBcc: victim@example.com\n".to_owned(),
            inviter: "Grace\tHopper".to_owned(),
            ..invitation()
        }
        .render();

        assert!(!rendered.subject.contains(['\r', '\n']));
        assert!(!rendered.subject.chars().any(char::is_control));
        assert_eq!(
            rendered.subject,
            "Grace Hopper invited you to join Acme  Bcc: victim@example.com"
        );
    }

    #[test]
    fn values_that_look_like_placeholders_are_not_expanded() {
        let rendered = InvitationEmail {
            workspace: "{{link}}".to_owned(),
            ..invitation()
        }
        .render();

        assert!(rendered.text.contains("join the {{link}} workspace"));
    }

    fn reminder() -> InvitationEmail {
        InvitationEmail {
            kind: InvitationKind::Reminder,
            ..invitation()
        }
    }

    #[test]
    fn a_reminder_says_it_is_one_in_its_subject_and_bodies_and_fills_every_placeholder() {
        let rendered = reminder().render();
        let invitation = invitation().render();

        assert_eq!(
            rendered.subject,
            "Reminder: Grace Hopper invited you to join Acme Research"
        );
        assert_ne!(rendered.text, invitation.text);
        assert_ne!(rendered.html, invitation.html);
        for part in [&rendered.subject, &rendered.text, &rendered.html] {
            assert!(!part.contains("{{"), "placeholder left in:\n{part}");
        }
        for body in [&rendered.text, &rendered.html] {
            assert!(body.contains("Hi Ada,"));
            assert!(body.contains("A reminder:"));
            assert!(body.contains("https://invite.example.com/invitations/abc_DEF-123"));
            assert!(body.contains("3 December 2026 15:04 UTC"));
        }
    }

    #[test]
    fn a_reminder_escapes_every_value_in_html_and_keeps_its_subject_on_one_line() {
        let rendered = InvitationEmail {
            workspace: "<b>Acme</b>\r\nBcc: victim@example.com".to_owned(),
            inviter: "Tom & \"Jerry\"".to_owned(),
            first_name: Some("<img src=x onerror=alert(1)>".to_owned()),
            ..reminder()
        }
        .render();

        assert!(!rendered.html.contains("<b>Acme"));
        assert!(!rendered.html.contains("<img"));
        assert!(rendered.html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(rendered.html.contains("Tom &amp; &quot;Jerry&quot;"));
        assert!(!rendered.subject.chars().any(char::is_control));
        assert!(rendered.subject.starts_with("Reminder: "));
    }
}

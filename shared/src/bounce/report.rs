//! Reading one message of the bounce mailbox: a delivery status notification (RFC 3464), a
//! complaint (an RFC 5965 abuse report), or neither (docs/product.md, "Bounces and complaints").
//!
//! Everything in a report is untrusted and may be malformed: [`parse`] never panics, caps what
//! it keeps, and its result says how to find the email (the return path it was sent from, its
//! `Message-ID`) without deciding anything. Reports carry invitees' addresses: nothing here logs.

use mail_parser::{MessageParser, MessagePart, MimeHeaders as _};

use crate::bounce::verp::ReturnPaths;
use crate::ids::DeliveryId;

/// Most recipients read from one report; a DSN names one per address the email was sent to.
const MAX_RECIPIENTS: usize = 100;

/// Most candidate return paths kept from one report's headers.
const MAX_ADDRESSES: usize = 16;

/// Most characters kept of a diagnostic, a status, a `Message-ID` or an envelope id.
const MAX_TEXT: usize = 1000;

/// What a message of the bounce mailbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A delivery status notification.
    Dsn(Dsn),
    /// A recipient (or their provider) reported the email as abuse.
    Complaint(Origin),
    /// Anything else (an out-of-office reply, a person writing back, spam): left alone.
    NotAReport,
}

/// A delivery status notification: its failed or delayed recipients and its original email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// The recipients whose delivery failed or is delayed (delivered/relayed ones are left out).
    pub recipients: Vec<RecipientStatus>,
    /// How to find the email the report is about.
    pub origin: Origin,
}

/// What a report says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// `Action: failed` (the server gave up) or `delayed` (it is still trying).
    pub action: Action,
    /// Permanent (`5.x.x`) or temporary (`4.x.x`).
    pub class: StatusClass,
    /// The enhanced status code as given (`5.1.1`), if any.
    pub status: Option<String>,
    /// The server's diagnostic without its type (`550 5.1.1 … User unknown`), if any. It may
    /// name the recipient's address: keep it where the email's other replies are kept.
    pub diagnostic: Option<String>,
}

/// The `Action` of a recipient this module reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The reporting server gave up.
    Failed,
    /// The reporting server keeps trying.
    Delayed,
}

/// Whether a failure can still cure itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// `5.x.x`: the address will not accept this email.
    Permanent,
    /// `4.x.x`: the server may still deliver it.
    Temporary,
}

/// How to find the email a report is about, best first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Addresses the report was delivered to or names as the original envelope sender: our
    /// return path is among them when the report came through VERP.
    pub return_paths: Vec<String>,
    /// The original email's `Message-ID`, without `<>`, when the report returned its headers.
    pub message_id: Option<String>,
    /// The DSN's `Original-Envelope-Id`, when the sending server passed one.
    pub envelope_id: Option<String>,
}

impl Origin {
    /// The delivery whose return path the report names, if one carries a valid tag.
    pub fn delivery(&self, paths: &ReturnPaths) -> Option<DeliveryId> {
        self.return_paths
            .iter()
            .find_map(|address| paths.delivery(address).ok())
    }
}

impl Report {
    /// How to find the email, for a DSN or a complaint.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            Report::Dsn(dsn) => Some(&dsn.origin),
            Report::Complaint(origin) => Some(origin),
            Report::NotAReport => None,
        }
    }
}

/// Classifies a raw message (RFC 5322 bytes, as fetched from the mailbox).
pub fn parse(raw: &[u8]) -> Report {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Report::NotAReport;
    };
    if !is_type(message.root_part(), "multipart", &["report"]) {
        return Report::NotAReport;
    }
    let mut origin = Origin::default();
    for (name, value) in message.headers_raw() {
        if ["To", "Delivered-To", "X-Original-To", "Envelope-To"]
            .iter()
            .any(|wanted| name.eq_ignore_ascii_case(wanted))
        {
            push_addresses(&mut origin.return_paths, value);
        }
    }
    let mut status = None;
    let mut feedback = None;
    for part in &message.parts {
        if is_type(
            part,
            "message",
            &["delivery-status", "global-delivery-status"],
        ) {
            status.get_or_insert_with(|| field_groups(part.contents()));
        } else if is_type(part, "message", &["feedback-report"]) {
            feedback.get_or_insert_with(|| field_groups(part.contents()));
        } else if let Some(original) = part.message() {
            read_original(&mut origin, original.headers_raw());
        } else if is_type(part, "text", &["rfc822-headers"])
            || is_type(part, "message", &["global-headers"])
        {
            let groups = field_groups(part.contents());
            let fields = groups.first().map(Vec::as_slice).unwrap_or_default();
            read_original(
                &mut origin,
                fields.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            );
        }
    }
    match (status, feedback) {
        (Some(groups), _) => Report::Dsn(dsn(groups, origin)),
        (None, Some(groups)) => complaint(&groups, origin),
        (None, None) => Report::NotAReport,
    }
}

/// Whether a part's `Content-Type` is `ctype/` one of `subtypes` (case-insensitive).
fn is_type(part: &MessagePart<'_>, ctype: &str, subtypes: &[&str]) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype)
            && ct
                .subtype()
                .is_some_and(|sub| subtypes.iter().any(|s| sub.eq_ignore_ascii_case(s)))
    })
}

/// A DSN from its field groups: the first is about the message, each further one a recipient.
fn dsn(groups: Vec<Vec<(String, String)>>, mut origin: Origin) -> Dsn {
    let mut groups = groups.into_iter();
    if let Some(per_message) = groups.next() {
        origin.envelope_id = field(&per_message, "original-envelope-id").map(angle_free);
    }
    let recipients = groups
        .filter_map(|group| recipient(&group))
        .take(MAX_RECIPIENTS)
        .collect();
    Dsn { recipients, origin }
}

/// A recipient's failure or delay; `None` when it was delivered, relayed or expanded.
fn recipient(fields: &[(String, String)]) -> Option<RecipientStatus> {
    let status = field(fields, "status")
        .and_then(|value| value.split_whitespace().next().map(str::to_owned));
    let status_class = status.as_deref().and_then(|s| match s.as_bytes().first() {
        Some(b'5') => Some(StatusClass::Permanent),
        Some(b'4') => Some(StatusClass::Temporary),
        _ => None,
    });
    let action = match field(fields, "action").map(|a| a.to_ascii_lowercase()) {
        Some(action) if action == "failed" => Action::Failed,
        Some(action) if action == "delayed" => Action::Delayed,
        Some(_) => return None,
        // No `Action`: the status says what happened.
        None => match status_class? {
            StatusClass::Permanent => Action::Failed,
            StatusClass::Temporary => Action::Delayed,
        },
    };
    let class = status_class.unwrap_or(match action {
        Action::Failed => StatusClass::Permanent,
        Action::Delayed => StatusClass::Temporary,
    });
    let diagnostic = field(fields, "diagnostic-code")
        .or_else(|| field(fields, "x-exim-diagnostic"))
        .map(|code| capped(without_type(code)));
    Some(RecipientStatus {
        action,
        class,
        status: status.as_deref().map(capped),
        diagnostic,
    })
}

/// A complaint when the feedback report says `Feedback-Type: abuse`.
fn complaint(groups: &[Vec<(String, String)>], mut origin: Origin) -> Report {
    let fields = groups.first().map(Vec::as_slice).unwrap_or_default();
    let abuse = field(fields, "feedback-type").is_some_and(|t| t.eq_ignore_ascii_case("abuse"));
    if !abuse {
        return Report::NotAReport;
    }
    // The original envelope sender is our return path itself: try it first.
    let mut senders = Vec::new();
    for (name, value) in fields {
        if name == "original-mail-from" {
            push_addresses(&mut senders, value);
        }
    }
    senders.append(&mut origin.return_paths);
    senders.truncate(MAX_ADDRESSES);
    origin.return_paths = senders;
    Report::Complaint(origin)
}

/// The returned original's `Return-Path` (our return path) and `Message-ID`.
fn read_original<'a>(origin: &mut Origin, headers: impl Iterator<Item = (&'a str, &'a str)>) {
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("Return-Path") {
            push_addresses(&mut origin.return_paths, value);
        } else if name.eq_ignore_ascii_case("Message-ID") && origin.message_id.is_none() {
            let id = angle_free(value);
            origin.message_id = Some(id).filter(|id| !id.is_empty());
        }
    }
}

/// The first value of a field (names are lower-case already).
fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
}

/// Adds each `local@domain` in a header value (`Name <a@b>, c@d`) to `into`, up to the cap.
fn push_addresses(into: &mut Vec<String>, value: &str) {
    let separators = |c: char| c.is_whitespace() || ",;<>\"()".contains(c);
    for token in value.split(separators).filter(|t| t.contains('@')) {
        if into.len() >= MAX_ADDRESSES {
            return;
        }
        if token.len() <= MAX_TEXT && !into.iter().any(|known| known == token) {
            into.push(token.to_owned());
        }
    }
}

/// `<id@host>` as `id@host`, capped.
fn angle_free(value: &str) -> String {
    capped(value.trim().trim_start_matches('<').trim_end_matches('>'))
}

/// A typed value (`smtp; 550 …`, `X-Postfix; unknown user`) without its type.
fn without_type(value: &str) -> &str {
    value
        .split_once(';')
        .filter(|(kind, _)| !kind.contains(char::is_whitespace))
        .map_or(value, |(_, text)| text.trim())
}

/// At most [`MAX_TEXT`] characters, owned.
fn capped(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// The groups of `Name: value` fields of a `message/delivery-status` or similar body: groups
/// are separated by blank lines, a line starting with white space continues the field above,
/// names are lower-cased, values trimmed with folded white space as one space.
fn field_groups(body: &[u8]) -> Vec<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(body);
    let mut groups: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        let current = groups.last_mut().expect("one group at least");
        if line.trim().is_empty() {
            if !current.is_empty() && groups.len() <= MAX_RECIPIENTS + 1 {
                groups.push(Vec::new());
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut()
                && value.len() < MAX_TEXT * 4
            {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    groups.retain(|group| !group.is_empty());
    groups
}

#[cfg(test)]
mod tests;

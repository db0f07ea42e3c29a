//! Signed webhooks (`docs/product.md`, "Webhooks"): the events the product reports, their JSON
//! body, the signing secret and the signature, in the Standard Webhooks format
//! (<https://www.standardwebhooks.com>).
//!
//! An event is written to the outbox (`webhook_messages`, see [`crate::store::webhooks`]) in the
//! transaction of the change it reports, so it exists exactly when the change does; the workers'
//! webhook sender delivers it, at least once, to every endpoint subscribed to its type.

pub mod target;

use base64::Engine as _;
use serde_json::json;

/// A type of event an endpoint may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// An import finished its rows.
    ImportCompleted,
    /// An import failed as a whole (its file could not be read).
    ImportFailed,
    /// An import was cancelled.
    ImportCancelled,
    /// A row of an import invited a member.
    MemberInvited,
    /// An invitation email was accepted by the mail server.
    EmailSent,
    /// An invitation email failed for good.
    EmailFailed,
    /// A sent email bounced.
    EmailBounced,
    /// A sent email drew a complaint.
    EmailComplained,
    /// A member accepted their invitation.
    MemberAccepted,
    /// A member was archived.
    MemberArchived,
    /// A member was unarchived.
    MemberUnarchived,
    /// A test event, sent on request to one endpoint.
    WebhookTest,
}

impl EventType {
    /// Every type, in the order the documentation lists them.
    pub const ALL: [EventType; 12] = [
        EventType::ImportCompleted,
        EventType::ImportFailed,
        EventType::ImportCancelled,
        EventType::MemberInvited,
        EventType::EmailSent,
        EventType::EmailFailed,
        EventType::EmailBounced,
        EventType::EmailComplained,
        EventType::MemberAccepted,
        EventType::MemberArchived,
        EventType::MemberUnarchived,
        EventType::WebhookTest,
    ];

    /// The name in the body's `type` and in subscriptions, e.g. `import.completed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::ImportCompleted => "import.completed",
            EventType::ImportFailed => "import.failed",
            EventType::ImportCancelled => "import.cancelled",
            EventType::MemberInvited => "member.invited",
            EventType::EmailSent => "email.sent",
            EventType::EmailFailed => "email.failed",
            EventType::EmailBounced => "email.bounced",
            EventType::EmailComplained => "email.complained",
            EventType::MemberAccepted => "member.accepted",
            EventType::MemberArchived => "member.archived",
            EventType::MemberUnarchived => "member.unarchived",
            EventType::WebhookTest => "webhook.test",
        }
    }

    /// The type a name gives; `None` for a name the product does not know.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A subscription: the event types an endpoint receives, stored comma-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription(Vec<EventType>);

impl Subscription {
    /// The subscription to `names`: each a known type, at least one; duplicates count once. The
    /// error names the first unknown type.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Subscription, String> {
        let mut types = Vec::new();
        for name in names {
            let name = name.as_ref();
            let t = EventType::parse(name).ok_or_else(|| format!("unknown event type {name:?}"))?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        if types.is_empty() {
            return Err("subscribe to at least one event type".into());
        }
        Ok(Subscription(types))
    }

    /// The subscription as stored; types the product no longer knows are left out.
    pub fn from_stored(stored: &str) -> Subscription {
        Subscription(stored.split(',').filter_map(EventType::parse).collect())
    }

    /// The stored form, e.g. `import.completed,email.sent`.
    pub fn stored(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|t| t.as_str()).collect();
        names.join(",")
    }

    /// Whether it includes `event`.
    pub fn includes(&self, event: EventType) -> bool {
        self.0.contains(&event)
    }

    /// The types, as names.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|t| t.as_str()).collect()
    }
}

/// The body sent for an event: `{"type", "timestamp" (RFC 3339, when it happened), "data"}`, the
/// shape Standard Webhooks recommends.
pub fn body(event: EventType, at: chrono::NaiveDateTime, data: serde_json::Value) -> String {
    let timestamp = at
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({"type": event.as_str(), "timestamp": timestamp, "data": data}).to_string()
}

/// A fresh `webhook-id`: `msg_` and 32 random hex digits, the same on every attempt.
pub fn new_msg_id() -> String {
    format!("msg_{:032x}", rand::random::<u128>())
}

/// Bytes of a signing key.
const SECRET_BYTES: usize = 32;

/// A fresh signing key, as stored: base64 of 32 random bytes.
pub fn new_secret() -> String {
    let key: [u8; SECRET_BYTES] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// A stored key as the endpoint's owner is shown it once: `whsec_<base64>`, the form every
/// Standard Webhooks library takes.
pub fn shown_secret(stored: &str) -> String {
    format!("whsec_{stored}")
}

/// The `webhook-signature` header of `body` sent as `msg_id` at `timestamp` (unix seconds):
/// `v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`, made by the official library.
pub fn sign(
    stored_secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &str,
) -> anyhow::Result<String> {
    let signer = standardwebhooks::Webhook::new(stored_secret)
        .map_err(|e| anyhow::anyhow!("the endpoint's signing key is unusable: {e}"))?;
    signer
        .sign(msg_id, timestamp, body.as_bytes())
        .map_err(|e| anyhow::anyhow!("signing the webhook: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_reads_back_from_its_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("import_completed"), None);
    }

    #[test]
    fn a_subscription_refuses_unknown_types_and_stores_each_once() {
        let s = Subscription::parse(&["email.sent", "import.completed", "email.sent"]).unwrap();
        assert_eq!(s.stored(), "email.sent,import.completed");
        assert_eq!(Subscription::from_stored(&s.stored()), s);
        assert!(s.includes(EventType::EmailSent));
        assert!(!s.includes(EventType::EmailFailed));
        let unknown = Subscription::parse(&["email.sent", "email.opened"]).unwrap_err();
        assert!(unknown.contains("email.opened"), "{unknown}");
        assert!(Subscription::parse::<&str>(&[]).is_err());
    }

    /// The signature of the Standard Webhooks specification's own example.
    #[test]
    fn the_signature_is_the_specifications() {
        let secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn the_body_has_the_recommended_shape() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
            .unwrap()
            .and_hms_opt(1, 2, 3)
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&body(EventType::WebhookTest, at, json!({"a": 1}))).unwrap();
        assert_eq!(
            body,
            json!({"type": "webhook.test", "timestamp": "2026-12-07T01:02:03.000Z", "data": {"a": 1}})
        );
    }

    #[test]
    fn a_secret_is_shown_with_its_prefix_and_signs() {
        let secret = new_secret();
        assert!(shown_secret(&secret).starts_with("whsec_"));
        assert!(sign(&secret, "msg_1", 1, "{}").unwrap().starts_with("v1,"));
    }
}

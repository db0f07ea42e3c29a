//! Reports from the bounce mailbox about a test's own emails: the parser's fixtures
//! (`shared/src/bounce/fixtures/`), written by real servers, made to name a delivery of the test.

use chrono::NaiveDateTime;
use invite_shared::bounce::verp::ReturnPaths;
use invite_shared::ids::DeliveryId;
use invite_shared::service::bounces::{self, Handled};

use crate::app::TestApp;

/// The key the tests' return paths are tagged with.
const KEY: &[u8] = b"a test key of enough bytes";

/// The return paths of the fixtures: `bounces@bounce.example.com` with [`KEY`].
pub fn paths() -> ReturnPaths {
    ReturnPaths::new("bounces@bounce.example.com", KEY).expect("a valid bounce address and key")
}

/// A fixture and what in it names the email it reports on.
pub struct Fixture {
    /// Its bytes, as the server wrote them.
    raw: &'static [u8],
    /// The return path it names (its VERP address), if any.
    return_path: Option<&'static str>,
    /// The original `Message-ID` it quotes (without `<>`), if any.
    message_id: Option<&'static str>,
    /// The recipient it reports on.
    recipient: &'static str,
}

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../shared/src/bounce/fixtures/", $name))
    };
}

/// Postfix's DSN of a permanent failure: `5.1.1 unknown user`.
pub const BOUNCE: Fixture = Fixture {
    raw: fixture!("postfix.eml"),
    return_path: Some("bounces+42-2453c8434d@bounce.example.com"),
    message_id: Some("delivery-42.invite@invite.example.com"),
    recipient: "ann.lee@example.org",
};

/// Postfix's DSN of a delay: `4.4.1`, still being retried.
pub const DELAY: Fixture = Fixture {
    raw: fixture!("delayed.eml"),
    return_path: Some("bounces+5-49b92d5c71@bounce.example.com"),
    message_id: Some("delivery-5.invite@invite.example.com"),
    recipient: "dave@slow.example.net",
};

/// Yahoo's abuse report (ARF).
pub const COMPLAINT: Fixture = Fixture {
    raw: fixture!("arf-abuse.eml"),
    return_path: Some("bounces+300-a3606f34fc@bounce.example.com"),
    message_id: Some("delivery-300.invite@invite.example.com"),
    recipient: "frank@yahoo.com",
};

/// Exchange's DSN of a permanent failure sent to the plain bounce address: only the original
/// `Message-ID` names the email.
pub const MESSAGE_ID_ONLY: Fixture = Fixture {
    raw: fixture!("message-id-only.eml"),
    return_path: None,
    message_id: Some("delivery-9001.invite@invite.example.com"),
    recipient: "erin@example.com",
};

/// A DSN to a return path whose tag is not the one of its delivery id.
pub const FORGED: Fixture = Fixture {
    raw: fixture!("forged-tag.eml"),
    return_path: Some("bounces+43-2453c8434d@bounce.example.com"),
    message_id: None,
    recipient: "victim@example.org",
};

/// An automatic reply that is no report.
pub const OUT_OF_OFFICE: &[u8] = fixture!("out-of-office.eml");

/// An email of the test as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The delivery's id.
    pub id: i64,
    /// The address it went to.
    pub to: String,
    /// The local part of its `Message-ID`, once it was claimed for sending.
    pub message_id: Option<String>,
    /// Its state.
    pub state: String,
    /// Its last error: a send's, or a bounce's diagnostic.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: NaiveDateTime,
}

impl Fixture {
    /// The report as a server would write it about `email`: its return path, `Message-ID` and
    /// recipient.
    pub fn about(&self, email: &Email) -> Vec<u8> {
        let address = paths().address(DeliveryId(email.id));
        self.with(email, &address)
    }

    /// The report about `email` sent to its return path with a tag made up without the key.
    pub fn forged_about(&self, email: &Email) -> Vec<u8> {
        let address = format!("bounces+{}-0000000000@bounce.example.com", email.id);
        self.with(email, &address)
    }

    fn with(&self, email: &Email, return_path: &str) -> Vec<u8> {
        let mut text = String::from_utf8(self.raw.to_vec()).expect("the fixtures are UTF-8");
        if let Some(fixture_path) = self.return_path {
            text = text.replace(fixture_path, return_path);
        }
        if let (Some(fixture_id), Some(id)) = (self.message_id, &email.message_id) {
            text = text.replace(fixture_id, &format!("{id}@invite.example.com"));
        }
        text.replace(self.recipient, &email.to).into_bytes()
    }
}

/// The latest email to `address`.
pub async fn email_to(app: &TestApp, address: &str) -> Email {
    use diesel::prelude::*;
    use invite_shared::db::schema::{accounts, deliveries, members};
    let to = address.to_owned();
    let (id, message_id, state, last_error, created_at) = app
        .db
        .run(move |conn| {
            Ok(invite_shared::on_conn!(conn, |c| deliveries::table
                .inner_join(members::table.inner_join(accounts::table))
                .filter(accounts::email.eq(&to))
                .order(deliveries::id.desc())
                .select((
                    deliveries::id,
                    deliveries::message_id,
                    deliveries::state,
                    deliveries::last_error,
                    deliveries::created_at,
                ))
                .first::<(
                    i64,
                    Option<String>,
                    String,
                    Option<String>,
                    NaiveDateTime
                )>(c))?)
        })
        .await
        .unwrap_or_else(|e| panic!("no email to {address}: {e}"));
    Email {
        id,
        to: address.to_owned(),
        message_id,
        state,
        last_error,
        created_at,
    }
}

/// Reads `raw` as the bounce reader does with each message it fetches.
pub async fn handle(app: &TestApp, raw: Vec<u8>) -> Handled {
    bounces::handle(&app.db, &paths(), raw)
        .await
        .expect("recording a report")
}

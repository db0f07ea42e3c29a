//! Reports as real servers write them (`bounce/fixtures/`), and hostile bytes.

use proptest::prelude::*;

use super::*;

const KEY: &[u8] = b"a test key of enough bytes";

fn paths() -> ReturnPaths {
    ReturnPaths::new("bounces@bounce.example.com", KEY).unwrap()
}

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../fixtures/", $name))
    };
}

/// Every fixture, for the hostile-input tests.
const FIXTURES: [&[u8]; 9] = [
    fixture!("postfix.eml"),
    fixture!("postfix-3.7-real.eml"),
    fixture!("exim.eml"),
    fixture!("gmail.eml"),
    fixture!("delayed.eml"),
    fixture!("message-id-only.eml"),
    fixture!("arf-abuse.eml"),
    fixture!("forged-tag.eml"),
    fixture!("out-of-office.eml"),
];

fn dsn(raw: &[u8]) -> Dsn {
    match parse(raw) {
        Report::Dsn(dsn) => dsn,
        other => panic!("not a DSN: {other:?}"),
    }
}

fn only_recipient(dsn: &Dsn) -> &RecipientStatus {
    assert_eq!(dsn.recipients.len(), 1, "{dsn:?}");
    &dsn.recipients[0]
}

#[test]
fn a_postfix_dsn_is_a_permanent_failure_of_its_delivery() {
    let dsn = dsn(fixture!("postfix.eml"));
    let recipient = only_recipient(&dsn);
    assert_eq!(recipient.action, Action::Failed);
    assert_eq!(recipient.class, StatusClass::Permanent);
    assert_eq!(recipient.status.as_deref(), Some("5.1.1"));
    assert_eq!(
        recipient.diagnostic.as_deref(),
        Some("unknown user: \"ann.lee@example.org\"")
    );
    assert_eq!(dsn.origin.delivery(&paths()), Some(DeliveryId(42)));
    assert_eq!(
        dsn.origin.message_id.as_deref(),
        Some("delivery-42.invite@invite.example.com")
    );
}

#[test]
fn the_dsn_of_a_real_postfix_names_its_delivery_and_diagnostic() {
    // Written by Postfix 3.7 in tests/tests/bounce_reader.rs, host names scrubbed.
    let dsn = dsn(fixture!("postfix-3.7-real.eml"));
    let recipient = only_recipient(&dsn);
    assert_eq!(recipient.class, StatusClass::Permanent);
    assert_eq!(recipient.status.as_deref(), Some("5.1.1"));
    let diagnostic = recipient.diagnostic.as_deref().unwrap_or_default();
    assert!(diagnostic.starts_with("unknown user"), "{diagnostic}");
    assert_eq!(dsn.origin.delivery(&paths()), Some(DeliveryId(42)));
}

#[test]
fn an_exim_dsn_keeps_its_exim_diagnostic() {
    let dsn = dsn(fixture!("exim.eml"));
    let recipient = only_recipient(&dsn);
    assert_eq!(recipient.action, Action::Failed);
    assert_eq!(recipient.class, StatusClass::Permanent);
    assert_eq!(recipient.status.as_deref(), Some("5.0.0"));
    assert_eq!(recipient.diagnostic.as_deref(), Some("Unrouteable address"));
    assert_eq!(dsn.origin.delivery(&paths()), Some(DeliveryId(1001)));
    assert_eq!(
        dsn.origin.message_id.as_deref(),
        Some("delivery-1001.invite@invite.example.com")
    );
}

#[test]
fn a_gmail_dsn_keeps_its_folded_smtp_reply_as_one_line() {
    let dsn = dsn(fixture!("gmail.eml"));
    let recipient = only_recipient(&dsn);
    assert_eq!(recipient.class, StatusClass::Permanent);
    assert_eq!(recipient.status.as_deref(), Some("5.1.1"));
    let diagnostic = recipient.diagnostic.as_deref().unwrap();
    assert!(
        diagnostic
            .starts_with("550-5.1.1 The email account that you tried to reach does not exist."),
        "{diagnostic}"
    );
    assert!(!diagnostic.contains('\n'), "{diagnostic}");
    assert_eq!(dsn.origin.delivery(&paths()), Some(DeliveryId(77)));
}

#[test]
fn a_delayed_dsn_is_temporary() {
    let dsn = dsn(fixture!("delayed.eml"));
    let recipient = only_recipient(&dsn);
    assert_eq!(recipient.action, Action::Delayed);
    assert_eq!(recipient.class, StatusClass::Temporary);
    assert_eq!(recipient.status.as_deref(), Some("4.4.1"));
    assert!(
        recipient
            .diagnostic
            .as_deref()
            .unwrap()
            .ends_with("Connection timed out"),
        "{recipient:?}"
    );
    assert_eq!(dsn.origin.delivery(&paths()), Some(DeliveryId(5)));
}

#[test]
fn a_dsn_without_our_return_path_names_the_message_id_and_envelope_id() {
    let dsn = dsn(fixture!("message-id-only.eml"));
    assert_eq!(only_recipient(&dsn).status.as_deref(), Some("5.1.10"));
    assert_eq!(dsn.origin.delivery(&paths()), None);
    assert_eq!(
        dsn.origin.message_id.as_deref(),
        Some("delivery-9001.invite@invite.example.com")
    );
    assert_eq!(dsn.origin.envelope_id.as_deref(), Some("env-9001"));
}

#[test]
fn an_arf_abuse_report_is_a_complaint_about_its_delivery() {
    let Report::Complaint(origin) = parse(fixture!("arf-abuse.eml")) else {
        panic!("not a complaint");
    };
    assert!(
        origin.return_paths[0].starts_with("bounces+300-"),
        "the original envelope sender first: {origin:?}"
    );
    assert_eq!(origin.delivery(&paths()), Some(DeliveryId(300)));
    assert_eq!(
        origin.message_id.as_deref(),
        Some("delivery-300.invite@invite.example.com")
    );
}

#[test]
fn a_feedback_report_that_is_not_abuse_is_left_alone() {
    let raw = String::from_utf8_lossy(fixture!("arf-abuse.eml"))
        .replace("Feedback-Type: abuse", "Feedback-Type: not-spam");
    assert_eq!(parse(raw.as_bytes()), Report::NotAReport);
}

#[test]
fn a_forged_tag_names_no_delivery() {
    let dsn = dsn(fixture!("forged-tag.eml"));
    assert_eq!(dsn.origin.delivery(&paths()), None);
}

#[test]
fn an_out_of_office_reply_is_not_a_report() {
    assert_eq!(parse(fixture!("out-of-office.eml")), Report::NotAReport);
}

#[test]
fn delivered_recipients_are_left_out() {
    let raw = String::from_utf8_lossy(fixture!("postfix.eml"))
        .replace("Action: failed", "Action: delivered")
        .replace("Status: 5.1.1", "Status: 2.0.0");
    assert!(dsn(raw.as_bytes()).recipients.is_empty());
}

#[test]
fn without_an_action_the_status_says_what_happened() {
    let raw = String::from_utf8_lossy(fixture!("postfix.eml"))
        .replace("Action: failed", "X-Note: no action");
    let recipient = only_recipient(&dsn(raw.as_bytes())).clone();
    assert_eq!(
        (recipient.action, recipient.class),
        (Action::Failed, StatusClass::Permanent)
    );
    let raw = raw.replace("Status: 5.1.1", "Status: 4.2.2");
    let recipient = only_recipient(&dsn(raw.as_bytes())).clone();
    assert_eq!(
        (recipient.action, recipient.class),
        (Action::Delayed, StatusClass::Temporary)
    );
}

#[test]
fn every_truncation_and_corruption_of_the_fixtures_parses_without_panicking() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for raw in FIXTURES {
        for end in (0..raw.len()).step_by(7) {
            let _ = parse(&raw[..end]);
        }
        for _ in 0..200 {
            let mut bytes = raw.to_vec();
            for _ in 0..8 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            let _ = parse(&bytes);
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_parse_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn random_bytes_inside_a_report_parse_without_panicking(
        body in proptest::collection::vec(any::<u8>(), 0..2048)
    ) {
        let mut raw = b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\n".to_vec();
        raw.extend_from_slice(&body);
        raw.extend_from_slice(b"\r\n--x--\r\n");
        let _ = parse(&raw);
    }
}

//! The small closed sets of states the ledger records, with their stored spellings.
//!
//! Each is a `TEXT` column that binds and reads as the enum itself. Reading a spelling the enum
//! does not know fails the query (`diesel::result::Error::DeserializationError`, naming the value)
//! rather than standing in for some state: a row written by a newer release, or by hand, must not
//! be taken for `failed` or `archived` and acted upon.

use serde::Serialize;

/// Implements `ToSql<Text>` and `FromSql<Text>` for every backend for a type stored as the text
/// `as_str` gives and `$read` reads back (`None` for an unknown text, which the read refuses).
///
/// A macro because it writes impls, which a function cannot, for types declared apart (the
/// statuses below, and [`Role`](crate::domain::role::Role)).
macro_rules! stored_as_text {
    ($name:ident, $read:path) => {
        impl<DB: diesel::backend::Backend> diesel::serialize::ToSql<diesel::sql_types::Text, DB>
            for $name
        where
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                diesel::serialize::ToSql::<diesel::sql_types::Text, DB>::to_sql(self.as_str(), out)
            }
        }

        impl<DB: diesel::backend::Backend> diesel::deserialize::FromSql<diesel::sql_types::Text, DB>
            for $name
        where
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let stored = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    DB,
                >>::from_sql(bytes)?;
                $read(&stored).ok_or_else(|| {
                    format!("{stored:?} is not a stored {}", stringify!($name)).into()
                })
            }
        }
    };
}
pub(crate) use stored_as_text;

/// Declares an enum with its stored spellings. A macro because it declares a type, its variants and
/// the `match`es between them and their texts, which neither a function nor a generic can.
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// The spelling stored in the database and shown in the API.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Reads a stored spelling back.
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        stored_as_text!($name, $name::parse);
    };
}

stored_enum!(
    /// A membership's status.
    MemberStatus {
        /// Invited, has not accepted yet.
        Invited = "invited",
        /// Cloud edition: invited and has never activated an account.
        Requested = "requested",
        /// Accepted the invitation.
        Active = "active",
        /// Archived by an admin; links stop working.
        Archived = "archived",
    }
);

stored_enum!(
    /// An import's lifecycle.
    ImportStatus {
        /// Stored and enqueued; no worker has started it.
        Queued = "queued",
        /// A worker is applying its rows.
        Processing = "processing",
        /// Every row has an outcome.
        Completed = "completed",
        /// The file itself could not be processed (see `error`).
        Failed = "failed",
        /// An admin stopped it: no more rows are applied and its unsent emails are cancelled.
        Cancelled = "cancelled",
    }
);

stored_enum!(
    /// An email delivery's state.
    DeliveryState {
        /// Waiting for its next attempt (`next_attempt_at`).
        Pending = "pending",
        /// Claimed by a worker, which holds a lease on it.
        Sending = "sending",
        /// Accepted by the SMTP server (or written to the outbox).
        Sent = "sent",
        /// Permanently failed or out of retries; support may retry it.
        Failed = "failed",
        /// Not to be sent: the member was archived, or a resend replaced it.
        Cancelled = "cancelled",
        /// Accepted by the mail server, then reported undeliverable (a `5.x.x` delivery status
        /// notification read from the bounce mailbox).
        Bounced = "bounced",
        /// Delivered, then reported as abuse by its recipient or their provider.
        Complained = "complained",
    }
);

stored_enum!(
    /// What a report read from the bounce mailbox said about an email (`bounce_reports.kind`).
    ReportKind {
        /// A permanent failure (`5.x.x`): the email is `bounced`.
        Bounced = "bounced",
        /// A temporary failure (`4.x.x`): the reporting server keeps trying; the email's state
        /// stays as it was.
        Delayed = "delayed",
        /// An abuse report: the email is `complained`.
        Complained = "complained",
    }
);

stored_enum!(
    /// Why a member's address gets no reminder or resend (`members.suppressed_reason`) until
    /// support clears it or corrects the address.
    SuppressionReason {
        /// An email to it hard-bounced.
        Bounced = "bounced",
        /// Its recipient reported an email as abuse.
        Complained = "complained",
    }
);

stored_enum!(
    /// What made an invitation (`invitations.cause`), as a member's timeline shows it.
    InvitationCause {
        /// The import row that created the membership.
        Import = "import",
        /// An admin's or operator's resend.
        Resend = "resend",
        /// An unarchive, which invites the member again.
        Unarchive = "unarchive",
        /// A link minted for an admin to copy, for a member without an open invitation.
        InvitationLink = "invitation_link",
        /// A reminder to a member who has not accepted yet (`docs/product.md`, "Reminders").
        Reminder = "reminder",
        /// Support corrected the member's address: an invitation to the new one.
        AddressChange = "address_change",
    }
);

stored_enum!(
    /// What an import did with one row.
    RowOutcome {
        /// A new membership with an invitation was created.
        Invited = "invited",
        /// Nothing was created, for the reason given.
        Skipped = "skipped",
        /// The row failed validation.
        Invalid = "invalid",
    }
);

stored_enum!(
    /// Which email an invitation sends: the first invitation (and a resend's), or a reminder
    /// (`docs/product.md`, "Reminders"), each with its own template.
    InvitationKind {
        /// The invitation email.
        Invitation = "invitation",
        /// The reminder email, sent to a member who has not accepted yet.
        Reminder = "reminder",
    }
);

impl InvitationKind {
    /// The email an invitation made for `cause` sends: a reminder's, or the invitation's (for
    /// every other cause, and for invitations made before causes were recorded).
    pub fn of(cause: Option<InvitationCause>) -> InvitationKind {
        match cause {
            Some(InvitationCause::Reminder) => InvitationKind::Reminder,
            _ => InvitationKind::Invitation,
        }
    }
}

stored_enum!(
    /// A webhook delivery's state (one message to one endpoint).
    WebhookDeliveryState {
        /// Waiting for its next attempt.
        Pending = "pending",
        /// Claimed by a worker, being sent.
        Sending = "sending",
        /// The endpoint answered 2xx.
        Delivered = "delivered",
        /// Not delivered within `WEBHOOK_RETRY_WINDOW`.
        Failed = "failed",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_spellings_round_trip() {
        for s in [
            MemberStatus::Invited,
            MemberStatus::Requested,
            MemberStatus::Active,
            MemberStatus::Archived,
        ] {
            assert_eq!(MemberStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryState::parse("sent"), Some(DeliveryState::Sent));
        assert_eq!(ImportStatus::parse("nope"), None);
        for kind in [InvitationKind::Invitation, InvitationKind::Reminder] {
            assert_eq!(InvitationKind::parse(kind.as_str()), Some(kind));
        }
    }
}

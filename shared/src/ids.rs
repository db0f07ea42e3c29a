//! Typed ids, so an import id can never be passed where a member id is expected.
//!
//! Every id is a `BIGINT` column. An id type binds and reads as that column type itself (one
//! generic `ToSql`/`FromSql` pair, which each backend's `i64` implementation serves), so rows,
//! filters and inserts carry the id type and no conversion is written at any call.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::BigInt;
use serde::{Deserialize, Serialize};

/// Declares an id newtype. A macro because it declares a type and its impls, which a function
/// cannot.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<DB: Backend> ToSql<BigInt, DB> for $name
        where
            i64: ToSql<BigInt, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                <i64 as ToSql<BigInt, DB>>::to_sql(&self.0, out)
            }
        }

        impl<DB: Backend> FromSql<BigInt, DB> for $name
        where
            i64: FromSql<BigInt, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                i64::from_sql(bytes).map($name)
            }
        }
    };
}

id_type!(
    /// A workspace's primary key.
    WorkspaceId
);
id_type!(
    /// A person's (account's) primary key.
    AccountId
);
id_type!(
    /// A registered worker process's primary key (see `store::workers`).
    WorkerId
);
id_type!(
    /// An import's primary key.
    ImportId
);
id_type!(
    /// A membership's primary key.
    MemberId
);
id_type!(
    /// An invitation's primary key (a membership has one per email that invited it).
    InvitationId
);
id_type!(
    /// An email delivery's primary key.
    DeliveryId
);
id_type!(
    /// A bounce report's primary key (`bounce_reports`: one per report read that named an email).
    BounceReportId
);
id_type!(
    /// A workspace group's primary key.
    GroupId
);
id_type!(
    /// An API token's primary key (its secret is never stored).
    TokenId
);
id_type!(
    /// An audit log entry's primary key, the cursor of the log's pages.
    AuditEventId
);
id_type!(
    /// A webhook endpoint's primary key.
    WebhookEndpointId
);
id_type!(
    /// A webhook message's primary key (the outbox: one per event).
    WebhookMessageId
);
id_type!(
    /// A webhook delivery's primary key (one per message and endpoint).
    WebhookDeliveryId
);
id_type!(
    /// A webhook delivery attempt's primary key, the cursor of the delivery log's pages.
    WebhookAttemptId
);

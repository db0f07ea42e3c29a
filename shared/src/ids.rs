//! Typed ids, so an import id can never be passed where a member id is expected.

use serde::{Deserialize, Serialize};

/// Declares an id newtype. A macro because it declares a type and its impls, which a function
/// cannot.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
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
    /// An import's primary key.
    ImportId
);
id_type!(
    /// A membership's primary key.
    MemberId
);
id_type!(
    /// An email delivery's primary key.
    DeliveryId
);

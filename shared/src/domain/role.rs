//! The role an invitee gets in the workspace, and its spellings in CSVs and in storage.

use serde::{Deserialize, Serialize};

/// The role a member holds in a workspace; stored as [`Role::as_str`], and a stored text that is
/// no role fails the query that reads it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages the workspace, its members and imports.
    Admin,
    /// Builds apps in the workspace.
    Builder,
    /// Uses the apps others build.
    EndUser,
}

impl Role {
    /// Every role, in the order admins see them listed.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Builder, Role::EndUser];

    /// Parses a CSV cell, forgiving case, spaces, `_` and `-` (`End User`, `end_user`, `END-USER`).
    pub fn parse(s: &str) -> Result<Role, String> {
        let key: String = s
            .chars()
            .filter(|c| !(c.is_whitespace() || *c == '_' || *c == '-'))
            .flat_map(char::to_lowercase)
            .collect();
        match key.as_str() {
            "admin" => Ok(Role::Admin),
            "builder" => Ok(Role::Builder),
            "enduser" => Ok(Role::EndUser),
            _ => Err(format!(
                "{:?} is not a role; use Admin, Builder or End User",
                shorten(s.trim())
            )),
        }
    }

    /// The form stored in the database and used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Builder => "builder",
            Role::EndUser => "end_user",
        }
    }

    /// Reads back what [`Role::as_str`] stored; `None` for anything else.
    pub fn from_stored(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == s)
    }

    /// The name shown to people, as in the CSV template.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Builder => "Builder",
            Role::EndUser => "End User",
        }
    }
}

crate::status::stored_as_text!(Role, Role::from_stored);

/// Keeps messages readable when someone pastes a paragraph into the role column.
fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        s.chars().take(MAX).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_labels_parse() {
        assert_eq!(Role::parse("Admin"), Ok(Role::Admin));
        assert_eq!(Role::parse("Builder"), Ok(Role::Builder));
        assert_eq!(Role::parse("End User"), Ok(Role::EndUser));
    }

    #[test]
    fn end_user_spellings_parse() {
        for s in [
            "End-user",
            "end_user",
            "enduser",
            "END USER",
            "EndUser",
            " end - user ",
        ] {
            assert_eq!(Role::parse(s), Ok(Role::EndUser), "{s:?}");
        }
    }

    #[test]
    fn parsing_ignores_case_and_surrounding_space() {
        assert_eq!(Role::parse("  aDmIn "), Ok(Role::Admin));
        assert_eq!(Role::parse("BUILDER"), Ok(Role::Builder));
    }

    #[test]
    fn unknown_roles_are_rejected_with_the_choices() {
        let message = Role::parse("Owner").unwrap_err();
        assert_eq!(
            message,
            "\"Owner\" is not a role; use Admin, Builder or End User"
        );
    }

    #[test]
    fn empty_is_rejected() {
        assert!(Role::parse("").is_err());
        assert!(Role::parse(" - ").is_err());
    }

    #[test]
    fn long_values_are_shortened_in_the_message() {
        let message = Role::parse(&"x".repeat(500)).unwrap_err();
        assert!(message.len() < 100, "{message}");
    }

    #[test]
    fn stored_forms_are_snake_case_and_round_trip() {
        let stored: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(stored, ["admin", "builder", "end_user"]);
        for role in Role::ALL {
            assert_eq!(Role::from_stored(role.as_str()), Some(role));
        }
    }

    #[test]
    fn from_stored_is_strict() {
        assert_eq!(Role::from_stored("Admin"), None);
        assert_eq!(Role::from_stored("End User"), None);
        assert_eq!(Role::from_stored(""), None);
    }

    #[test]
    fn labels_parse_back_to_their_role() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.label()), Ok(role));
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
    }

    #[test]
    fn serde_uses_the_stored_form() {
        assert_eq!(
            serde_json::to_string(&Role::EndUser).unwrap(),
            "\"end_user\""
        );
        for role in Role::ALL {
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Role::parse(&s);
        }
    }
}

//! Secret tokens (invitation links, API tokens): 32 random bytes, URL-safe base64; only SHA-256 stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// A freshly minted token: the text given out once, and the hash that is stored.
pub struct Token {
    /// The secret, shown to its holder and never stored.
    pub plain: String,
    /// SHA-256 of `plain`, the only form kept in the database.
    pub hash: Vec<u8>,
}

/// Mints a new random token.
pub fn mint() -> Token {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let plain = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&plain);
    Token { plain, hash }
}

/// What every API token starts with, so secret scanners (and people) recognise a leaked one.
pub const API_TOKEN_PREFIX: &str = "bi_";

/// How much of an API token is kept in the clear to tell tokens apart in lists: the prefix and
/// 8 characters (48 of its 256 random bits).
const SHOWN_LEN: usize = API_TOKEN_PREFIX.len() + 8;

/// Mints a new API token: [`API_TOKEN_PREFIX`] and 32 random bytes.
pub fn mint_api() -> Token {
    let random = mint();
    let plain = format!("{API_TOKEN_PREFIX}{}", random.plain);
    let hash = hash(&plain);
    Token { plain, hash }
}

/// The part of an API token that may be shown in lists and logs, e.g. `bi_Q2x9LmZa`.
pub fn shown_prefix(plain: &str) -> String {
    plain.chars().take(SHOWN_LEN).collect()
}

/// The stored form of a presented token.
pub fn hash(plain: &str) -> Vec<u8> {
    Sha256::digest(plain.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_url_safe_unique_and_hash_to_their_stored_form() {
        let a = mint();
        let b = mint();
        assert_ne!(a.plain, b.plain);
        assert_eq!(a.plain.len(), 43);
        assert!(
            a.plain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(hash(&a.plain), a.hash);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn api_tokens_carry_the_prefix_and_show_only_their_start() {
        let token = mint_api();
        assert!(token.plain.starts_with("bi_"));
        assert_eq!(token.plain.len(), 3 + 43);
        assert_eq!(hash(&token.plain), token.hash);
        let shown = shown_prefix(&token.plain);
        assert_eq!(shown.len(), 11);
        assert!(token.plain.starts_with(&shown));
    }
}

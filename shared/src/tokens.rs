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
}

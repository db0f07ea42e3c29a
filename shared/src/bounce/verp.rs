//! Per-delivery return paths (VERP): `bounces+{delivery id}-{tag}@bounce.example.com` under
//! `BOUNCE_ADDRESS`, and reading a delivery id back from such an address (docs/product.md,
//! "Bounces and complaints").
//!
//! The tag is a keyed HMAC of the id, so a report can only name a delivery whose address we
//! made: nobody without `BOUNCE_KEY` can make another delivery bounce. It is lower-case hex, an
//! alphabet mail servers may change the case of (Postfix can lower-case a local part) without
//! changing its value.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretSlice};
use sha2::Sha256;

use crate::ids::DeliveryId;

/// Hex characters of the tag: 40 bits of the HMAC, so guessing one takes ~10^12 tries.
pub const TAG_LEN: usize = 10;

/// The least key length accepted (`BOUNCE_KEY`).
pub const MIN_KEY_LEN: usize = 16;

/// Why a return path could not be made or read. Carries no part of an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerpError {
    /// `BOUNCE_ADDRESS` is not `local@domain` with a plain local part.
    #[error("BOUNCE_ADDRESS must be local@domain, its local part without `+`, `-` or quotes")]
    BadBounceAddress,
    /// The key is shorter than [`MIN_KEY_LEN`] bytes.
    #[error("BOUNCE_KEY must be at least {MIN_KEY_LEN} bytes")]
    ShortKey,
    /// The address is not one of ours (another domain or local part, or no id and tag).
    #[error("not a return path of this bounce address")]
    NotOurs,
    /// The address has our form but its tag does not match its id: forged or damaged.
    #[error("the return path's tag does not match its delivery id")]
    BadTag,
}

/// Makes and reads the return paths of one bounce address with one key.
#[derive(Clone)]
pub struct ReturnPaths {
    local: String,
    domain: String,
    key: Arc<SecretSlice<u8>>,
}

impl std::fmt::Debug for ReturnPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReturnPaths")
            .field("local", &self.local)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl ReturnPaths {
    /// Return paths under `bounce_address` (`bounces@bounce.example.com`), tagged with `key`.
    pub fn new(bounce_address: &str, key: &[u8]) -> Result<ReturnPaths, VerpError> {
        let (local, domain) = bounce_address
            .trim()
            .rsplit_once('@')
            .ok_or(VerpError::BadBounceAddress)?;
        let plain = |c: char| c.is_ascii_alphanumeric() || "._".contains(c);
        let domain_ok = |c: char| c.is_ascii_alphanumeric() || ".-".contains(c);
        if local.is_empty() || !local.chars().all(plain) || domain.is_empty() {
            return Err(VerpError::BadBounceAddress);
        }
        if !domain.chars().all(domain_ok) || domain.starts_with('.') || domain.ends_with('.') {
            return Err(VerpError::BadBounceAddress);
        }
        if key.len() < MIN_KEY_LEN {
            return Err(VerpError::ShortKey);
        }
        Ok(ReturnPaths {
            local: local.to_owned(),
            domain: domain.to_ascii_lowercase(),
            key: Arc::new(SecretSlice::from(key.to_vec())),
        })
    }

    /// The envelope sender of a delivery's email: `{local}+{id}-{tag}@{domain}`.
    pub fn address(&self, id: DeliveryId) -> String {
        let tag = self.tag(id);
        format!("{}+{id}-{tag}@{}", self.local, self.domain)
    }

    /// The delivery a return path names, refusing another address or a tag that does not match.
    /// `<…>` around the address is allowed; the domain and the tag are read case-insensitively.
    pub fn delivery(&self, address: &str) -> Result<DeliveryId, VerpError> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, domain) = address.rsplit_once('@').ok_or(VerpError::NotOurs)?;
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return Err(VerpError::NotOurs);
        }
        let (base, detail) = local.split_once('+').ok_or(VerpError::NotOurs)?;
        // Our local part as written, or as a server that lower-cases local parts wrote it.
        if base != self.local && base != self.local.to_ascii_lowercase() {
            return Err(VerpError::NotOurs);
        }
        let (id, tag) = detail.rsplit_once('-').ok_or(VerpError::NotOurs)?;
        let id = parse_id(id).ok_or(VerpError::NotOurs)?;
        let tag = decode_tag(tag).ok_or(VerpError::BadTag)?;
        self.mac(id)
            .verify_truncated_left(&tag)
            .map_err(|_| VerpError::BadTag)?;
        Ok(id)
    }

    fn mac(&self, id: DeliveryId) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(id.0.to_string().as_bytes());
        mac
    }

    fn tag(&self, id: DeliveryId) -> String {
        let digest = self.mac(id).finalize().into_bytes();
        digest[..TAG_LEN / 2]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// A delivery id as we write it: decimal digits only, no sign, no leading zero.
fn parse_id(text: &str) -> Option<DeliveryId> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok().map(DeliveryId)
}

/// The tag's bytes, from hex in either case.
fn decode_tag(text: &str) -> Option<Vec<u8>> {
    if text.len() != TAG_LEN || !text.is_ascii() {
        return None;
    }
    (0..TAG_LEN)
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a test key of enough bytes";

    fn paths() -> ReturnPaths {
        ReturnPaths::new("bounces@Bounce.Example.com", KEY).unwrap()
    }

    #[test]
    fn an_address_reads_back_as_its_delivery() {
        let paths = paths();
        let address = paths.address(DeliveryId(42));
        assert!(address.starts_with("bounces+42-"), "{address}");
        assert!(address.ends_with("@bounce.example.com"), "{address}");
        assert_eq!(
            address.len(),
            "bounces+42-@bounce.example.com".len() + TAG_LEN
        );
        assert_eq!(paths.delivery(&address), Ok(DeliveryId(42)));
        assert_eq!(paths.delivery(&format!("<{address}>")), Ok(DeliveryId(42)));
    }

    #[test]
    fn case_changes_by_mail_servers_are_accepted() {
        let paths = paths();
        let address = paths.address(DeliveryId(7));
        let (local, _) = address.split_once('@').unwrap();
        let upper_domain = format!("{local}@BOUNCE.EXAMPLE.COM");
        assert_eq!(paths.delivery(&upper_domain), Ok(DeliveryId(7)));
        let upper_tag = address.to_ascii_uppercase().replace("BOUNCES+", "bounces+");
        assert_eq!(paths.delivery(&upper_tag), Ok(DeliveryId(7)));
        let mixed = ReturnPaths::new("Bounces@bounce.example.com", KEY).unwrap();
        let lowered = mixed.address(DeliveryId(7)).to_ascii_lowercase();
        assert_eq!(mixed.delivery(&lowered), Ok(DeliveryId(7)));
    }

    #[test]
    fn a_forged_or_damaged_tag_is_refused() {
        let paths = paths();
        let genuine = paths.address(DeliveryId(42));
        let tag = genuine
            .split_once('-')
            .unwrap()
            .1
            .split_once('@')
            .unwrap()
            .0;
        let other_id = format!("bounces+43-{tag}@bounce.example.com");
        assert_eq!(paths.delivery(&other_id), Err(VerpError::BadTag));
        let zeros = format!("bounces+42-{}@bounce.example.com", "0".repeat(TAG_LEN));
        assert_eq!(paths.delivery(&zeros), Err(VerpError::BadTag));
        let short = format!("bounces+42-{}@bounce.example.com", &tag[..TAG_LEN - 1]);
        assert_eq!(paths.delivery(&short), Err(VerpError::BadTag));
        let not_hex = format!("bounces+42-{}@bounce.example.com", "z".repeat(TAG_LEN));
        assert_eq!(paths.delivery(&not_hex), Err(VerpError::BadTag));
        let other_key = ReturnPaths::new("bounces@bounce.example.com", b"another key, as long")
            .unwrap()
            .address(DeliveryId(42));
        assert_eq!(paths.delivery(&other_key), Err(VerpError::BadTag));
    }

    #[test]
    fn other_addresses_are_not_ours() {
        let paths = paths();
        let genuine = paths.address(DeliveryId(42));
        let detail = genuine
            .split_once('+')
            .unwrap()
            .1
            .split_once('@')
            .unwrap()
            .0;
        for address in [
            format!("bounces+{detail}@elsewhere.example.com"),
            format!("other+{detail}@bounce.example.com"),
            format!("bounces+{detail}"),
            "bounces@bounce.example.com".to_owned(),
            "bounces+-abc@bounce.example.com".to_owned(),
            format!("bounces+-42-{}@bounce.example.com", "0".repeat(TAG_LEN)),
            format!("bounces+042-{}@bounce.example.com", "0".repeat(TAG_LEN)),
            String::new(),
        ] {
            assert_eq!(
                paths.delivery(&address),
                Err(VerpError::NotOurs),
                "{address}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn every_delivery_reads_back_and_any_text_is_refused_or_read(id in 0..i64::MAX, text in ".{0,80}") {
            let paths = paths();
            proptest::prop_assert_eq!(paths.delivery(&paths.address(DeliveryId(id))), Ok(DeliveryId(id)));
            let _ = paths.delivery(&text);
            let _ = paths.delivery(&format!("bounces+{text}@bounce.example.com"));
        }
    }

    #[test]
    fn a_bad_bounce_address_or_short_key_is_refused() {
        for address in [
            "bounces",
            "@example.com",
            "a+b@example.com",
            "a@",
            "a@-x..",
            "a@.x",
        ] {
            assert_eq!(
                ReturnPaths::new(address, KEY).unwrap_err(),
                VerpError::BadBounceAddress,
                "{address}"
            );
        }
        assert_eq!(
            ReturnPaths::new("bounces@example.com", b"short").unwrap_err(),
            VerpError::ShortKey
        );
    }
}

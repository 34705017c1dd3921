//! Secret tokens: 256 random bits from the OS CSPRNG, shown once, stored only as SHA-256.
//!
//! A fast hash is right here: unlike passwords, the tokens carry full entropy, so a stolen
//! hash cannot be brute-forced back into a token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::TryRngCore as _;
use sha2::{Digest, Sha256};

/// What a token is for, readable in its prefix (helps secret scanners and support).
#[derive(Clone, Copy, Debug)]
pub enum TokenKind {
    Session,
    PersonalAccess,
    /// The link in an invitation email.
    Invitation,
    /// The link in an email-verification or password-reset email.
    AccountLink,
    /// A service's (the agent runtime's): [`crate::auth::service_tokens`].
    Service,
    /// The link in a workspace export's email ([`crate::exports`]).
    Export,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "lks_",
            TokenKind::PersonalAccess => "lkp_",
            TokenKind::Invitation => "lki_",
            TokenKind::AccountLink => "lka_",
            TokenKind::Service => SERVICE_PREFIX,
            TokenKind::Export => "lkx_",
        }
    }
}

/// The prefix of service tokens: only a bearer with it is looked up among them.
pub const SERVICE_PREFIX: &str = "lksvc_";

/// A freshly minted token: the plaintext for the client and the hash for the database.
pub struct MintedToken {
    pub plaintext: String,
    pub hash: Vec<u8>,
}

pub fn mint(kind: TokenKind) -> MintedToken {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random source is available");
    let plaintext = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&plaintext);
    MintedToken { plaintext, hash }
}

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_unique_and_stored_hashed() {
        let a = mint(TokenKind::Session);
        let b = mint(TokenKind::Session);
        assert_ne!(a.plaintext, b.plaintext);
        assert!(a.plaintext.starts_with("lks_"));
        assert_eq!(a.plaintext.len(), 4 + 43);
        assert_eq!(a.hash, hash(&a.plaintext));
        assert_ne!(a.hash, a.plaintext.as_bytes());
        assert!(mint(TokenKind::PersonalAccess)
            .plaintext
            .starts_with("lkp_"));
    }
}

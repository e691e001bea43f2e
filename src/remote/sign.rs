//! Signed objects, for buckets that more people can write than should be trusted.
//!
//! A checksum tells a damaged object from a good one; it cannot tell who wrote it: anyone with
//! `s3:PutObject` on the bucket can store a proc-macro under any key, with a checksum that
//! matches, and every machine that builds runs it. With a signing key, the writer records, next
//! to the checksum, a keyed BLAKE3 of the object's key and checksum; a reader with the key
//! takes only objects whose signature it can recompute. The key is in the signature, so a
//! signed object copied under another key is refused too. A reader without a key takes every
//! object, as before (docs/security.md).
//!
//! The key file may hold any secret of at least 16 bytes (`head -c 32 /dev/urandom`); the
//! signing key is derived from it, so its format does not matter.

use std::path::Path;

use crate::key::Key;

/// The S3 metadata name (`x-amz-meta-signature`) of the signature.
pub const SIGNATURE_META: &str = "signature";

/// Shortest accepted key file, in bytes.
const MIN_SECRET: usize = 16;

/// A signing key.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read the signing key {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the signing key {path} holds {len} bytes; it needs at least {MIN_SECRET} (make one with `head -c 32 /dev/urandom > {path}`)")]
    TooShort { path: String, len: usize },
}

impl Signer {
    /// The key derived from `secret`.
    pub fn from_secret(secret: &[u8]) -> Signer {
        Signer { key: blake3::derive_key("cairn 2026 object signing key v1", secret) }
    }

    /// Reads the key from a file.
    pub fn from_file(path: &Path) -> Result<Signer, SignError> {
        let shown = path.display().to_string();
        let secret = std::fs::read(path).map_err(|source| SignError::Read { path: shown.clone(), source })?;
        if secret.len() < MIN_SECRET {
            return Err(SignError::TooShort { path: shown, len: secret.len() });
        }
        Ok(Signer::from_secret(&secret))
    }

    /// The signature of the object stored under `key` with these contents.
    pub fn sign(&self, key: &Key, checksum: &[u8; 32]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&key.0);
        h.update(checksum);
        *h.finalize().as_bytes()
    }

    /// Whether `signature` was made with this key for this key and contents (constant time).
    pub fn verify(&self, key: &Key, checksum: &[u8; 32], signature: Option<&[u8; 32]>) -> bool {
        signature.is_some_and(|s| blake3::Hash::from(*s) == blake3::Hash::from(self.sign(key, checksum)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_key_key_and_contents_verify() {
        let (a, b) = (Signer::from_secret(b"team secret 0123"), Signer::from_secret(b"other secret 012"));
        let (k1, k2, sum) = (Key([1; 32]), Key([2; 32]), [7u8; 32]);
        let sig = a.sign(&k1, &sum);
        assert!(a.verify(&k1, &sum, Some(&sig)));
        assert!(!a.verify(&k2, &sum, Some(&sig)), "copied under another key");
        assert!(!a.verify(&k1, &[8; 32], Some(&sig)), "other contents");
        assert!(!b.verify(&k1, &sum, Some(&sig)), "another writer's key");
        assert!(!a.verify(&k1, &sum, None), "unsigned");
    }

    #[test]
    fn a_short_key_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, b"short").unwrap();
        let e = Signer::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("head -c 32 /dev/urandom"), "{e}");
        std::fs::write(&p, [9u8; 32]).unwrap();
        assert!(Signer::from_file(&p).is_ok());
    }
}

//! The cache key: 32 bytes of BLAKE3, spelled as 64 lowercase hex characters.
//!
//! Pure and dependency-light: the wrapper, the store and the filesystem all use it.

use std::fmt;

/// A 32-byte BLAKE3 digest that names one object in the cache.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Key(pub [u8; 32]);

/// Length of a key's text form.
pub const KEY_HEX_LEN: usize = 64;

impl Key {
    /// Parses the canonical text form: exactly 64 lowercase hex digits.
    ///
    /// Uppercase is refused on purpose: one object must have exactly one name, or `rm` of one
    /// spelling would leave the other.
    /// A key from its 32 raw bytes (`None` when there are not exactly 32).
    pub fn parse_bytes(bytes: Option<&[u8]>) -> Option<Key> {
        Some(Key(bytes?.try_into().ok()?))
    }

    pub fn parse(text: &str) -> Option<Key> {
        let bytes = text.as_bytes();
        if bytes.len() != KEY_HEX_LEN {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(Key(out))
    }

    /// The key of some bytes: their BLAKE3 hash.
    pub fn of_bytes(bytes: &[u8]) -> Key {
        Key(*blake3::hash(bytes).as_bytes())
    }

    /// The 64-character lowercase hex name.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(KEY_HEX_LEN);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// The two-hex-character fan-out folder the object lives in on disk.
    pub fn shard(&self) -> String {
        self.to_hex()[..2].to_string()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", &self.to_hex()[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_only_lowercase_64_hex() {
        let good = "ab".repeat(32);
        assert_eq!(Key::parse(&good).unwrap().to_hex(), good);
        assert!(Key::parse(&"AB".repeat(32)).is_none());
        assert!(Key::parse(&"ab".repeat(31)).is_none());
        assert!(Key::parse(&format!("{}a", "ab".repeat(32))).is_none());
        assert!(Key::parse(&format!("{}g", "a".repeat(63))).is_none());
        assert!(Key::parse("").is_none());
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let key = Key(bytes);
            prop_assert_eq!(Key::parse(&key.to_hex()), Some(key));
        }
    }
}

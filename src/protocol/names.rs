//! What a name in the mount root means: an object key, a writer's temporary, or nothing valid.

use std::ffi::OsStr;

use crate::key::Key;

/// Prefix that marks a temporary file. Such names are never listed and never objects.
pub const TEMP_PREFIX: &str = ".tmp";

/// The one-line rule logged when a bad name is used.
pub const NAME_RULE: &str = "names in the cairn mount are 64 lowercase hex characters (a BLAKE3 key) \
     for committed objects, or start with \".tmp\" for files being written; \
     write to a .tmp name, then rename it to the key";

/// The temporary a writer that knows its key uses: `.tmp.<key>.<pid>.<nanos>`. Naming the key
/// tells the daemon which object the temporary becomes, so the lookup the kernel makes before
/// the rename is answered locally, never by S3 ([`announces`]).
pub fn temp_name_for(key: &Key, pid: u32, nanos: u32) -> String {
    format!("{TEMP_PREFIX}.{}.{pid}.{nanos}", key.to_hex())
}

/// The prefix of every temporary that announces `key`.
pub fn announces(key: &Key) -> String {
    format!("{TEMP_PREFIX}.{}", key.to_hex())
}

/// A classified name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name<'a> {
    /// A committed object's name.
    Object(Key),
    /// A temporary file's name.
    Temp(&'a str),
    /// Anything else.
    Invalid,
}

/// Classifies a name in the mount root.
pub fn classify(name: &OsStr) -> Name<'_> {
    let Some(s) = name.to_str() else { return Name::Invalid };
    if let Some(key) = Key::parse(s) {
        return Name::Object(key);
    }
    if s.starts_with(TEMP_PREFIX) && !s.contains('/') && s.len() <= 255 {
        return Name::Temp(s);
    }
    Name::Invalid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        let hex = "0f".repeat(32);
        assert!(matches!(classify(OsStr::new(&hex)), Name::Object(_)));
        assert_eq!(classify(OsStr::new(".tmp.123")), Name::Temp(".tmp.123"));
        assert_eq!(classify(OsStr::new(".tmp")), Name::Temp(".tmp"));
        assert_eq!(classify(OsStr::new("hello")), Name::Invalid);
        assert_eq!(classify(OsStr::new(&hex.to_uppercase())), Name::Invalid);
        assert_eq!(classify(OsStr::new("..")), Name::Invalid);
        assert_eq!(classify(OsStr::new("tmp.x")), Name::Invalid);
    }
}

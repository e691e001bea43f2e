//! Memo files: a result remembered together with the identity of the files it was computed
//! from, so that a later call can reuse it after a few `stat`s instead of redoing the work
//! (hashing a toolchain, asking a linker its version). Used by toolchain.rs and link.rs.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A file's identity: if any of these change, the file may have changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stamp {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i128,
    pub ino: u64,
}

/// The identity of the file at `p` (following symlinks).
pub fn stamp(p: &Path) -> io::Result<Stamp> {
    let m = fs::metadata(p)?;
    Ok(Stamp {
        path: p.display().to_string(),
        size: m.len(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ino: m.ino(),
    })
}

/// Reads a memo; anything unreadable is simply no memo.
pub fn load<T: DeserializeOwned>(path: &Path) -> Option<T> {
    bincode::deserialize(&fs::read(path).ok()?).ok()
}

/// Writes a memo atomically (temp file, then rename). Failure only costs the next call time.
pub fn save<T: Serialize>(path: &Path, value: &T) {
    let Some(dir) = path.parent() else { return };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if let Ok(bytes) = bincode::serialize(value) {
        if fs::write(&tmp, bytes).is_ok() && fs::rename(&tmp, path).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }
}

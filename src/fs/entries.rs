//! What each entry is: the metadata a result object carries (crate, types, target, rustc,
//! compile time), read from the object's header and remembered per key.
//!
//! Filled at commit (from the temporary's first bytes), or on first need for objects that came
//! from before (a verified open of the object), and saved by the daemon across restarts. Shown
//! as `user.cairn.*` extended attributes and in the `by-crate/` view.

use std::collections::HashMap;

use crate::key::Key;
use crate::protocol::object::{peek_meta, EntryMeta, Peek};
use crate::store::ObjectMeta;

/// How many bytes to read first when looking for a header (most headers are far smaller).
pub const PEEK_BYTES: u32 = 64 * 1024;

/// Metadata by key; `None` for objects that are not results (manifests, other files).
#[derive(Debug, Default)]
pub struct Entries {
    map: HashMap<Key, Option<EntryMeta>>,
}

impl Entries {
    /// What is known about `key`, if it was looked at.
    pub fn get(&self, key: &Key) -> Option<&Option<EntryMeta>> {
        self.map.get(key)
    }

    /// Records what an object is.
    pub fn insert(&mut self, key: Key, meta: Option<EntryMeta>) {
        self.map.insert(key, meta);
    }

    /// Forgets a removed object.
    pub fn remove(&mut self, key: &Key) {
        self.map.remove(key);
    }

    /// Every known result, for saving.
    pub fn snapshot(&self) -> Vec<(Key, EntryMeta)> {
        self.map.iter().filter_map(|(k, m)| m.clone().map(|m| (*k, m))).collect()
    }
}

/// Decodes metadata with `read(offset, len)`, reading more when the header is large.
pub fn read_meta(mut read: impl FnMut(u64, u32) -> std::io::Result<Vec<u8>>) -> Option<EntryMeta> {
    let first = read(0, PEEK_BYTES).ok()?;
    match peek_meta(&first) {
        Peek::Meta(m) => Some(m),
        Peek::NotResult => None,
        Peek::NeedBytes(n) => match peek_meta(&read(0, n as u32).ok()?) {
            Peek::Meta(m) => Some(m),
            _ => None,
        },
    }
}

/// The `user.cairn.*` attributes of an object, as `getfattr -d` shows them.
pub fn xattrs(meta: Option<&EntryMeta>, obj: &ObjectMeta) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    match meta {
        Some(m) => {
            v.push(("user.cairn.kind".into(), b"result".to_vec()));
            v.push(("user.cairn.crate".into(), m.crate_name.clone().into_bytes()));
            v.push(("user.cairn.crate_types".into(), m.crate_types.join(",").into_bytes()));
            v.push(("user.cairn.target".into(), m.target.clone().into_bytes()));
            v.push(("user.cairn.rustc".into(), m.rustc_version.clone().into_bytes()));
            v.push(("user.cairn.compile_secs".into(), format!("{:.3}", m.compile_ns as f64 / 1e9).into_bytes()));
            v.push(("user.cairn.exit_code".into(), m.exit_code.to_string().into_bytes()));
        }
        None => v.push(("user.cairn.kind".into(), b"other".to_vec())),
    }
    v.push(("user.cairn.size".into(), obj.size.to_string().into_bytes()));
    v.push(("user.cairn.created".into(), unix_text(obj.created_ns).into_bytes()));
    v.push(("user.cairn.last_used".into(), unix_text(obj.last_used_ns).into_bytes()));
    v
}

/// Seconds since the epoch, with milliseconds.
fn unix_text(ns: u64) -> String {
    format!("{}.{:03}", ns / 1_000_000_000, (ns / 1_000_000) % 1000)
}

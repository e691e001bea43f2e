//! A remote held in memory, for tests.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Found, Remote, RemoteError, RemoteErrorKind, RemoteObject};
use crate::key::Key;

/// A bucket in a `HashMap`.
#[derive(Debug, Default)]
pub struct MemoryRemote {
    objects: Mutex<HashMap<Key, RemoteObject>>,
}

impl MemoryRemote {
    /// An empty bucket.
    pub fn new() -> MemoryRemote {
        MemoryRemote::default()
    }

    /// Whether the bucket holds `key`.
    pub fn contains(&self, key: &Key) -> bool {
        self.objects.lock().unwrap().contains_key(key)
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.lock().unwrap().len()
    }

    /// Whether the bucket is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flips a bit of a stored object (a damaged upload).
    pub fn corrupt(&self, key: &Key) {
        if let Some(o) = self.objects.lock().unwrap().get_mut(key) {
            if let Some(b) = o.bytes.first_mut() {
                *b ^= 1;
            }
        }
    }
}

impl Remote for MemoryRemote {
    fn get_into(&self, key: &Key, out: &mut dyn std::io::Write) -> Result<Option<Found>, RemoteError> {
        let Some(o) = self.objects.lock().unwrap().get(key).cloned() else { return Ok(None) };
        out.write_all(&o.bytes).map_err(|e| RemoteError::new(RemoteErrorKind::Other, e.to_string()))?;
        Ok(Some(Found { checksum: o.checksum, signature: o.signature }))
    }
    fn put(
        &self,
        key: &Key,
        bytes: &[u8],
        checksum: &[u8; 32],
        signature: Option<&[u8; 32]>,
    ) -> Result<(), RemoteError> {
        self.objects.lock().unwrap().insert(
            *key,
            RemoteObject { bytes: bytes.to_vec(), checksum: Some(*checksum), signature: signature.copied() },
        );
        Ok(())
    }
    fn delete(&self, key: &Key) -> Result<(), RemoteError> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
}

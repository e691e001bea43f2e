//! An in-memory store for tests: same rules as the disk store (limit, LRU, pins, checksums),
//! no files. `corrupt` flips a stored byte so tests can check that readers never get it.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::index::{Index, InsertError};
use super::{now_ns, Committed, ObjectMeta, ObjectRead, Store, StoreError, TempWrite, Usage};
use crate::key::Key;

/// Objects in a `HashMap`, bounded by an [`Index`].
#[derive(Debug, Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    corrupt_removed: AtomicU64,
    evicted: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    index: Index,
    bytes: HashMap<Key, Arc<Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store with a size limit.
    pub fn new(limit: u64) -> MemoryStore {
        MemoryStore {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner { index: Index::new(limit), bytes: HashMap::new() }),
                corrupt_removed: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Flips one bit of a stored object, as a failing disk would.
    pub fn corrupt(&self, key: &Key, at: usize) {
        let mut inner = self.lock();
        if let Some(b) = inner.bytes.get_mut(key) {
            let v = Arc::make_mut(b);
            if let Some(byte) = v.get_mut(at) {
                *byte ^= 0x01;
            }
        }
    }
}

/// A reader over a snapshot of the bytes; unpins on drop.
#[derive(Debug)]
pub struct MemoryReader {
    bytes: Arc<Vec<u8>>,
    key: Key,
    store: MemoryStore,
}

impl Drop for MemoryReader {
    fn drop(&mut self) {
        self.store.lock().index.unpin(&self.key);
    }
}

impl ObjectRead for MemoryReader {
    fn read_at(&self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        Ok(slice(&self.bytes, offset, len))
    }
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn file(&self) -> Option<&File> {
        None
    }
}

fn slice(bytes: &[u8], offset: u64, len: u32) -> Vec<u8> {
    let start = (offset as usize).min(bytes.len());
    let end = start.saturating_add(len as usize).min(bytes.len());
    bytes[start..end].to_vec()
}

/// A temporary buffer.
#[derive(Debug, Default)]
pub struct MemoryTemp {
    bytes: Mutex<Vec<u8>>,
}

impl MemoryTemp {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TempWrite for MemoryTemp {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut b = self.lock();
        let end = offset as usize + data.len();
        if b.len() < end {
            b.resize(end, 0);
        }
        b[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
    fn read_at(&self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        Ok(slice(&self.lock(), offset, len))
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.lock().len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.lock().resize(len as usize, 0);
        Ok(())
    }
    fn file(&self) -> Option<&File> {
        None
    }
}

impl Store for MemoryStore {
    type Reader = MemoryReader;
    type Temp = MemoryTemp;

    fn stat(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        Ok(self.lock().index.peek(key).copied())
    }

    fn list(&self) -> Result<Vec<(Key, ObjectMeta)>, StoreError> {
        Ok(self.lock().index.lru_order())
    }

    fn keys(&self) -> Result<Vec<Key>, StoreError> {
        Ok(self.lock().index.lru_keys())
    }

    fn open(&self, key: &Key) -> Result<Option<MemoryReader>, StoreError> {
        let mut inner = self.lock();
        let Some(meta) = inner.index.touch(key, now_ns()) else {
            return Ok(None);
        };
        let bytes = Arc::clone(&inner.bytes[key]);
        if bytes.len() as u64 != meta.size || *blake3::hash(&bytes).as_bytes() != meta.checksum {
            inner.index.remove(key);
            inner.bytes.remove(key);
            self.shared.corrupt_removed.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Corrupt(*key));
        }
        inner.index.pin(key);
        Ok(Some(MemoryReader { bytes, key: *key, store: self.clone() }))
    }

    fn create_temp(&self) -> Result<MemoryTemp, StoreError> {
        Ok(MemoryTemp::default())
    }

    fn commit(&self, temp: &MemoryTemp, key: &Key) -> Result<Committed, StoreError> {
        let bytes = temp.lock().clone();
        let now = now_ns();
        let meta = ObjectMeta {
            size: bytes.len() as u64,
            checksum: *blake3::hash(&bytes).as_bytes(),
            created_ns: now,
            last_used_ns: now,
        };
        let mut inner = self.lock();
        match inner.index.insert(*key, meta) {
            Ok(evicted) => {
                for (k, _) in &evicted {
                    inner.bytes.remove(k);
                }
                self.shared.evicted.fetch_add(evicted.len() as u64, Ordering::Relaxed);
                inner.bytes.insert(*key, Arc::new(bytes));
                Ok(Committed::New { meta, evicted: evicted.into_iter().map(|(k, _)| k).collect() })
            }
            Err(InsertError::Present(existing)) if existing.checksum == meta.checksum => {
                Ok(Committed::AlreadyPresent(existing))
            }
            Err(InsertError::Present(_)) => Err(StoreError::Exists(*key)),
            Err(InsertError::TooLarge) => Err(StoreError::TooLarge { size: meta.size, limit: inner.index.limit() }),
            Err(InsertError::NoRoom) => Err(StoreError::NoRoom { needed: meta.size }),
        }
    }

    fn discard(&self, temp: &MemoryTemp) {
        temp.lock().clear();
    }

    fn remove(&self, key: &Key) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        inner.bytes.remove(key);
        Ok(inner.index.remove(key).is_some())
    }

    fn usage(&self) -> Usage {
        let inner = self.lock();
        Usage {
            used: inner.index.used(),
            limit: inner.index.limit(),
            objects: inner.index.len() as u64,
            corrupt_removed: self.shared.corrupt_removed.load(Ordering::Relaxed),
            evicted: self.shared.evicted.load(Ordering::Relaxed),
            ..Usage::default()
        }
    }

    fn pin(&self, key: &Key) -> bool {
        let mut inner = self.lock();
        let exists = inner.index.peek(key).is_some();
        if exists {
            inner.index.pin(key);
        }
        exists
    }

    fn unpin(&self, key: &Key) {
        self.lock().index.unpin(key);
    }
}

//! Storage of committed objects, behind one small trait the filesystem is written against.
//!
//! Why this shape: the filesystem needs exactly four things from storage, so that is all the
//! trait has — look an object up, open it for reading (already checked against its checksum),
//! stage a new one in a temporary file, and commit or remove one. A miss is `Ok(None)`, never an
//! error, so callers can tell "not cached" from "storage is broken".
//!
//! Readers and temporaries are associated types, not trait objects, so each store hands the
//! filesystem its own handle type (a real `File` for disk, bytes for memory) with no downcasting,
//! and a disk handle can expose its file descriptor for FUSE passthrough.
//!
//! Versions: [`disk::DiskStore`] (the real one), [`memory::MemoryStore`] (tests),
//! [`faulty::FaultyStore`] (wraps another and injects failures).

pub mod disk;
pub mod faulty;
pub mod index;
pub mod journal;
pub mod memory;
pub mod tiered;

use std::fs::File;
use std::io;
use std::time::SystemTime;

use crate::key::Key;

/// What is known about one committed object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectMeta {
    /// Length in bytes.
    pub size: u64,
    /// BLAKE3 of the bytes, taken at commit.
    pub checksum: [u8; 32],
    /// Commit time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
    /// Last time the object was opened (or committed), nanoseconds since the Unix epoch.
    pub last_used_ns: u64,
}

/// How full the store is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of committed objects.
    pub used: u64,
    /// The size limit.
    pub limit: u64,
    /// Number of committed objects.
    pub objects: u64,
    /// Objects found corrupt (and removed) since the store was opened.
    pub corrupt_removed: u64,
    /// Objects evicted to make room since the store was opened.
    pub evicted: u64,
    /// Whether a remote (S3) tier is behind this store, and whether this machine only reads it.
    pub remote: bool,
    pub remote_read_only: bool,
    /// Uploads and deletions waiting for the remote.
    pub uploads_pending: u64,
    pub deletes_pending: u64,
    /// Remote calls for uploads that failed (each is retried).
    pub uploads_failed: u64,
    /// Queued uploads whose object was evicted before its turn (it never reached the remote).
    pub uploads_skipped: u64,
    /// Objects in the remote refused for a missing or wrong signature.
    pub unsigned_refused: u64,
    /// Objects brought from the remote since the store was opened, and how many of those
    /// were fetched ahead of need (hinted by an object fetched before them).
    pub fetched: u64,
    pub prefetched: u64,
}

/// How a commit went when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// The object is new; `evicted` were removed to make room (the caller tells the kernel).
    New { meta: ObjectMeta, evicted: Vec<Key> },
    /// The key already held exactly these bytes; nothing changed.
    AlreadyPresent(ObjectMeta),
}

/// Why a store operation failed. Every variant is a fault or a refusal, never a miss.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key already holds different bytes; committed objects never change.
    #[error("object {0} already exists with different contents")]
    Exists(Key),
    /// The object alone is larger than the whole cache.
    #[error("object of {size} bytes is larger than the cache limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    /// Making room would mean evicting objects that are open for reading.
    #[error("no room: {needed} bytes needed, and the objects that could be evicted are in use")]
    NoRoom { needed: u64 },
    /// The stored bytes do not match their checksum (or length); the object was removed.
    #[error("object {0} is corrupt (checksum mismatch); it has been removed")]
    Corrupt(Key),
    /// An I/O error from the layer below, such as a full disk.
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// Wraps an I/O error with a short note of what was being done.
    pub fn io(context: &'static str) -> impl FnOnce(io::Error) -> StoreError {
        move |source| StoreError::Io { context, source }
    }
}

/// A committed object opened for reading. It stays readable, and is not evicted, while the
/// handle lives.
pub trait ObjectRead: Send + Sync {
    /// Reads up to `len` bytes at `offset`; fewer only at the end.
    fn read_at(&self, offset: u64, len: u32) -> io::Result<Vec<u8>>;
    /// The length of the object.
    fn len(&self) -> u64;
    /// Whether the object is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The file holding the bytes, when there is one (for FUSE passthrough).
    fn file(&self) -> Option<&File>;
}

/// A temporary file being written; it becomes an object only through [`Store::commit`].
pub trait TempWrite: Send + Sync {
    /// Writes `data` at `offset`, growing the file as needed.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Reads up to `len` bytes at `offset`.
    fn read_at(&self, offset: u64, len: u32) -> io::Result<Vec<u8>>;
    /// Current length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends to `len`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file holding the bytes, when there is one (for FUSE passthrough).
    fn file(&self) -> Option<&File>;
}

/// Told of each object a store evicts on its own, outside a [`Store::commit`] call (a
/// read-through fetch that makes room), so the kernel can be told as for every other eviction.
pub type EvictionSink = Box<dyn Fn(&Key) + Send + Sync>;

/// Storage of immutable, checksummed objects with a size limit.
pub trait Store: Send + Sync + 'static {
    /// Handle to a committed object open for reading.
    type Reader: ObjectRead + 'static;
    /// Handle to a temporary file being written.
    type Temp: TempWrite + 'static;

    /// Metadata of a committed object; `Ok(None)` when there is none.
    fn stat(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError>;
    /// As [`stat`](Self::stat), but never asking a remote tier: for a key a writer on this
    /// machine is about to commit, where the remote's answer would change nothing.
    fn stat_local(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        self.stat(key)
    }
    /// Every committed object, least recently used first.
    fn list(&self) -> Result<Vec<(Key, ObjectMeta)>, StoreError>;
    /// The keys of [`list`](Self::list), without their metadata.
    fn keys(&self) -> Result<Vec<Key>, StoreError> {
        Ok(self.list()?.into_iter().map(|(k, _)| k).collect())
    }
    /// Opens a committed object after checking its bytes against the checksum, and marks it
    /// used. A corrupt object is removed and reported as [`StoreError::Corrupt`].
    fn open(&self, key: &Key) -> Result<Option<Self::Reader>, StoreError>;
    /// Makes a new, empty temporary file.
    fn create_temp(&self) -> Result<Self::Temp, StoreError>;
    /// Turns a temporary file into the object `key`, evicting least-recently-used objects to
    /// stay within the limit. The temporary is consumed unless an error says otherwise.
    fn commit(&self, temp: &Self::Temp, key: &Key) -> Result<Committed, StoreError>;
    /// [`commit`](Self::commit) of a temporary whose bytes the caller hashed (BLAKE3) as it
    /// wrote them, every byte once and in order (a fetch from the bucket): a store that would
    /// read them back to hash them may take `checksum` instead.
    fn commit_hashed(&self, temp: &Self::Temp, key: &Key, checksum: [u8; 32]) -> Result<Committed, StoreError> {
        let _ = checksum;
        self.commit(temp, key)
    }
    /// Deletes a temporary file that will not be committed.
    fn discard(&self, temp: &Self::Temp);
    /// Removes a committed object; `Ok(false)` when there was none.
    fn remove(&self, key: &Key) -> Result<bool, StoreError>;
    /// How full the store is.
    fn usage(&self) -> Usage;
    /// Keeps `key` from being evicted (for example until it is uploaded); counted, like open
    /// readers. Returns whether the object exists.
    fn pin(&self, key: &Key) -> bool;
    /// Undoes one [`pin`](Store::pin).
    fn unpin(&self, key: &Key);
    /// Fetches these keys from a remote tier ahead of need, in the background, in this order
    /// (a build set: docs/operations.md); stores without a remote ignore it.
    fn prefetch(&self, _keys: Vec<Key>) {}
    /// Where to report evictions that no `commit` call returns (see [`EvictionSink`]); stores
    /// that evict only inside `commit` ignore it.
    fn set_eviction_sink(&self, _sink: EvictionSink) {}
    /// What is wrong with the remote tier now, in plain words with the fix; `None` when all is
    /// well or there is no remote.
    fn remote_problem(&self) -> Option<String> {
        None
    }
    /// Writes whatever state must survive a restart. Called at clean shutdown.
    fn persist(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

//! The local disk store: objects as plain files under a versioned root, with an LRU size limit.
//!
//! Layout of `<store>/v1/`:
//! - `objects/ab/abcd…` — one file per object, fanned out by the key's first two hex characters.
//! - `tmp/` — temporary files being written; everything here is deleted at start (its writers
//!   died with the previous daemon).
//! - `index.bin`, `journal.log` — the persisted index ([`super::journal`]).
//! - `lock` — held with `flock` so that two daemons never share one store.
//!
//! Integrity: the checksum is taken at commit. On open the file is checked against it unless
//! this process already checked the very same file (same device, inode, size, mtime and ctime);
//! anything that rewrites the file changes its ctime and forces a fresh check. The whole design
//! and its costs are in docs/integrity.md.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::index::{Index, InsertError};
use super::journal::{Journal, Record};
use super::{now_ns, Committed, ObjectMeta, ObjectRead, Store, StoreError, TempWrite, Usage};
use crate::key::Key;

/// Name of the versioned root inside the store folder.
pub const LAYOUT_VERSION: &str = "v1";

/// Journal records after which the index is rewritten as a snapshot.
const COMPACT_AFTER: u64 = 1 << 20;

/// The local store. Cheap to clone handles share one state.
#[derive(Debug)]
pub struct DiskStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    // std Mutex, not an async one: nothing waits on I/O longer than one small write or unlink
    // while holding it, and there is no runtime in this layer.
    inner: Mutex<Inner>,
    /// Files already checked against their checksum, by identity. See the module docs.
    verified: Mutex<HashMap<Key, FileId>>,
    next_temp: AtomicU64,
    corrupt_removed: AtomicU64,
    evicted: AtomicU64,
    _lock: File,
}

#[derive(Debug)]
struct Inner {
    index: Index,
    journal: Journal,
    /// Journal records after which the index is rewritten as a snapshot ([`COMPACT_AFTER`]).
    compact_after: u64,
}

impl Inner {
    /// Rewrites the index as a snapshot once the journal is long: hits append a touch each, so
    /// a cache that only serves would otherwise grow its journal without end.
    fn compact_if_long(&mut self) {
        if self.journal.appended() > self.compact_after {
            let order = self.index.lru_order();
            if let Err(e) = self.journal.snapshot(order) {
                tracing::warn!("could not rewrite the index snapshot: {e}");
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileId {
    fn of(meta: &fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }
}

impl DiskStore {
    /// Commits `temp` under `key`, hashing it unless the caller already did (`checksum`).
    fn commit_with(&self, temp: &DiskTemp, key: &Key, checksum: Option<[u8; 32]>) -> Result<Committed, StoreError> {
        let sh = &self.shared;
        let size = temp.file.metadata().map_err(StoreError::io("reading a temporary file"))?.len();
        let checksum = match checksum {
            Some(c) => c,
            None => hash_file(&temp.file, size).map_err(StoreError::io("reading a temporary file"))?,
        };
        let now = now_ns();
        let meta = ObjectMeta { size, checksum, created_ns: now, last_used_ns: now };
        let mut inner = sh.lock();
        let evicted = match inner.index.insert(*key, meta) {
            Ok(evicted) => evicted,
            Err(InsertError::Present(existing)) => {
                return if existing.checksum == checksum && existing.size == size {
                    drop(inner);
                    self.discard(temp);
                    Ok(Committed::AlreadyPresent(existing))
                } else {
                    Err(StoreError::Exists(*key))
                };
            }
            Err(InsertError::TooLarge) => return Err(StoreError::TooLarge { size, limit: inner.index.limit() }),
            Err(InsertError::NoRoom) => return Err(StoreError::NoRoom { needed: size }),
        };
        let mut verified = sh.verified.lock().unwrap_or_else(|p| p.into_inner());
        for (k, _) in &evicted {
            let _ = inner.journal.append(&Record::Remove(*k));
            let _ = fs::remove_file(object_path(&sh.root, k));
            verified.remove(k);
        }
        sh.evicted.fetch_add(evicted.len() as u64, Ordering::Relaxed);
        let dest = object_path(&sh.root, key);
        let placed =
            fs::rename(&temp.path, &dest).map_err(StoreError::io("moving an object into place")).and_then(|()| {
                inner
                    .journal
                    .append(&Record::Commit(*key, meta))
                    .map_err(StoreError::io("recording a commit in the journal"))
            });
        if let Err(e) = placed {
            // Undo, so that nothing half-committed is visible; the caller keeps the temp.
            inner.index.remove(key);
            if dest.exists() {
                let _ = fs::rename(&dest, &temp.path);
            }
            return Err(e);
        }
        if let Ok(m) = fs::metadata(&dest) {
            verified.insert(*key, FileId::of(&m));
        }
        drop(verified);
        inner.compact_if_long();
        Ok(Committed::New { meta, evicted: evicted.into_iter().map(|(k, _)| k).collect() })
    }

    /// Opens or creates the store in `dir` with a size limit, recovering from any crash: leftover
    /// temporary files are deleted, the index is rebuilt from snapshot and journal, files the
    /// index does not vouch for are deleted, and the limit is enforced.
    pub fn open(dir: &Path, limit: u64) -> Result<DiskStore, StoreError> {
        let root = dir.join(LAYOUT_VERSION);
        let objects = root.join("objects");
        fs::create_dir_all(&objects).map_err(StoreError::io("creating the store folder"))?;
        // Owner only, whatever the umask: other users reach objects through the mount (and
        // only with `--allow-other`), never by reading the store. Stores made before this
        // had 0755 folders and 0644 objects; closing the top folder closes them all.
        fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(StoreError::io("making the store folder owner-only"))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("lock"))
            .map_err(StoreError::io("opening the store lock"))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(StoreError::Io {
                context: "locking the store (is another cairn daemon using it?)",
                source: io::Error::last_os_error(),
            });
        }
        let tmp = root.join("tmp");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(StoreError::io("creating the temporary folder"))?;

        let (journal, entries) = Journal::open(&root).map_err(StoreError::io("reading the index"))?;
        let mut on_disk = std::collections::HashSet::new();
        for shard in 0..=255u8 {
            let sdir = objects.join(format!("{shard:02x}"));
            fs::create_dir_all(&sdir).map_err(StoreError::io("creating a shard folder"))?;
            for ent in fs::read_dir(&sdir).map_err(StoreError::io("listing the store"))? {
                let ent = ent.map_err(StoreError::io("listing the store"))?;
                match ent.file_name().to_str().and_then(Key::parse) {
                    Some(k) => {
                        on_disk.insert(k);
                    }
                    None => {
                        let _ = fs::remove_file(ent.path());
                    }
                }
            }
        }
        let mut index = Index::new(limit);
        for (k, m) in entries {
            if on_disk.remove(&k) {
                index.load(k, m);
            }
        }
        // Files with no record: their writer died between rename and journal, or the index was
        // lost. Their checksum is unknown, so they are doubts, and doubts are misses.
        for k in on_disk {
            let _ = fs::remove_file(object_path(&root, &k));
        }
        for (k, _) in index.shrink_to_limit() {
            let _ = fs::remove_file(object_path(&root, &k));
        }
        let mut inner = Inner { index, journal, compact_after: COMPACT_AFTER };
        let order = inner.index.lru_order();
        inner.journal.snapshot(order).map_err(StoreError::io("writing the index snapshot"))?;
        Ok(DiskStore {
            shared: Arc::new(Shared {
                root,
                inner: Mutex::new(inner),
                verified: Mutex::new(HashMap::new()),
                next_temp: AtomicU64::new(0),
                corrupt_removed: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
                _lock: lock,
            }),
        })
    }

    /// Where the bytes of `key` live on disk (for tests and tools that inspect the store).
    pub fn object_path(&self, key: &Key) -> PathBuf {
        object_path(&self.shared.root, key)
    }

    /// The folder of temporary files.
    pub fn temp_dir(&self) -> PathBuf {
        self.shared.root.join("tmp")
    }

    /// Sets how many journal records trigger a snapshot (tests; [`COMPACT_AFTER`] otherwise).
    pub fn set_compact_after(&self, records: u64) {
        self.shared.lock().compact_after = records;
    }
}

fn object_path(root: &Path, key: &Key) -> PathBuf {
    let hex = key.to_hex();
    root.join("objects").join(&hex[..2]).join(hex)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the index consistent (every mutation is a
        // single call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes a corrupt object if the index still holds the same bytes for `key`.
    fn drop_corrupt(&self, key: &Key, checksum: &[u8; 32]) {
        let mut inner = self.lock();
        if inner.index.peek(key).map(|m| &m.checksum) == Some(checksum) {
            inner.index.remove(key);
            let _ = inner.journal.append(&Record::Remove(*key));
            let _ = fs::remove_file(object_path(&self.root, key));
            self.corrupt_removed.fetch_add(1, Ordering::Relaxed);
        }
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    fn unpin(&self, key: &Key) {
        self.lock().index.unpin(key);
    }
}

/// Reads a whole file through `pread` and hashes it.
fn hash_file(file: &File, len: u64) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < len {
        let want = ((len - offset) as usize).min(buf.len());
        let n = file.read_at(&mut buf[..want], offset)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than expected"));
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(*hasher.finalize().as_bytes())
}

/// A committed object open for reading; unpins it on drop.
#[derive(Debug)]
pub struct DiskReader {
    file: File,
    len: u64,
    key: Key,
    shared: Arc<Shared>,
}

impl Drop for DiskReader {
    fn drop(&mut self) {
        self.shared.unpin(&self.key);
    }
}

impl ObjectRead for DiskReader {
    fn read_at(&self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        read_some(&self.file, offset, len)
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

fn read_some(file: &File, offset: u64, len: u32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

/// A temporary file in `tmp/`.
#[derive(Debug)]
pub struct DiskTemp {
    file: File,
    path: PathBuf,
}

impl TempWrite for DiskTemp {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
    fn read_at(&self, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        read_some(&self.file, offset, len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

impl Store for DiskStore {
    type Reader = DiskReader;
    type Temp = DiskTemp;

    fn stat(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        Ok(self.shared.lock().index.peek(key).copied())
    }

    fn list(&self) -> Result<Vec<(Key, ObjectMeta)>, StoreError> {
        Ok(self.shared.lock().index.lru_order())
    }

    fn keys(&self) -> Result<Vec<Key>, StoreError> {
        Ok(self.shared.lock().index.lru_keys())
    }

    fn open(&self, key: &Key) -> Result<Option<DiskReader>, StoreError> {
        let sh = &self.shared;
        let meta = {
            let mut inner = sh.lock();
            let Some(meta) = inner.index.touch(key, now_ns()) else {
                return Ok(None);
            };
            inner.index.pin(key);
            // Losing a touch record only ages the object in LRU order after a crash.
            let _ = inner.journal.append(&Record::Touch(*key, meta.last_used_ns));
            inner.compact_if_long();
            meta
        };
        // From here on the pin is owned by the reader (or released on the error paths).
        let file = match File::open(object_path(&sh.root, key)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Someone deleted the file behind our back: the object is gone.
                sh.drop_corrupt(key, &meta.checksum);
                sh.unpin(key);
                return Ok(None);
            }
            Err(e) => {
                sh.unpin(key);
                return Err(StoreError::Io { context: "opening an object", source: e });
            }
        };
        let reader = DiskReader { file, len: meta.size, key: *key, shared: Arc::clone(sh) };
        let fmeta = reader.file.metadata().map_err(StoreError::io("reading an object's metadata"))?;
        let id = FileId::of(&fmeta);
        let known_good = sh.verified.lock().unwrap_or_else(|p| p.into_inner()).get(key) == Some(&id);
        if !known_good {
            let good = fmeta.len() == meta.size
                && hash_file(&reader.file, meta.size).map(|h| h == meta.checksum).unwrap_or(false);
            if !good {
                drop(reader);
                sh.drop_corrupt(key, &meta.checksum);
                return Err(StoreError::Corrupt(*key));
            }
            sh.verified.lock().unwrap_or_else(|p| p.into_inner()).insert(*key, id);
        }
        Ok(Some(reader))
    }

    fn create_temp(&self) -> Result<DiskTemp, StoreError> {
        let n = self.shared.next_temp.fetch_add(1, Ordering::Relaxed);
        let path = self.temp_dir().join(format!("{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(StoreError::io("creating a temporary file"))?;
        Ok(DiskTemp { file, path })
    }

    fn commit(&self, temp: &DiskTemp, key: &Key) -> Result<Committed, StoreError> {
        self.commit_with(temp, key, None)
    }

    fn commit_hashed(&self, temp: &DiskTemp, key: &Key, checksum: [u8; 32]) -> Result<Committed, StoreError> {
        self.commit_with(temp, key, Some(checksum))
    }
    fn discard(&self, temp: &DiskTemp) {
        let _ = fs::remove_file(&temp.path);
    }

    fn remove(&self, key: &Key) -> Result<bool, StoreError> {
        let sh = &self.shared;
        let mut inner = sh.lock();
        if inner.index.remove(key).is_none() {
            return Ok(false);
        }
        sh.verified.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        inner.journal.append(&Record::Remove(*key)).map_err(StoreError::io("recording a removal"))?;
        match fs::remove_file(object_path(&sh.root, key)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(StoreError::Io { context: "deleting an object", source: e }),
        }
    }

    fn usage(&self) -> Usage {
        let inner = self.shared.lock();
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
        let mut inner = self.shared.lock();
        let exists = inner.index.peek(key).is_some();
        if exists {
            inner.index.pin(key);
        }
        exists
    }

    fn unpin(&self, key: &Key) {
        self.shared.unpin(key);
    }

    fn persist(&self) -> Result<(), StoreError> {
        let mut inner = self.shared.lock();
        let order = inner.index.lru_order();
        inner.journal.snapshot(order).map_err(StoreError::io("writing the index snapshot"))
    }
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;

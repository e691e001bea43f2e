//! The cairn filesystem as plain Rust: namespace, inodes, open handles and the commit protocol.
//!
//! This module must not import `fuser`. The FUSE adapter (`crate::fuse`) translates each kernel
//! request into one call here and the result into one reply; everything testable lives here,
//! and tests drive it against a `MemoryStore` with no mount at all.
//!
//! The namespace is one flat directory. Committed objects are named by their key; writers create
//! `.tmp*` names, write them, and `rename` them onto the key, which is the commit. Temporaries
//! are never listed. See docs/mount.md for the rules and every errno.
//!
//! Files: this one (inodes, handles, lookups, opens, reads, writes, removal); `commit.rs` (the
//! rename that commits, temporaries); `special.rs` (`by-crate/`, `.cairn/`); `entries.rs`
//! (what each object is); `error.rs`, `types.rs` (plain data). The naming rules of the mount
//! (keys, temporaries) are `crate::protocol::names`, shared with the wrapper.

mod commit;
pub mod door;
pub mod entries;
pub mod error;
mod special;
mod types;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::key::Key;
use crate::protocol::names::{self, classify, Name, NAME_RULE};
use crate::store::{now_ns, ObjectMeta, ObjectRead, Store, TempWrite};
pub use error::FsError;
pub use special::{is_special, Sink, BY_CRATE, CAIRN_DIR};
pub use types::{Attr, DirEntry, FsOptions, FsStats, Invalidation, Kind, OpenMode, Opened};

/// Inode number of the mount root.
pub const ROOT_INO: u64 = 1;

enum Node {
    Object(Key),
    Temp(OsString),
}

struct TempEntry<T> {
    ino: u64,
    temp: Arc<T>,
    writers: u32,
    opens: u32,
    /// How many times it was ever opened.
    opened: u32,
    /// Its bytes' BLAKE3, taken by the daemon as it wrote them itself (a socket `PUT`):
    /// given to the store at commit so it need not read them back. Only while nobody else
    /// opened it; any other open or a truncation forgets it.
    sum: Option<[u8; 32]>,
    committing: bool,
    last_active_ns: u64,
}

enum Handle<S: Store> {
    Object(Arc<S::Reader>),
    Temp {
        temp: Arc<S::Temp>,
        name: OsString,
        write: bool,
    },
    Dir(Arc<Listing>),
    /// A generated file's contents, fixed at open.
    Buffer(Arc<Vec<u8>>),
    /// A write-only special file.
    Sink(Sink),
}

/// A directory listing fixed at `opendir`. The root's objects are kept as (inode, key) pairs
/// and named only when a `readdir` asks for them: 100,000 objects cost 4 MB, not 12.
struct Listing {
    head: Vec<DirEntry>,
    objects: Vec<(u64, Key)>,
}

impl Listing {
    fn len(&self) -> usize {
        self.head.len() + self.objects.len()
    }

    fn entry(&self, i: usize) -> DirEntry {
        match self.head.get(i) {
            Some(e) => e.clone(),
            None => {
                let (ino, key) = self.objects[i - self.head.len()];
                DirEntry { ino, kind: Kind::File, name: key.to_hex().into() }
            }
        }
    }
}

struct Names<T> {
    next_ino: u64,
    nodes: HashMap<u64, Node>,
    key_ino: HashMap<Key, u64>,
    temps: HashMap<OsString, TempEntry<T>>,
}

/// The filesystem over a store.
pub struct CacheFs<S: Store> {
    store: Arc<S>,
    opts: FsOptions,
    // std Mutex: every critical section is a few map operations; the slow parts (hashing,
    // reading, writing) run outside it.
    names: Mutex<Names<S::Temp>>,
    released: Condvar,
    handles: Mutex<HashMap<u64, Handle<S>>>,
    next_fh: AtomicU64,
    invalidations: Mutex<Option<Sender<Invalidation>>>,
    stats: Mutex<crate::stats::Stats>,
    entries: Mutex<entries::Entries>,
    view: Mutex<special::View>,
    /// The build sets the wrappers report (src/build_sets.rs); shared with the thread that
    /// fetches a set when its build begins.
    build_sets: Arc<Mutex<crate::build_sets::BuildSets>>,
    /// When the filesystem was made: the folders' times.
    started_ns: u64,
    /// How the daemon is reached, for the stats.
    doors: Mutex<crate::stats::Doors>,
}

impl<S: Store> CacheFs<S> {
    /// A filesystem over `store`.
    pub fn new(store: Arc<S>, opts: FsOptions) -> CacheFs<S> {
        CacheFs {
            store,
            opts,
            names: Mutex::new(Names {
                next_ino: special::FIRST_DYNAMIC_INO,
                nodes: HashMap::new(),
                key_ino: HashMap::new(),
                temps: HashMap::new(),
            }),
            released: Condvar::new(),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            invalidations: Mutex::new(None),
            stats: Mutex::new(crate::stats::Stats { started_unix: now_ns() / 1_000_000_000, ..Default::default() }),
            entries: Mutex::new(entries::Entries::default()),
            view: Mutex::new(special::View::default()),
            build_sets: Arc::default(),
            started_ns: now_ns(),
            doors: Mutex::default(),
        }
    }

    /// Records how the daemon is reached (the mount, the socket, why there is no mount).
    pub fn set_doors(&self, doors: crate::stats::Doors) {
        *self.doors.lock().unwrap_or_else(|p| p.into_inner()) = doors;
    }

    /// The counters, for saving across restarts.
    pub fn stats_snapshot(&self) -> crate::stats::Stats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Restores the "since zero" counters saved by an earlier daemon.
    pub fn restore_stats(&self, saved: crate::stats::Stats) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.since_zero = saved.since_zero;
        s.zeroed_unix = saved.zeroed_unix;
    }

    /// Known entry metadata, for saving across restarts.
    pub fn entries_snapshot(&self) -> Vec<(Key, crate::protocol::object::EntryMeta)> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).snapshot()
    }

    /// Restores saved entry metadata (for objects still in the store).
    pub fn restore_entries(&self, saved: Vec<(Key, crate::protocol::object::EntryMeta)>) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (k, m) in saved {
            // Local only: a key evicted before the restart is not fetched back just to be named.
            if matches!(self.store.stat_local(&k), Ok(Some(_))) {
                e.insert(k, Some(m));
            }
        }
    }

    /// The store below.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Where to send kernel invalidations for objects removed behind the kernel's back
    /// (evictions, corruption).
    pub fn set_invalidation_sink(&self, tx: Sender<Invalidation>) {
        let for_store = tx.clone();
        self.store.set_eviction_sink(Box::new(move |key: &Key| {
            let _ = for_store.send(Invalidation { parent: ROOT_INO, name: OsString::from(key.to_hex()) });
        }));
        *self.invalidations.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    fn names(&self) -> MutexGuard<'_, Names<S::Temp>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handles(&self) -> MutexGuard<'_, HashMap<u64, Handle<S>>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets everything kept about a key that is gone: its inode, its metadata, its link in
    /// `by-crate/`. Without this, those tables only grew.
    fn forget_key(&self, key: &Key) {
        self.names().key_ino.remove(key);
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        self.view().forget(key);
    }

    /// [`forget_key`](Self::forget_key) by the object's name in the mount root.
    pub fn forget_name(&self, name: &OsStr) {
        if let Name::Object(key) = classify(name) {
            self.forget_key(&key);
        }
    }

    fn invalidate(&self, key: &Key) {
        self.forget_key(key);
        if let Some(tx) = self.invalidations.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(Invalidation { parent: ROOT_INO, name: OsString::from(key.to_hex()) });
        }
    }

    fn root_attr(&self) -> Attr {
        Attr {
            ino: ROOT_INO,
            kind: Kind::Dir,
            size: 0,
            blocks: 0,
            atime_ns: self.started_ns,
            mtime_ns: self.started_ns,
            ctime_ns: self.started_ns,
            perm: 0o755,
            nlink: 2,
            uid: self.opts.uid,
            gid: self.opts.gid,
        }
    }

    fn file_attr(&self, ino: u64, size: u64, used_ns: u64, created_ns: u64, perm: u16) -> Attr {
        Attr {
            ino,
            kind: Kind::File,
            size,
            blocks: size.div_ceil(512),
            atime_ns: used_ns,
            mtime_ns: used_ns,
            ctime_ns: created_ns,
            perm,
            nlink: 1,
            uid: self.opts.uid,
            gid: self.opts.gid,
        }
    }

    fn object_attr(&self, ino: u64, meta: &ObjectMeta) -> Attr {
        // 0444: objects are read-only. No `default_permissions`, so the kernel does not check
        // the mode; write opens are refused here with EPERM, and `rm` does not prompt.
        self.file_attr(ino, meta.size, meta.last_used_ns, meta.created_ns, 0o444)
    }

    fn temp_attr(&self, t: &TempEntry<S::Temp>) -> Result<Attr, FsError> {
        Ok(self.file_attr(t.ino, t.temp.size()?, t.last_active_ns, t.last_active_ns, 0o644))
    }

    fn ino_for_key(names: &mut Names<S::Temp>, key: Key) -> u64 {
        if let Some(ino) = names.key_ino.get(&key) {
            return *ino;
        }
        let ino = names.next_ino;
        names.next_ino += 1;
        names.nodes.insert(ino, Node::Object(key));
        names.key_ino.insert(key, ino);
        ino
    }

    /// Whether a temporary named `.tmp.<key>…` exists (the wrapper names its temporaries so).
    fn announced(&self, key: &Key) -> bool {
        let names = self.names();
        if names.temps.is_empty() {
            // The common case on a hit's lookups: nothing being written, nothing to format.
            return false;
        }
        let prefix = names::announces(key);
        names.temps.keys().any(|n| n.as_encoded_bytes().starts_with(prefix.as_bytes()))
    }

    fn check_root(parent: u64) -> Result<(), FsError> {
        if parent == ROOT_INO {
            Ok(())
        } else {
            Err(FsError::NotDir)
        }
    }

    /// Looks a name up in a directory.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr, FsError> {
        if let Some(r) = self.special_lookup(parent, name) {
            return r;
        }
        Self::check_root(parent)?;
        match classify(name) {
            Name::Object(key) => {
                // The kernel looks the target up before every rename. When a temporary here
                // announces this key, that rename is about to commit it: asking S3 first would
                // only add a round trip to every commit.
                let meta = match self.announced(&key) {
                    true => self.store.stat_local(&key)?,
                    false => self.store.stat(&key)?,
                }
                .ok_or(FsError::NotFound)?;
                let ino = Self::ino_for_key(&mut self.names(), key);
                Ok(self.object_attr(ino, &meta))
            }
            Name::Temp(_) => {
                let names = self.names();
                let t = names.temps.get(name).ok_or(FsError::NotFound)?;
                self.temp_attr(t)
            }
            // Tools probe many names (shells, editors); no log line for a lookup.
            Name::Invalid => Err(FsError::NotFound),
        }
    }

    /// Attributes of an inode.
    pub fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        if ino == ROOT_INO {
            return Ok(self.root_attr());
        }
        if let Some(r) = self.special_getattr(ino) {
            return r;
        }
        let names = self.names();
        match names.nodes.get(&ino).ok_or(FsError::NotFound)? {
            Node::Object(key) => {
                let key = *key;
                drop(names);
                let meta = self.store.stat(&key)?.ok_or(FsError::NotFound)?;
                Ok(self.object_attr(ino, &meta))
            }
            Node::Temp(name) => self.temp_attr(names.temps.get(name).ok_or(FsError::NotFound)?),
        }
    }

    /// Changes attributes. Temporaries may be truncated (times and modes are accepted and
    /// ignored, so `cp -p` works); committed objects refuse every change.
    pub fn setattr(&self, ino: u64, size: Option<u64>, other_change: bool) -> Result<Attr, FsError> {
        if let Some(r) = self.special_setattr(ino, size, other_change) {
            return r;
        }
        if ino == ROOT_INO {
            return if size.is_some() || other_change { Err(FsError::Immutable) } else { Ok(self.root_attr()) };
        }
        let mut names = self.names();
        match names.nodes.get(&ino).ok_or(FsError::NotFound)? {
            Node::Object(_) => {
                drop(names);
                if size.is_some() || other_change {
                    return Err(FsError::Immutable);
                }
                self.getattr(ino)
            }
            Node::Temp(name) => {
                let name = name.clone();
                let t = names.temps.get_mut(&name).ok_or(FsError::NotFound)?;
                if t.committing {
                    return Err(FsError::Busy);
                }
                if let Some(len) = size {
                    t.sum = None;
                    t.temp.set_len(len)?;
                }
                self.temp_attr(t)
            }
        }
    }

    /// A snapshot of the root listing for one `opendir`; temporaries are never listed.
    pub fn opendir(&self, ino: u64) -> Result<u64, FsError> {
        if let Some(listing) = self.special_listing(ino) {
            let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
            self.handles().insert(fh, Handle::Dir(Arc::new(Listing { head: listing?, objects: Vec::new() })));
            return Ok(fh);
        }
        if ino != ROOT_INO {
            return Err(FsError::NotDir);
        }
        let head = vec![
            DirEntry { ino: ROOT_INO, kind: Kind::Dir, name: ".".into() },
            DirEntry { ino: ROOT_INO, kind: Kind::Dir, name: "..".into() },
            DirEntry { ino: special::CAIRN_DIR_INO, kind: Kind::Dir, name: CAIRN_DIR.into() },
            DirEntry { ino: special::BY_CRATE_INO, kind: Kind::Dir, name: BY_CRATE.into() },
        ];
        let keys = self.store.keys()?;
        let mut objects = Vec::with_capacity(keys.len());
        {
            let mut names = self.names();
            for key in keys {
                objects.push((Self::ino_for_key(&mut names, key), key));
            }
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, Handle::Dir(Arc::new(Listing { head, objects })));
        Ok(fh)
    }

    /// Entries of an open directory from position `offset` on.
    pub fn readdir(&self, fh: u64, offset: u64, max: usize) -> Result<Vec<(u64, DirEntry)>, FsError> {
        let listing = match self.handles().get(&fh) {
            Some(Handle::Dir(l)) => Arc::clone(l),
            _ => return Err(FsError::BadHandle),
        };
        let end = listing.len().min((offset as usize).saturating_add(max));
        Ok((offset as usize..end).map(|i| (i as u64 + 1, listing.entry(i))).collect())
    }

    /// Creates a temporary (the only kind of file that can be created) and opens it.
    pub fn create(&self, parent: u64, name: &OsStr, mode: OpenMode) -> Result<(Attr, Opened), FsError> {
        if let Some(e) = self.special_parent(parent, "creating a file") {
            return Err(e);
        }
        Self::check_root(parent)?;
        match classify(name) {
            Name::Temp(_) => {}
            Name::Object(_) => {
                tracing::warn!(name = ?name, "refused to create an object directly: {NAME_RULE}");
                return Err(FsError::InvalidName);
            }
            Name::Invalid => {
                tracing::warn!(name = ?name, "refused a bad name: {NAME_RULE}");
                return Err(FsError::InvalidName);
            }
        }
        let mut names = self.names();
        if names.temps.contains_key(name) {
            drop(names);
            if mode.exclusive {
                return Err(FsError::Exists);
            }
            let ino = self.lookup(parent, name)?.ino;
            let opened = self.open(ino, mode)?;
            return Ok((self.getattr(ino)?, opened));
        }
        let temp = Arc::new(self.store.create_temp()?);
        let ino = names.next_ino;
        names.next_ino += 1;
        names.nodes.insert(ino, Node::Temp(name.to_owned()));
        names.temps.insert(
            name.to_owned(),
            TempEntry {
                ino,
                temp,
                writers: 0,
                opens: 0,
                opened: 0,
                sum: None,
                committing: false,
                last_active_ns: now_ns(),
            },
        );
        drop(names);
        let opened = self.open(ino, OpenMode { write: true, ..mode })?;
        Ok((self.getattr(ino)?, opened))
    }

    /// Opens a file. Objects open read-only, after their checksum is checked; temporaries open
    /// as asked.
    pub fn open(&self, ino: u64, mode: OpenMode) -> Result<Opened, FsError> {
        if let Some(r) = self.special_open(ino, mode) {
            return r;
        }
        let mut names = self.names();
        let handle = match names.nodes.get(&ino).ok_or(FsError::NotFound)? {
            Node::Object(key) => {
                let key = *key;
                drop(names);
                if mode.write || mode.truncate || mode.append {
                    tracing::debug!(%key, "refused a write open of a committed object");
                    return Err(FsError::Immutable);
                }
                let reader = match self.store.open(&key) {
                    Ok(Some(r)) => r,
                    Ok(None) => return Err(FsError::NotFound),
                    Err(e) => {
                        let err = FsError::from(e);
                        if matches!(err, FsError::Corrupt) {
                            tracing::warn!(%key, "object failed its checksum; removed it and returned EIO");
                            self.invalidate(&key);
                        }
                        return Err(err);
                    }
                };
                Handle::Object(Arc::new(reader))
            }
            Node::Temp(name) => {
                let name = name.clone();
                let t = names.temps.get_mut(&name).ok_or(FsError::NotFound)?;
                // A truncating open changes the bytes as surely as a write does.
                if t.committing && (mode.write || mode.truncate) {
                    return Err(FsError::Busy);
                }
                if mode.truncate {
                    t.temp.set_len(0)?;
                }
                t.opens += 1;
                t.opened += 1;
                t.sum = None;
                if mode.write {
                    t.writers += 1;
                }
                t.last_active_ns = now_ns();
                Handle::Temp { temp: Arc::clone(&t.temp), name, write: mode.write }
            }
        };
        let (backing, keep_cache) = match &handle {
            Handle::Object(r) => {
                let r: &S::Reader = r;
                (self.backing(r.file()), true)
            }
            Handle::Temp { temp, .. } => {
                let t: &S::Temp = temp;
                (self.backing(t.file()), false)
            }
            Handle::Dir(_) | Handle::Buffer(_) | Handle::Sink(_) => (None, false),
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, handle);
        Ok(Opened { fh, backing, keep_cache, direct_io: false })
    }

    fn backing(&self, file: Option<&File>) -> Option<File> {
        if !self.opts.want_backing {
            return None;
        }
        file.and_then(|f| f.try_clone().ok())
    }

    /// Reads from an open file.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        let reader: Arc<S::Reader> = match self.handles().get(&fh) {
            Some(Handle::Object(r)) => Arc::clone(r),
            Some(Handle::Temp { temp, .. }) => return Ok(temp.read_at(offset, size)?),
            Some(Handle::Buffer(b)) => {
                let start = (offset as usize).min(b.len());
                let end = start.saturating_add(size as usize).min(b.len());
                return Ok(b[start..end].to_vec());
            }
            Some(Handle::Sink(_)) => return Err(FsError::WrongMode),
            _ => return Err(FsError::BadHandle),
        };
        Ok(reader.read_at(offset, size)?)
    }

    /// Writes to an open temporary.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let temp = match self.handles().get(&fh) {
            Some(Handle::Temp { temp, write: true, .. }) => Arc::clone(temp),
            Some(Handle::Sink(sink)) => {
                let sink = *sink;
                return self.sink_write(sink, data);
            }
            Some(Handle::Object(_)) => return Err(FsError::Immutable),
            Some(_) => return Err(FsError::WrongMode),
            None => return Err(FsError::BadHandle),
        };
        temp.write_at(offset, data)?;
        Ok(data.len() as u32)
    }

    /// Closes a directory handle (the kernel's RELEASEDIR); returns how many entries its
    /// listing held, so the caller can hand a large one's memory back to the system.
    pub fn release_dir(&self, fh: u64) -> usize {
        match self.handles().remove(&fh) {
            Some(Handle::Dir(listing)) => listing.len(),
            _ => 0,
        }
    }

    /// Closes a handle (the kernel's RELEASE).
    pub fn release(&self, fh: u64) {
        let Some(handle) = self.handles().remove(&fh) else {
            return;
        };
        if let Handle::Temp { name, write, .. } = handle {
            let mut names = self.names();
            if let Some(t) = names.temps.get_mut(&name) {
                t.opens = t.opens.saturating_sub(1);
                if write {
                    t.writers = t.writers.saturating_sub(1);
                }
                t.last_active_ns = now_ns();
            }
            drop(names);
            self.released.notify_all();
        }
    }

    /// Removes an object (from the store, so from every tier) or a temporary.
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        if let Some(e) = self.special_parent(parent, "rm") {
            return Err(e);
        }
        Self::check_root(parent)?;
        match classify(name) {
            Name::Object(key) => {
                if !self.store.remove(&key)? {
                    return Err(FsError::NotFound);
                }
                tracing::info!(%key, "removed object");
                self.forget_key(&key);
                Ok(())
            }
            Name::Temp(_) => {
                let mut names = self.names();
                match names.temps.get(name) {
                    None => return Err(FsError::NotFound),
                    // Its rename onto a key is at work on the store, without the names lock:
                    // removing it now would take it from under the commit. The commit ends
                    // soon, and takes the name with it (or, if it fails, leaves it to remove).
                    Some(t) if t.committing => return Err(FsError::Busy),
                    Some(_) => {}
                }
                let t = names.temps.remove(name).expect("found above, under the same lock");
                names.nodes.remove(&t.ino);
                drop(names);
                self.store.discard(&t.temp);
                Ok(())
            }
            Name::Invalid => Err(FsError::NotFound),
        }
    }

    /// Removing a folder: the special folders are read-only; there are no others.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> FsError {
        if parent == ROOT_INO && [CAIRN_DIR, BY_CRATE].iter().any(|n| name == *n) {
            return self.special_parent(special::BY_CRATE_INO, "rmdir").unwrap_or(FsError::ReadOnly);
        }
        if let Some(e) = self.special_parent(parent, "rmdir") {
            return e;
        }
        self.refuse("rmdir", name)
    }

    /// Whether the user `caller` may change the cache: commit, remove, rename or truncate, or
    /// open `ino` for writing. Other users reach the mount only under `--allow-other`; they
    /// may read every object and report their compiles (`.cairn/report`), and nothing else: an
    /// object one of them could write is code the owner's next build would run.
    pub fn may_change(&self, caller: u32, ino: Option<u64>) -> Result<(), FsError> {
        if caller == self.opts.uid || caller == 0 || ino == Some(special::REPORT_INO) {
            return Ok(());
        }
        tracing::debug!(caller, "refused a change by another user");
        Err(FsError::Denied)
    }

    /// Namespace operations that have no place in a flat cache of files: directories, links,
    /// device nodes.
    pub fn refuse(&self, what: &str, name: &OsStr) -> FsError {
        tracing::warn!(?name, "refused {what}: {NAME_RULE}");
        FsError::InvalidName
    }

    /// Numbers for `df`: the limit is the size, committed bytes are used.
    pub fn statfs(&self) -> FsStats {
        let u = self.store.usage();
        let bs = 4096u64;
        let blocks = u.limit / bs;
        let used = u.used.div_ceil(bs);
        FsStats { block_size: bs as u32, blocks, blocks_free: blocks.saturating_sub(used), files: u.objects }
    }
}

#[cfg(test)]
mod tests;

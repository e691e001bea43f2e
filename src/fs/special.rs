//! The mount's special folders: `.cairn/` (stats and the wrapper's report sink) and `by-crate/`
//! (each crate's entries, as symlinks to the objects).
//!
//! - `.cairn/stats.json` — the `cairn stats --json` document, rendered at each open.
//! - `.cairn/report` — write-only; the wrapper appends one line per compile (stats.rs).
//! - `.cairn/control` — write-only; `zero` starts the "since zero" counters over.
//! - `by-crate/<crate>/<key>` — a symlink to `../../<key>`. The view is read-only: removing
//!   through it gives `EROFS`, because deleting the *target* of a symlink by unlinking the link
//!   would surprise anyone who knows symlinks. `cairn evict --crate NAME` removes a crate's
//!   entries; `rm <mnt>/<key>` removes one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::sync::Arc;

use super::{Attr, CacheFs, DirEntry, FsError, Handle, Kind, OpenMode, Opened, ROOT_INO};
use crate::key::Key;
use crate::protocol::object::EntryMeta;
use crate::stats::Event;
use crate::store::{now_ns, ObjectRead, Store, TempWrite};

pub const CAIRN_DIR_INO: u64 = 2;
pub const STATS_INO: u64 = 3;
pub const REPORT_INO: u64 = 4;
pub const CONTROL_INO: u64 = 5;
pub const BY_CRATE_INO: u64 = 6;
/// `.cairn/socket`: the path of the daemon's socket, so a client that knows only the mount
/// (the wrapper, for what the mount cannot carry: seeding, remote execution) finds it.
pub const SOCKET_INO: u64 = 7;
/// First inode number of the objects and temporaries.
pub const FIRST_DYNAMIC_INO: u64 = 16;
/// Crate folders and links get inode numbers from here on, far above any object's.
const FIRST_VIEW_INO: u64 = 1 << 60;

/// Names in the root that are not objects.
pub const CAIRN_DIR: &str = ".cairn";
pub const BY_CRATE: &str = "by-crate";

/// A write-only special file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Report,
    Control,
}

#[derive(Debug, Clone)]
enum ViewNode {
    CrateDir(String),
    Link(Key),
}

/// Inode numbers of the `by-crate/` view.
#[derive(Debug, Default)]
pub struct View {
    next: u64,
    nodes: HashMap<u64, ViewNode>,
    crates: HashMap<String, u64>,
    links: HashMap<Key, u64>,
}

impl View {
    fn alloc(&mut self, node: ViewNode) -> u64 {
        let ino = FIRST_VIEW_INO + self.next;
        self.next += 1;
        self.nodes.insert(ino, node);
        ino
    }
    fn crate_ino(&mut self, name: &str) -> u64 {
        if let Some(i) = self.crates.get(name) {
            return *i;
        }
        let i = self.alloc(ViewNode::CrateDir(name.to_string()));
        self.crates.insert(name.to_string(), i);
        i
    }
    /// Drops the link of a key that is gone, so the view holds only what exists.
    pub(super) fn forget(&mut self, key: &Key) {
        if let Some(ino) = self.links.remove(key) {
            self.nodes.remove(&ino);
        }
    }
    /// How many inodes the view holds (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }
    fn link_ino(&mut self, key: Key) -> u64 {
        if let Some(i) = self.links.get(&key) {
            return *i;
        }
        let i = self.alloc(ViewNode::Link(key));
        self.links.insert(key, i);
        i
    }
}

/// Whether an inode is one of the special nodes (not an object or temporary).
pub fn is_special(ino: u64) -> bool {
    (CAIRN_DIR_INO..=SOCKET_INO).contains(&ino) || ino >= FIRST_VIEW_INO
}

fn link_target(key: &Key) -> String {
    format!("../../{}", key.to_hex())
}

impl<S: Store> CacheFs<S> {
    /// The view's inode table; a poisoned lock is still consistent (each change is one call).
    pub(super) fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir_attr(&self, ino: u64, perm: u16) -> Attr {
        Attr { ino, kind: Kind::Dir, perm, nlink: 2, ..self.root_attr() }
    }

    fn special_file_attr(&self, ino: u64, size: u64, perm: u16) -> Attr {
        let now = now_ns();
        Attr { kind: Kind::File, size, blocks: 0, perm, ..self.file_attr(ino, size, now, now, perm) }
    }

    fn link_attr(&self, ino: u64, key: &Key) -> Attr {
        let len = link_target(key).len() as u64;
        Attr { kind: Kind::Symlink, size: len, blocks: 0, perm: 0o777, ..self.file_attr(ino, len, 0, 0, 0o777) }
    }

    /// The socket's path and a newline ("" before the daemon binds it).
    pub fn socket_text(&self) -> String {
        let doors = self.doors.lock().unwrap_or_else(|p| p.into_inner());
        doors.socket.as_ref().map(|s| format!("{s}\n")).unwrap_or_default()
    }

    /// The stats document as it stands.
    pub fn stats_json(&self) -> String {
        let u = self.store.usage();
        let g = crate::stats::Gauges {
            used: u.used,
            limit: u.limit,
            objects: u.objects,
            evicted: u.evicted,
            corrupt_removed: u.corrupt_removed,
            uploads_pending: u.uploads_pending,
            uploads_failed: u.uploads_failed,
            uploads_skipped: u.uploads_skipped,
            unsigned_refused: u.unsigned_refused,
            s3_read_only: u.remote_read_only,
            fetched: u.fetched,
            prefetched: u.prefetched,
            s3_configured: u.remote,
            s3_problem: self.store.remote_problem(),
            doors: self.doors.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).to_json(&g)
    }

    /// The metadata of a result object, reading its header on first need.
    pub fn entry_meta(&self, key: &Key) -> Option<EntryMeta> {
        if let Some(known) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return known.clone();
        }
        let reader = self.store.open(key).ok()??;
        let meta = super::entries::read_meta(|off, len| crate::store::ObjectRead::read_at(&reader, off, len));
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(*key, meta.clone());
        meta
    }

    /// Crate name → keys of its entries, over every object in the store. A name from an
    /// object's header becomes a directory name, so only crate names are listed (`..`, `a/b`
    /// or an empty name written by anyone who can commit an object are not: those entries
    /// stay in the mount root only).
    fn by_crate(&self) -> Result<BTreeMap<String, BTreeSet<Key>>, FsError> {
        let mut out: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
        for (key, _) in self.store.list()? {
            if let Some(m) = self.entry_meta(&key).filter(|m| crate::admin::is_crate_name(&m.crate_name)) {
                out.entry(m.crate_name).or_default().insert(key);
            }
        }
        Ok(out)
    }

    pub(super) fn special_lookup(&self, parent: u64, name: &OsStr) -> Option<Result<Attr, FsError>> {
        let text = name.to_str().unwrap_or("");
        match parent {
            ROOT_INO if text == CAIRN_DIR => Some(Ok(self.dir_attr(CAIRN_DIR_INO, 0o755))),
            ROOT_INO if text == BY_CRATE => Some(Ok(self.dir_attr(BY_CRATE_INO, 0o555))),
            ROOT_INO => None,
            CAIRN_DIR_INO => Some(match text {
                "stats.json" => Ok(self.special_file_attr(STATS_INO, self.stats_json().len() as u64, 0o444)),
                "report" => Ok(self.special_file_attr(REPORT_INO, 0, 0o622)),
                "control" => Ok(self.special_file_attr(CONTROL_INO, 0, 0o600)),
                "socket" => Ok(self.special_file_attr(SOCKET_INO, self.socket_text().len() as u64, 0o444)),
                _ => Err(FsError::NotFound),
            }),
            BY_CRATE_INO => Some(match self.by_crate() {
                Ok(map) if map.contains_key(text) => {
                    let ino = self.view().crate_ino(text);
                    Ok(self.dir_attr(ino, 0o555))
                }
                Ok(_) => Err(FsError::NotFound),
                Err(e) => Err(e),
            }),
            ino if ino >= FIRST_VIEW_INO => {
                let node = self.view().nodes.get(&ino).cloned();
                Some(match (node, crate::key::Key::parse(text)) {
                    (Some(ViewNode::CrateDir(c)), Some(key)) => match (self.store.stat(&key), self.entry_meta(&key)) {
                        (Ok(Some(_)), Some(m)) if m.crate_name == c => {
                            let ino = self.view().link_ino(key);
                            Ok(self.link_attr(ino, &key))
                        }
                        _ => Err(FsError::NotFound),
                    },
                    (Some(ViewNode::CrateDir(_)), None) => Err(FsError::NotFound),
                    _ => Err(FsError::NotDir),
                })
            }
            _ => None,
        }
    }

    pub(super) fn special_getattr(&self, ino: u64) -> Option<Result<Attr, FsError>> {
        match ino {
            CAIRN_DIR_INO => Some(Ok(self.dir_attr(ino, 0o755))),
            BY_CRATE_INO => Some(Ok(self.dir_attr(ino, 0o555))),
            STATS_INO => Some(Ok(self.special_file_attr(ino, self.stats_json().len() as u64, 0o444))),
            REPORT_INO => Some(Ok(self.special_file_attr(ino, 0, 0o622))),
            CONTROL_INO => Some(Ok(self.special_file_attr(ino, 0, 0o600))),
            SOCKET_INO => Some(Ok(self.special_file_attr(ino, self.socket_text().len() as u64, 0o444))),
            ino if ino >= FIRST_VIEW_INO => Some(match self.view().nodes.get(&ino).cloned() {
                Some(ViewNode::CrateDir(_)) => Ok(self.dir_attr(ino, 0o555)),
                Some(ViewNode::Link(key)) => Ok(self.link_attr(ino, &key)),
                None => Err(FsError::NotFound),
            }),
            _ => None,
        }
    }

    /// Shell redirections truncate before writing; the sinks accept that and nothing else.
    pub(super) fn special_setattr(&self, ino: u64, size: Option<u64>, other: bool) -> Option<Result<Attr, FsError>> {
        if !is_special(ino) {
            return None;
        }
        Some(match ino {
            REPORT_INO | CONTROL_INO if !other && size.is_none_or(|s| s == 0) => self.special_getattr(ino)?,
            _ if size.is_none() && !other => self.special_getattr(ino)?,
            _ => Err(FsError::ReadOnly),
        })
    }

    pub(super) fn special_listing(&self, ino: u64) -> Option<Result<Vec<DirEntry>, FsError>> {
        let dot = |ino: u64| DirEntry { ino, kind: Kind::Dir, name: ".".into() };
        let dotdot = |ino: u64| DirEntry { ino, kind: Kind::Dir, name: "..".into() };
        match ino {
            CAIRN_DIR_INO => Some(Ok(vec![
                dot(CAIRN_DIR_INO),
                dotdot(ROOT_INO),
                DirEntry { ino: STATS_INO, kind: Kind::File, name: "stats.json".into() },
                DirEntry { ino: REPORT_INO, kind: Kind::File, name: "report".into() },
                DirEntry { ino: CONTROL_INO, kind: Kind::File, name: "control".into() },
                DirEntry { ino: SOCKET_INO, kind: Kind::File, name: "socket".into() },
            ])),
            BY_CRATE_INO => Some(self.by_crate().map(|map| {
                let mut v = vec![dot(BY_CRATE_INO), dotdot(ROOT_INO)];
                let mut view = self.view();
                for c in map.keys() {
                    v.push(DirEntry { ino: view.crate_ino(c), kind: Kind::Dir, name: OsString::from(c) });
                }
                v
            })),
            ino if ino >= FIRST_VIEW_INO => {
                let node = self.view().nodes.get(&ino).cloned();
                Some(match node {
                    Some(ViewNode::CrateDir(c)) => self.by_crate().map(|map| {
                        let mut v = vec![dot(ino), dotdot(BY_CRATE_INO)];
                        let mut view = self.view();
                        for key in map.get(&c).into_iter().flatten() {
                            v.push(DirEntry {
                                ino: view.link_ino(*key),
                                kind: Kind::Symlink,
                                name: key.to_hex().into(),
                            });
                        }
                        v
                    }),
                    _ => Err(FsError::NotDir),
                })
            }
            _ => None,
        }
    }

    pub(super) fn special_open(&self, ino: u64, mode: OpenMode) -> Option<Result<Opened, FsError>> {
        let handle = match ino {
            STATS_INO if !mode.write => Handle::Buffer(Arc::new(self.stats_json().into_bytes())),
            SOCKET_INO if !mode.write => Handle::Buffer(Arc::new(self.socket_text().into_bytes())),
            REPORT_INO if mode.write => Handle::Sink(Sink::Report),
            CONTROL_INO if mode.write => Handle::Sink(Sink::Control),
            STATS_INO | REPORT_INO | CONTROL_INO => return Some(Err(FsError::WrongMode)),
            ino if is_special(ino) => return Some(Err(FsError::WrongMode)),
            _ => return None,
        };
        let fh = self.next_fh.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.handles().insert(fh, handle);
        Some(Ok(Opened { fh, backing: None, keep_cache: false, direct_io: true }))
    }

    /// Takes what was written into a sink.
    pub(super) fn sink_write(&self, sink: Sink, data: &[u8]) -> Result<u32, FsError> {
        let text = String::from_utf8_lossy(data);
        match sink {
            Sink::Report => {
                let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    match Event::parse(line) {
                        Ok(Event::Begin(set)) => self.build_begins(set),
                        Ok(Event::Used(set, keys)) => self.build_used(set, &keys),
                        Ok(e) => stats.apply(&e),
                        Err(e) => tracing::debug!("ignored a report: {e}"),
                    }
                }
            }
            Sink::Control => match text.trim() {
                "zero" => {
                    self.stats.lock().unwrap_or_else(|p| p.into_inner()).zero(now_ns() / 1_000_000_000);
                    tracing::info!("statistics zeroed");
                }
                other => {
                    tracing::warn!(command = other, "unknown control command; the only one is \"zero\"");
                    return Err(FsError::InvalidName);
                }
            },
        }
        Ok(data.len() as u32)
    }

    fn build_sets(&self) -> std::sync::MutexGuard<'_, crate::build_sets::BuildSets> {
        self.build_sets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A build of `set` begins: with a remote tier, fetch the set's keys in the background and
    /// queue them all for prefetch (src/build_sets.rs).
    fn build_begins(&self, set: crate::key::Key) {
        if !self.store.usage().remote || !self.build_sets().begin(set, std::time::Instant::now()) {
            return;
        }
        let (store, sets) = (Arc::clone(&self.store), Arc::clone(&self.build_sets));
        let spawned = std::thread::Builder::new().name("build-set".into()).spawn(move || {
            let Ok(Some(reader)) = store.open(&set) else { return };
            let Ok(bytes) = reader.read_at(0, reader.len().min(64 << 20) as u32) else { return };
            drop(reader);
            if let Ok(bs) = crate::protocol::object::BuildSet::decode(&bytes) {
                tracing::debug!(%set, keys = bs.keys.len(), "a build begins: prefetching its set");
                store.prefetch(bs.keys.clone());
                sets.lock().unwrap_or_else(|p| p.into_inner()).previous(set, &bs);
            }
        });
        if let Err(e) = spawned {
            tracing::debug!("could not start a build-set fetch: {e}");
        }
    }

    fn build_used(&self, set: crate::key::Key, keys: &[crate::key::Key]) {
        if self.store.usage().remote {
            self.build_sets().used(set, keys);
        }
    }

    /// Stores the build sets that have new keys, each as an object under its set's key (and so
    /// in the bucket). Called with the periodic state save and at unmount.
    pub fn save_build_sets(&self) {
        let u = self.store.usage();
        if !u.remote || u.remote_read_only {
            return;
        }
        let dirty = self.build_sets().take_dirty();
        for (set, bs) in dirty {
            // Dirty means new keys: the stored set differs. (Reading it back to compare would,
            // through the tiered store, fetch it from the bucket during every save.)
            let bytes = bs.encode();
            let _ = self.store.remove(&set);
            let written = self.store.create_temp().and_then(|t| {
                t.write_at(0, &bytes).map_err(crate::store::StoreError::io("writing a build set"))?;
                self.store.commit(&t, &set).inspect_err(|_| self.store.discard(&t))
            });
            match written {
                Ok(_) => tracing::debug!(%set, keys = bs.keys.len(), "build set stored"),
                Err(e) => tracing::debug!(%set, "could not store a build set: {e}"),
            }
        }
    }

    /// The target of a `by-crate/` link.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        match self.view().nodes.get(&ino) {
            Some(ViewNode::Link(key)) => Ok(link_target(key).into_bytes()),
            _ => Err(FsError::InvalidName),
        }
    }

    /// One extended attribute. Only `user.cairn.*` names are computed: `ls -l` asks every
    /// file for `security.selinux` and ACLs, and must not make the daemon open (and check)
    /// every object for that.
    pub fn xattr(&self, ino: u64, name: &OsStr) -> Result<Option<Vec<u8>>, FsError> {
        if !name.to_str().is_some_and(|n| n.starts_with("user.cairn.")) {
            return Ok(None);
        }
        Ok(self.xattrs(ino)?.into_iter().find(|(n, _)| name == n.as_str()).map(|(_, v)| v))
    }

    /// The `user.cairn.*` attributes of an object (empty for anything else).
    pub fn xattrs(&self, ino: u64) -> Result<Vec<(String, Vec<u8>)>, FsError> {
        let key = match self.names().nodes.get(&ino) {
            Some(super::Node::Object(k)) => *k,
            _ => return Ok(Vec::new()),
        };
        let obj = self.store.stat(&key)?.ok_or(FsError::NotFound)?;
        Ok(super::entries::xattrs(self.entry_meta(&key).as_ref(), &obj))
    }

    /// Removing or renaming inside the special folders.
    pub(super) fn special_parent(&self, parent: u64, what: &str) -> Option<FsError> {
        if !is_special(parent) {
            return None;
        }
        tracing::warn!(
            "refused {what} in a read-only cairn folder: remove an entry with `rm <mnt>/<key>`, \
             or all of a crate's entries with `cairn evict --crate NAME`"
        );
        Some(FsError::ReadOnly)
    }
}

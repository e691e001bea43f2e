//! The daemon's half of target-dir seeding (engine/seed has the wrapper's; docs/seeding.md):
//! each registry or git unit of a marked target dir reports itself once its compile (or
//! script run) succeeded; the daemon copies it into a unit object once cargo has written its
//! fingerprint, and keeps the target dir's set.
//!
//! A report comes with a descriptor of the target dir (`CAPTURE`, `protocol::seed::Capture`),
//! so the daemon reads the very folder the compile saw, in a container too, through
//! `/proc/self/fd`. Cargo writes a unit's fingerprint only after the wrapper returns (and
//! starts dependents earlier than that: pipelining), so the copy waits for a fingerprint
//! written after the report: an inotify watch on the unit's fingerprint folder wakes it the
//! moment cargo closes the fingerprint's `.json` (the last file it writes), and it looks
//! again every 10 ms besides, for at most a minute. Copies run on one background thread, so
//! no compile waits for one. Copying is checked: a file that
//! changes while it is read (a rebuild, `cargo clean`), a symbolic link, or a fingerprint
//! never completed leaves the unit out.
//!
//! The set is written when the copies of a target dir are done (at most once a second), at
//! once when a probe asks for it (`SEED`), so a build right after another finds all of it,
//! and at the daemon's stop, before uploads drain. Only the owner and root may report (a set
//! is trusted by every later build); anyone allowed to read may ask for a set.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::engine::basedir::Rel;
use crate::fs::door::Content;
use crate::fs::{CacheFs, FsError};
use crate::key::Key;
use crate::protocol::frontends;
use crate::protocol::object::{read_result_files, result_files, FileAt};
use crate::protocol::seed::{encode_unit, Capture, Marker, Reference, SeedSet, SetEntry, Stored, UnitFile};
use crate::store::Store;

/// How often a copy looks again for a fingerprint cargo has not written yet, besides the
/// watch's wake-up, and for how long. The watch is what a build removed at once needs (`cargo
/// build -p some-dependency && rm -rf target`: its last unit's fingerprint exists only for
/// the milliseconds between cargo writing it and the folder going); looking again catches a
/// folder the watch could not be put on. At 50 ms, before the watch, such a build lost its
/// last two units from the set (seen in CI, 2026-12-07). A look is one `stat` per unit waiting.
const POLL: Duration = Duration::from_millis(10);

/// [`POLL`], or `CAIRN_SEED_POLL_MS` from the daemon's environment: a test widens it to show
/// that a copy does not wait for the next look (fuse-tests/seed.rs).
fn poll() -> Duration {
    static P: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *P.get_or_init(|| {
        std::env::var("CAIRN_SEED_POLL_MS").ok().and_then(|v| v.parse().ok()).map_or(POLL, Duration::from_millis)
    })
}
const GIVE_UP: Duration = Duration::from_secs(60);
/// How much earlier than the report a fingerprint may look written (file times are coarse).
const SLACK: Duration = Duration::from_millis(20);
/// How long a probe (or the daemon's stop) waits for the copies of a target dir: at most
/// `SETTLE`, and not past `STALL` without a copy ending.
const SETTLE: Duration = Duration::from_secs(60);
const STALL: Duration = Duration::from_secs(3);
/// How long a workspace compile's end waits for the copies (`SETTLE`): the units reported
/// have finished, so only cargo's writing their fingerprints is awaited; a unit whose
/// fingerprint never comes (cargo killed) costs this once.
const END_SETTLE: Duration = Duration::from_secs(1);

/// One target dir (and one marker: a new probe answer starts a new set).
struct Target {
    dir: OwnedFd,
    marker: Marker,
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    /// Units reported, by hash.
    units: HashMap<String, Capture>,
    /// Registry and git units copied, by hash.
    captured: BTreeMap<String, SetEntry>,
    /// Workspace units' variants copied, oldest first ([`State::keep`]).
    own: Vec<SetEntry>,
    /// Hashes waiting for their fingerprint or being copied.
    pending: HashSet<String>,
    dirty: bool,
    flushed: Option<Instant>,
    /// The last report.
    active: Option<Instant>,
    /// When the last copy ended (taken or left out).
    progress: Option<Instant>,
}

/// How many variants of one workspace unit a set keeps (by its sources and what it was built
/// on): checkouts and branches that share a lockfile but differ in a package's files each
/// find theirs.
const VARIANTS: usize = 4;

impl State {
    /// Puts a copied unit in the set: a registry or git unit replaces the one of its hash; a
    /// workspace unit replaces the one of its hash built from the same sources on the same
    /// files, bound to the same roots, with the same stamp and cargo fingerprint (a
    /// build-script run that cargo judges by its package's newest file time, and what is
    /// built on it: each checkout keeps its own), and
    /// the oldest of its variants goes once there are more than [`VARIANTS`].
    fn keep(&mut self, e: SetEntry) {
        if !e.is_own() {
            if let Some((_, h)) = e.unit.rsplit_once('-') {
                self.captured.insert(h.to_string(), e);
            }
            return;
        }
        let same = |o: &SetEntry| {
            o.unit == e.unit
                && o.sources == e.sources
                && o.externs == e.externs
                && o.bound == e.bound
                && o.stamp == e.stamp
                && o.fingerprint == e.fingerprint
        };
        self.own.retain(|o| !same(o));
        let variants = self.own.iter().filter(|o| o.unit == e.unit).count();
        if variants >= VARIANTS {
            let oldest = self.own.iter().position(|o| o.unit == e.unit).expect("counted above");
            self.own.remove(oldest);
        }
        self.own.push(e);
    }

    /// The set's entries: registry and git units, then workspace units' variants oldest
    /// first (the order [`keep`](Self::keep) reads back).
    fn entries(&self) -> Vec<SetEntry> {
        self.captured.values().chain(&self.own).cloned().collect()
    }
}

/// A target dir with nothing to do for this long is forgotten (its descriptor closed); its
/// set stays in the cache, and a later report starts from it again.
const IDLE: Duration = Duration::from_secs(600);

/// A copy to make: the target dir, the unit's hash, the earliest its fingerprint may be
/// dated, when it was reported, the watch on its fingerprint folder.
struct Job {
    target: Arc<Target>,
    hash: String,
    not_before: SystemTime,
    reported: Instant,
    watch: Option<WatchDescriptor>,
}

/// What the copying thread is told: a unit to copy, or that a watched fingerprint folder got
/// its `.json`.
enum Msg {
    Job(Job),
    Wake(WatchDescriptor),
}

/// The seeder: target dirs by (device, inode, set key), the copying thread's queue, and the
/// inotify instance that watches the fingerprint folders of units waiting for cargo.
pub struct Seeder<S: Store> {
    fs: Arc<CacheFs<S>>,
    targets: Mutex<HashMap<(u64, u64, Key), Arc<Target>>>,
    queue: Mutex<Option<Sender<Msg>>>,
    owner: u32,
    inotify: Option<Inotify>,
    /// How often a copy waiting for its fingerprint looks again ([`poll`]).
    poll: Duration,
}

impl<S: Store + 'static> Seeder<S> {
    /// Starts the copying thread.
    pub fn start(fs: Arc<CacheFs<S>>) -> io::Result<Arc<Seeder<S>>> {
        Self::start_polling(fs, poll())
    }

    /// [`start`](Self::start), looking again for a fingerprint every `poll` besides the
    /// watch's wake-ups.
    fn start_polling(fs: Arc<CacheFs<S>>, poll: Duration) -> io::Result<Arc<Seeder<S>>> {
        let (tx, rx) = mpsc::channel();
        // SAFETY: geteuid cannot fail.
        let owner = unsafe { libc::geteuid() };
        // Without inotify (its limits reached), copies only look again every `poll`.
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC)
            .inspect_err(|e| {
                tracing::warn!("no inotify for seeding ({e}): copies look for fingerprints every {poll:?}")
            })
            .ok();
        let s = Arc::new(Seeder {
            fs,
            targets: Mutex::new(HashMap::new()),
            queue: Mutex::new(Some(tx)),
            owner,
            inotify,
            poll,
        });
        let worker = Arc::clone(&s);
        std::thread::Builder::new().name("seeder".into()).spawn(move || worker.work(rx))?;
        if s.inotify.is_some() {
            let watcher = Arc::clone(&s);
            std::thread::Builder::new().name("seed-watch".into()).spawn(move || watcher.watch())?;
        }
        Ok(s)
    }

    /// The watching thread: each `.json` closed after writing (or moved in) in a watched
    /// fingerprint folder wakes the copy waiting on that folder. Ends with the queue.
    fn watch(&self) {
        let Some(inotify) = &self.inotify else { return };
        loop {
            let events = match inotify.read_events() {
                Ok(e) => e,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("reading inotify events failed ({e}): seeding copies fall back to looking");
                    return;
                }
            };
            let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let Some(q) = queue.as_ref() else { return };
            for e in events {
                let json = e.name.as_ref().is_some_and(|n| n.as_encoded_bytes().ends_with(b".json"));
                if json && e.mask.intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO) {
                    let _ = q.send(Msg::Wake(e.wd));
                }
            }
        }
    }

    /// A `CAPTURE`: queues the copy of the unit reported.
    pub fn capture(&self, uid: u32, c: Capture, dir: OwnedFd) -> Result<(), FsError> {
        self.fs.may_change(uid, None)?;
        let hash = c.unit.rsplit_once('-').map(|(_, h)| h.to_string()).ok_or(FsError::InvalidName)?;
        if c.unit.contains('/') || c.profile.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(FsError::InvalidName);
        }
        let meta = fs::metadata(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
        if !meta.is_dir() {
            return Err(FsError::Io(libc::ENOTDIR));
        }
        let id = (meta.dev(), meta.ino(), c.marker.exact);
        let target = {
            let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(targets.entry(id).or_insert_with(|| {
                // A set grows: the units earlier builds left stay in it (a seeded build
                // reports only what it built itself).
                let mut state = State::default();
                if let Ok(set) = self.fs.read_path(&c.marker.exact.to_hex()).map(|b| SeedSet::decode(&b)) {
                    for e in set.into_iter().flat_map(|s| s.entries) {
                        state.keep(e);
                    }
                }
                Arc::new(Target { dir, marker: c.marker.clone(), state: Mutex::new(state), done: Condvar::new() })
            }))
        };
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = target.state.lock().unwrap_or_else(|p| p.into_inner());
        let (c_profile, c_unit) = (c.profile.clone(), c.unit.clone());
        st.units.insert(hash.clone(), c);
        st.active = Some(Instant::now());
        if st.pending.insert(hash.clone()) {
            // Watched before the first look, so a fingerprint written after that look wakes
            // the copy. (Cargo made the folder before the compile; a folder not there is
            // only looked for.)
            let folder = format!("/proc/self/fd/{}/{}/.fingerprint/{}", target.dir.as_raw_fd(), c_profile, c_unit);
            let watch = self.inotify.as_ref().and_then(|i| {
                i.add_watch(folder.as_str(), AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO).ok()
            });
            let job = Job {
                target: Arc::clone(&target),
                hash: hash.clone(),
                not_before: SystemTime::now() - SLACK,
                reported: Instant::now(),
                watch,
            };
            if queue.as_ref().is_none_or(|q| q.send(Msg::Job(job)).is_err()) {
                st.pending.remove(&hash);
                self.unwatch(watch);
            }
        }
        Ok(())
    }

    /// Waits until nothing of `t` is waiting or being copied, for as long as copies keep
    /// ending (a loaded machine's queue drains slowly, and a unit left out costs its whole
    /// dependency cone a rebuild), but not past `STALL` without one ending nor past `limit`
    /// in all (a unit whose fingerprint never comes: cargo killed after the compile).
    fn settle(&self, t: &Target, limit: Duration) {
        let start = Instant::now();
        let mut st = t.state.lock().unwrap_or_else(|p| p.into_inner());
        while !st.pending.is_empty() {
            let moved = st.progress.map_or(start, |p| p.max(start));
            let end = (moved + STALL).min(start + limit);
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let mut waiting: Vec<&str> =
                    st.pending.iter().filter_map(|h| st.units.get(h)).map(|c| c.unit.as_str()).collect();
                waiting.sort_unstable();
                tracing::info!(units = ?waiting, "stopped waiting for seed units still being copied");
                return;
            }
            st = t.done.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// A `SETTLE`: waits (at most [`END_SETTLE`]) until the units reported in the target
    /// dirs of set `exact` are copied or left out. A workspace compile asks at its end: the
    /// registry units it was built from are reported, and cargo writes their fingerprints
    /// within milliseconds, so the build cannot end, and its target dir go, before they are in
    /// the set.
    pub fn settle_set(&self, exact: Key) {
        let feeding: Vec<Arc<Target>> = {
            let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
            targets.values().filter(|t| t.marker.exact == exact).cloned().collect()
        };
        for t in feeding {
            self.settle(&t, END_SETTLE);
        }
    }

    /// A `SEED`: the set for `exact` (else for `latest`), after the copies feeding either
    /// are done and written; its bytes follow one byte that says which (0 exact, 1 latest).
    pub fn set(&self, exact: Key, latest: Key) -> Result<Vec<u8>, FsError> {
        let feeding: Vec<Arc<Target>> = {
            let targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
            targets.values().filter(|t| t.marker.exact == exact || t.marker.latest == latest).cloned().collect()
        };
        for t in feeding {
            self.settle(&t, SETTLE);
            self.flush(&t, true);
        }
        let (which, bytes) = match self.fs.read_path(&exact.to_hex()) {
            Ok(b) => (0u8, b),
            Err(_) => (1u8, self.fs.read_path(&latest.to_hex())?),
        };
        let mut out = Vec::with_capacity(bytes.len() + 1);
        out.push(which);
        out.extend_from_slice(&bytes);
        Ok(out)
    }

    /// At the daemon's stop, before uploads drain: finishes the copies under way (briefly),
    /// writes every changed set and ends the copying thread.
    pub fn finish(&self) {
        let targets: Vec<Arc<Target>> =
            self.targets.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for t in targets {
            self.settle(&t, SETTLE);
            self.flush(&t, true);
        }
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn work(&self, rx: Receiver<Msg>) {
        let mut later: VecDeque<(Instant, Job)> = VecDeque::new();
        loop {
            let wait =
                later.front().map_or(Duration::from_secs(1), |(at, _)| at.saturating_duration_since(Instant::now()));
            let mut now: Vec<Job> = match rx.recv_timeout(wait) {
                Ok(Msg::Job(job)) => vec![job],
                // The copies waiting on that folder go now (a wake for a copy not waiting,
                // still queued or being made, is moot: it looks anyway).
                Ok(Msg::Wake(wd)) => {
                    let (woken, rest): (VecDeque<_>, VecDeque<_>) =
                        later.drain(..).partition(|(_, j)| j.watch == Some(wd));
                    later = rest;
                    woken.into_iter().map(|(_, j)| j).collect()
                }
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if let Some((at, _)) = later.front() {
                if *at <= Instant::now() {
                    now.extend(later.pop_front().map(|(_, j)| j));
                }
            }
            for job in now {
                match self.copy(&job) {
                    Copied::Not(why) if why == NOT_YET && job.reported.elapsed() < GIVE_UP => {
                        later.push_back((Instant::now() + self.poll, job));
                    }
                    outcome => {
                        self.unwatch(job.watch);
                        let mut st = job.target.state.lock().unwrap_or_else(|p| p.into_inner());
                        st.pending.remove(&job.hash);
                        st.progress = Some(Instant::now());
                        match outcome {
                            Copied::Entry(e) => {
                                tracing::debug!(unit = %e.unit, bytes = e.bytes, "seed unit copied");
                                st.keep(*e);
                                st.dirty = true;
                            }
                            Copied::Not(why) => tracing::debug!(unit = %job.hash, "not seeded: {why}"),
                        }
                        job.target.done.notify_all();
                    }
                }
            }
            let targets: Vec<Arc<Target>> =
                self.targets.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
            for t in targets {
                self.flush(&t, false);
            }
            self.targets.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, t| {
                let st = t.state.lock().unwrap_or_else(|p| p.into_inner());
                st.dirty || !st.pending.is_empty() || st.active.is_none_or(|a| a.elapsed() < IDLE)
            });
        }
    }

    /// Ends a copy's watch. (A folder watched for two copies at once, which only another
    /// marker of the same target dir can make, leaves the other copy looking every poll.)
    fn unwatch(&self, watch: Option<WatchDescriptor>) {
        if let (Some(i), Some(w)) = (&self.inotify, watch) {
            let _ = i.rm_watch(w);
        }
    }

    /// Writes the set of `t` if it changed: when its copies are done and a second has passed
    /// since the last write, or `now` (with what is copied so far; a unit still being copied
    /// joins at the next write).
    fn flush(&self, t: &Target, now: bool) {
        let bytes = {
            let mut st = t.state.lock().unwrap_or_else(|p| p.into_inner());
            let due =
                now || (st.pending.is_empty() && st.flushed.is_none_or(|f| f.elapsed() >= Duration::from_secs(1)));
            if !st.dirty || !due {
                return;
            }
            st.dirty = false;
            st.flushed = Some(Instant::now());
            SeedSet { entries: st.entries() }.encode()
        };
        for key in [t.marker.exact, t.marker.latest] {
            if let Err(e) = self.put(&key, bytes.clone(), true) {
                tracing::warn!("writing a seed set failed: {e}");
            }
        }
    }

    fn put(&self, key: &Key, bytes: Vec<u8>, replace: bool) -> Result<(), FsError> {
        let mut once = Some(bytes);
        let mut data = |buf: &mut Vec<u8>| -> io::Result<bool> {
            if let Some(b) = once.take() {
                buf.extend_from_slice(&b);
            }
            Ok(false)
        };
        self.fs.put_bytes(self.owner, key, &mut data, replace)
    }

    /// Copies one unit into a unit object and stores it, once its fingerprint is written.
    fn copy(&self, job: &Job) -> Copied {
        let c = {
            let st = job.target.state.lock().unwrap_or_else(|p| p.into_inner());
            match st.units.get(&job.hash) {
                Some(c) => c.clone(),
                None => return Copied::Not("not reported".into()),
            }
        };
        let root = format!("/proc/self/fd/{}/{}", job.target.dir.as_raw_fd(), c.profile);
        let rel = Rel::from_stored(&job.target.marker.roots);
        // The compile's own result: its outputs are named, not copied. A result that cannot be
        // read now (evicted, damaged) only means the files are copied.
        let table = c
            .result
            .as_ref()
            .and_then(|r| Some(Outputs { key: r.key, dir: &r.dir, bound: &r.bound, files: self.outputs(&r.key)? }));
        let (files, bound, bytes_total) =
            match read_unit(Path::new(&root), &c.unit, &rel, job.not_before, table.as_ref()) {
                Ok(u) => u,
                Err(e) => return Copied::Not(e.to_string()),
            };
        let mut refs: Vec<Key> = Vec::new();
        // What a restore of it writes, by BLAKE3 (text with placeholders for the roots), for
        // the workspace units built on it.
        let mut made: Vec<[u8; 32]> = Vec::new();
        for (f, payload) in &files {
            match &f.stored {
                Stored::Result(r) => {
                    if !refs.contains(&r.key) {
                        refs.push(r.key);
                    }
                    made.push(r.hash);
                }
                Stored::Bytes => made.push(*blake3::hash(payload).as_bytes()),
                // Text a run left (its `output`, what it generated in `OUT_DIR`), with the
                // roots as placeholders: as the wrapper hashes it for a unit built on it
                // (engine/seed `built_on_hash`).
                Stored::Relocated => made.push(*blake3::hash(payload).as_bytes()),
                Stored::Launcher => {}
            }
        }
        made.sort_unstable();
        made.dedup();
        let (fingerprint, precalculated) = cargo_records(&files);
        // A run's record names a file of its package (recorded as `pkg:<package>`).
        let package = c.sources.iter().find_map(|(l, _)| l.strip_prefix("pkg:"));
        let stamp = package.zip(precalculated).map(|(pkg, (file, ns))| (format!("{pkg}/{file}"), ns));
        let object = encode_unit(&files);
        let mut h = blake3::Hasher::new();
        h.update(b"cairn-seed-unit-v1\0");
        h.update(&object);
        let key = Key(*h.finalize().as_bytes());
        if let Err(e) = self.put(&key, object, false) {
            return Copied::Not(e.to_string());
        }
        Copied::Entry(Box::new(SetEntry {
            profile: c.profile,
            unit: c.unit,
            package: c.package,
            key,
            bound,
            bytes: bytes_total,
            compile_ns: c.compile_ns,
            deps: c.deps,
            refs,
            native: c.native,
            sources: c.sources,
            externs: c.externs,
            made,
            stamp,
            fingerprint,
        }))
    }

    /// The file table of a stored result, checked against its checksum.
    fn outputs(&self, key: &Key) -> Option<Vec<FileAt>> {
        match self.fs.open_path(&key.to_hex()).ok()? {
            Content::File(f) => read_result_files(&f).ok(),
            Content::Bytes(b) => result_files(&b).ok(),
        }
    }
}

/// A unit's result object: its key, its output folder relative to the profile folder, the
/// placeholders of the roots its outputs name, its files.
pub struct Outputs<'a> {
    pub key: Key,
    pub dir: &'a str,
    pub bound: &'a [String],
    pub files: Vec<FileAt>,
}

impl Outputs<'_> {
    /// The output at `path` (relative to the profile folder) of length `len`, if there is one.
    fn find(&self, path: &str, len: u64) -> Option<&FileAt> {
        let name = path.strip_prefix(self.dir)?.strip_prefix('/')?;
        // A build script's binary sits beside cairn's launcher under another name.
        let names = [Some(name), frontends::script_of_real(name)];
        self.files.iter().find(|f| names.contains(&Some(f.name.as_str())) && f.len == len)
    }

    fn to_reference(&self, f: &FileAt) -> Reference {
        Reference { key: self.key, name: f.name.clone(), hash: f.hash, len: f.len }
    }

    /// The reference to the output at `path` whose bytes are `bytes`, if there is one.
    fn reference(&self, path: &str, bytes: &[u8]) -> Option<Reference> {
        let f = self.find(path, bytes.len() as u64)?;
        (blake3::hash(bytes).as_bytes() == &f.hash).then(|| self.to_reference(f))
    }
}

enum Copied {
    Entry(Box<SetEntry>),
    Not(String),
}

/// Why a unit is not copied yet: cargo has not written its fingerprint.
const NOT_YET: &str = "fingerprint not written yet";

/// A unit's files with their payloads, the roots it is bound to, the files' total size.
type UnitFiles = (Vec<(UnitFile, Vec<u8>)>, Vec<(String, String)>, u64);

/// Reads unit `unit` of the profile folder `root`: its fingerprint folder, its files in
/// `deps/` and its folder in `build/`. Every file is read between two identical `lstat`s.
/// A file that is one of `outputs`, byte for byte, is kept as a reference to it.
pub fn read_unit(
    root: &Path,
    unit: &str,
    rel: &Rel,
    not_before: SystemTime,
    outputs: Option<&Outputs<'_>>,
) -> io::Result<UnitFiles> {
    let hash = unit.rsplit_once('-').map(|(_, h)| h).ok_or_else(|| io::Error::other("a unit name without hash"))?;
    let fp = format!(".fingerprint/{unit}");
    let mut paths: Vec<String> = Vec::new();
    let fp_files: Vec<String> =
        list(&root.join(&fp)).unwrap_or_default().into_iter().map(|n| format!("{fp}/{n}")).collect();
    // cargo writes a unit's fingerprint (`lib-foo` beside `lib-foo.json`) after its compile
    // or run: without both, written since the report, the unit is not done.
    let written = fp_files.iter().any(|f| {
        f.strip_suffix(".json").is_some_and(|h| {
            fp_files.iter().any(|g| g == h)
                && [h, f.as_str()]
                    .iter()
                    .all(|p| fs::metadata(root.join(p)).and_then(|m| m.modified()).is_ok_and(|t| t >= not_before))
        })
    });
    if !written {
        return Err(io::Error::other(NOT_YET));
    }
    paths.extend(fp_files);
    let suffix = format!("-{hash}");
    for n in list(&root.join("deps")).unwrap_or_default() {
        if n.split('.').next().is_some_and(|stem| stem.ends_with(&suffix)) {
            paths.push(format!("deps/{n}"));
        }
    }
    walk(root, &format!("build/{unit}"), &mut paths)?;
    let mut files = Vec::new();
    let mut bound: Vec<(String, String)> = Vec::new();
    let mut total = 0u64;
    let stored = rel.stored();
    let bind = |ph: &str, bound: &mut Vec<(String, String)>| {
        if let Some(b) = stored.iter().find(|(p, _)| p == ph) {
            if !bound.contains(b) {
                bound.push(b.clone());
            }
        }
    };
    for p in paths {
        let path = root.join(&p);
        let before = fs::symlink_metadata(&path)?;
        if !before.file_type().is_file() {
            return Err(io::Error::other(format!("{p} is not a plain file")));
        }
        // An output of the unit's own compile, by name and size, is not read: the wrapper
        // served or stored exactly these bytes, and a restore takes them from the result,
        // checked against its table, with the result's own binding to roots.
        let text = is_text(&p, unit);
        let named = match text {
            true => None,
            false => outputs.and_then(|o| Some((o, o.find(&p, before.len())?))),
        };
        if let Some((o, f)) = named {
            for ph in o.bound {
                bind(ph, &mut bound);
            }
            total += f.len;
            let mode = before.permissions().mode() & 0o777;
            files.push((UnitFile { path: p, mode, stored: Stored::Result(o.to_reference(f)), len: 0 }, Vec::new()));
            continue;
        }
        let bytes = fs::read(&path)?;
        let after = fs::symlink_metadata(&path)?;
        let same = |m: &fs::Metadata| (m.ino(), m.len(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
        if same(&before) != same(&after) || bytes.len() as u64 != after.len() {
            return Err(io::Error::other(format!("{p} changed while it was read")));
        }
        total += bytes.len() as u64;
        let (kind, payload) = if frontends::is_launcher(&bytes) {
            (Stored::Launcher, Vec::new())
        } else if let (true, Ok(s)) = (text, std::str::from_utf8(&bytes)) {
            (Stored::Relocated, rel.rel(s).into_bytes())
        } else {
            for ph in rel.found_in(&bytes) {
                bind(ph, &mut bound);
            }
            match outputs.and_then(|o| o.reference(&p, &bytes)) {
                Some(r) => (Stored::Result(r), Vec::new()),
                None => (Stored::Bytes, bytes),
            }
        };
        let mode = after.permissions().mode() & 0o777;
        files.push((UnitFile { path: p, mode, stored: kind, len: payload.len() as u64 }, payload));
    }
    Ok((files, bound, total))
}

/// What cargo recorded of a unit, from its fingerprint folder: its fingerprint and those of
/// the units it was built on (the hash file, 16 hex digits of the `u64` little-endian, and
/// the fourth field of each of the `.json`'s `deps`); and for a build-script run that
/// declared no inputs, the newest file of its package (relative to it) and that file's time
/// (ns), from `{"local":[{"Precalculated":"<secs>.<nanos>s (<file>)"}]…}`.
type CargoRecords = (Option<(u64, Vec<u64>)>, Option<(String, u64)>);

fn cargo_records(files: &[(UnitFile, Vec<u8>)]) -> CargoRecords {
    let Some((json_file, json)) =
        files.iter().find(|(f, _)| f.path.starts_with(".fingerprint/") && f.path.ends_with(".json"))
    else {
        return (None, None);
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else { return (None, None) };
    let fingerprint = (|| {
        let hash_path = json_file.path.strip_suffix(".json")?;
        let (_, hex) = files.iter().find(|(f, _)| f.path == hash_path)?;
        let hex = std::str::from_utf8(hex).ok()?.trim();
        if hex.len() != 16 {
            return None;
        }
        let mut bytes = [0u8; 8];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let deps = v.get("deps")?.as_array()?.iter().map(|d| d.get(3)?.as_u64()).collect::<Option<Vec<u64>>>()?;
        Some((u64::from_le_bytes(bytes), deps))
    })();
    let precalculated = (|| {
        let s = v.get("local")?.as_array()?.first()?.get("Precalculated")?.as_str()?;
        let (time, file) = s.split_once("s (")?;
        let file = file.strip_suffix(')')?;
        let (secs, nanos) = time.split_once('.')?;
        let ns = secs.parse::<u64>().ok()?.checked_mul(1_000_000_000)?.checked_add(nanos.parse::<u64>().ok()?)?;
        (nanos.len() == 9 && !file.is_empty() && !file.starts_with('/')).then(|| (file.to_string(), ns))
    })();
    (fingerprint, precalculated)
}

/// Text files whose paths are moved: rustc's dep-info, cairn's list of an rlib's
/// dependencies (rustc/graph.rs), a build script's recorded output, and text its run left in
/// `OUT_DIR` (a `.pc` file naming it), as a build script's restore moves them.
fn is_text(p: &str, unit: &str) -> bool {
    let run = format!("build/{unit}/");
    p.ends_with(".d")
        || p.ends_with(".cairn-deps")
        || p.starts_with(&format!("{run}out/"))
        || ["output", "root-output", "stderr"].iter().any(|n| p == format!("{run}{n}"))
}

fn list(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        if let Some(n) = e.file_name().to_str() {
            out.push(n.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// Every file under `root/rel` (none when it does not exist), relative to `root`.
fn walk(root: &Path, rel: &str, out: &mut Vec<String>) -> io::Result<()> {
    let dir = root.join(rel);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_str().ok_or_else(|| io::Error::other("a name that is not UTF-8"))?.to_string();
        let child = format!("{rel}/{name}");
        if e.file_type()?.is_dir() {
            walk(root, &child, out)?;
        } else {
            out.push(child);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::seed::restore;
    use crate::protocol::seed::decode_unit;
    use crate::store::memory::MemoryStore;
    use std::path::PathBuf;
    use std::time::UNIX_EPOCH;

    const UNIT: &str = "foo-0123456789abcdef";

    #[test]
    fn cargo_records_are_read_from_a_units_fingerprint() {
        let file = |path: &str, bytes: &[u8]| {
            (UnitFile { path: path.into(), mode: 0o644, stored: Stored::Bytes, len: 0 }, bytes.to_vec())
        };
        // As cargo 1.95 writes them: the hash file is the u64 little-endian in hex; the json's
        // `deps` give each dependency's as a number.
        let json = br#"{"rustc":1,"deps":[[1322478694103194923,"build_script_build",false,15930598909560094696]],"local":[{"Precalculated":"1796672291.059321850s (src/main.rs)"}]}"#;
        let files = vec![
            file(".fingerprint/app-fbad94938ee920e0/run-build-script-build-script-build", b"e8ff8de74ddb14dd"),
            file(".fingerprint/app-fbad94938ee920e0/run-build-script-build-script-build.json", json),
        ];
        let (fingerprint, precalculated) = cargo_records(&files);
        let own = u64::from_le_bytes([0xe8, 0xff, 0x8d, 0xe7, 0x4d, 0xdb, 0x14, 0xdd]);
        assert_eq!(fingerprint, Some((own, vec![15930598909560094696])));
        assert_eq!(precalculated, Some(("src/main.rs".to_string(), 1_796_672_291_059_321_850)));
        // A run that declared a folder: cargo compares its times, no record of the package.
        let declared =
            br#"{"deps":[],"local":[{"RerunIfChanged":{"output":"debug/build/x/output","paths":["data"]}}]}"#;
        let files = vec![
            file(".fingerprint/x-0123456789abcdef/run-build-script-build-script-build", b"0000000000000001"),
            file(".fingerprint/x-0123456789abcdef/run-build-script-build-script-build.json", declared),
        ];
        assert_eq!(cargo_records(&files), (Some((1 << 56, vec![])), None));
    }

    /// The set entry of [`UNIT`], its object under key 9…9.
    fn entry(bound: Vec<(String, String)>) -> SetEntry {
        SetEntry {
            profile: "debug".into(),
            unit: UNIT.into(),
            package: "foo 1.0.0".into(),
            key: Key([9; 32]),
            bound,
            bytes: 0,
            compile_ns: 5,
            deps: vec![],
            refs: vec![],
            native: vec![],
            sources: vec![],
            externs: vec![],
            made: vec![],
            stamp: None,
            fingerprint: None,
        }
    }

    fn restore_from(p: &Path) -> crate::engine::door::Opened {
        crate::engine::door::Opened::File(fs::File::open(p).unwrap())
    }

    /// A profile folder as cargo leaves a built unit, under target dir `t` of checkout `ws`.
    fn built_unit(t: &Path) {
        let p = t.join("debug");
        let fp = p.join(".fingerprint").join(UNIT);
        fs::create_dir_all(&fp).unwrap();
        fs::write(fp.join("lib-foo"), "1234").unwrap();
        fs::write(fp.join("lib-foo.json"), "{}").unwrap();
        fs::create_dir_all(p.join("deps")).unwrap();
        fs::write(p.join("deps/libfoo-0123456789abcdef.rlib"), b"\x00rlib").unwrap();
        fs::write(p.join("deps/libfoo-0123456789abcdef.rmeta"), b"\x00rmeta").unwrap();
        fs::write(p.join("deps/libbar-fedcba9876543210.rlib"), b"another unit").unwrap();
        let d =
            format!("{}/debug/deps/libfoo-0123456789abcdef.rlib: /home/cargo/registry/src/foo/lib.rs\n", t.display());
        fs::write(p.join("deps/foo-0123456789abcdef.d"), d).unwrap();
        let b = p.join("build").join(UNIT);
        fs::create_dir_all(b.join("out")).unwrap();
        fs::write(b.join("output"), format!("cargo:rustc-link-search=native={}/debug/build/{UNIT}/out\n", t.display()))
            .unwrap();
        fs::write(b.join("out/gen.pc"), format!("prefix={}/debug/build/{UNIT}/out\n", t.display())).unwrap();
        fs::write(
            b.join("build-script-build"),
            "#!/bin/sh\n# Written by cairn: runs this build script through the cache; elsewhere\n",
        )
        .unwrap();
    }

    fn roots(ws: &Path, t: &Path) -> Rel {
        use crate::engine::basedir::Kind;
        Rel::from_stored(&[
            (Kind::Checkout.placeholder().into(), ws.display().to_string()),
            (Kind::Target.placeholder().into(), t.display().to_string()),
            (Kind::CargoHome.placeholder().into(), "/home/cargo".into()),
        ])
    }

    #[test]
    fn a_unit_is_not_taken_before_cargo_wrote_its_fingerprint() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("ws/target");
        built_unit(&t);
        let rel = roots(&d.path().join("ws"), &t);
        let root = t.join("debug");
        // A fingerprint written before the report is an earlier build's.
        let later = SystemTime::now() + Duration::from_secs(60);
        let e = read_unit(&root, UNIT, &rel, later, None).err().unwrap();
        assert_eq!(e.to_string(), NOT_YET);
        fs::remove_file(root.join(".fingerprint").join(UNIT).join("lib-foo")).unwrap();
        let e = read_unit(&root, UNIT, &rel, UNIX_EPOCH, None).err().unwrap();
        assert_eq!(e.to_string(), NOT_YET, "the hash without its JSON is not a fingerprint");
    }

    #[test]
    fn a_symbolic_link_keeps_a_unit_out() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("ws/target");
        built_unit(&t);
        std::os::unix::fs::symlink("/etc/passwd", t.join("debug/build").join(UNIT).join("out/link")).unwrap();
        let rel = roots(&d.path().join("ws"), &t);
        assert!(read_unit(&t.join("debug"), UNIT, &rel, UNIX_EPOCH, None).is_err());
    }

    #[test]
    fn a_unit_copied_from_one_target_dir_is_restored_into_another_with_its_paths() {
        let d = tempfile::tempdir().unwrap();
        let (ws, t) = (d.path().join("ws"), d.path().join("ws/target"));
        built_unit(&t);
        let (files, bound, _) = read_unit(&t.join("debug"), UNIT, &roots(&ws, &t), UNIX_EPOCH, None).unwrap();
        assert!(bound.is_empty(), "every path is in a text file: {bound:?}");
        let names: Vec<&str> = files.iter().map(|(f, _)| f.path.as_str()).collect();
        assert!(names.contains(&"deps/libfoo-0123456789abcdef.rlib"));
        assert!(!names.iter().any(|n| n.contains("libbar")), "another unit's file: {names:?}");
        let stored = |p: &str| files.iter().find(|(f, _)| f.path == p).unwrap();
        assert_eq!(stored(&format!("build/{UNIT}/build-script-build")).0.stored, Stored::Launcher);
        assert_eq!(stored("deps/foo-0123456789abcdef.d").0.stored, Stored::Relocated);
        let object = encode_unit(&files);
        assert!(decode_unit(&object).is_ok());
        // Another checkout, another target dir.
        let (ws2, t2) = (d.path().join("other"), d.path().join("other/out"));
        let first = entry(bound);
        let stored = d.path().join("object");
        fs::write(&stored, &object).unwrap();
        // As the daemon hands it over: the stored file (and, in the second restore, bytes).
        let fetch = |k: &Key| (*k == Key([9; 32])).then(|| restore_from(&stored));
        let r = restore::restore(&[first], &t2, &roots(&ws2, &t2), &fetch, 2, Instant::now() + Duration::from_secs(9));
        assert_eq!((r.units, r.skipped.len()), (1, 0), "{r:?}");
        let p = t2.join("debug");
        assert_eq!(fs::read(p.join("deps/libfoo-0123456789abcdef.rlib")).unwrap(), b"\x00rlib");
        let dinfo = fs::read_to_string(p.join("deps/foo-0123456789abcdef.d")).unwrap();
        assert!(dinfo.starts_with(&format!("{}/debug/deps/", t2.display())), "{dinfo}");
        let output = fs::read_to_string(p.join("build").join(UNIT).join("output")).unwrap();
        assert_eq!(output, format!("cargo:rustc-link-search=native={}/debug/build/{UNIT}/out\n", t2.display()));
        let pc = fs::read_to_string(p.join("build").join(UNIT).join("out/gen.pc")).unwrap();
        assert!(pc.contains(&t2.display().to_string()), "{pc}");
        let launcher = fs::read(p.join("build").join(UNIT).join("build-script-build")).unwrap();
        assert!(frontends::is_launcher(&launcher) && !String::from_utf8_lossy(&launcher).contains("elsewhere"));
        assert!(p.join(".fingerprint").join(UNIT).join("lib-foo.json").is_file());
        // Files are a little in the past, so what cargo builds next is newer.
        let m = fs::metadata(p.join("deps/libfoo-0123456789abcdef.rlib")).unwrap().modified().unwrap();
        assert!(m < SystemTime::now());
        // A second restore leaves the unit alone.
        let again = entry(vec![]);
        let r = restore::restore(&[again], &t2, &roots(&ws2, &t2), &fetch, 1, Instant::now() + Duration::from_secs(9));
        assert_eq!(r.skipped, vec![(UNIT.to_string(), "present".to_string())]);
    }

    #[test]
    fn a_binary_file_naming_a_root_binds_the_unit_to_it_and_a_damaged_object_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let (ws, t) = (d.path().join("ws"), d.path().join("ws/target"));
        built_unit(&t);
        let mut bin = b"\x00\xff".to_vec();
        bin.extend_from_slice(ws.display().to_string().as_bytes());
        fs::write(t.join("debug/build").join(UNIT).join("out/libfoo.a"), &bin).unwrap();
        let (files, bound, _) = read_unit(&t.join("debug"), UNIT, &roots(&ws, &t), UNIX_EPOCH, None).unwrap();
        let checkout = crate::engine::basedir::Kind::Checkout.placeholder().to_string();
        assert_eq!(bound, vec![(checkout, ws.display().to_string())]);
        let mut object = encode_unit(&files);
        let t2 = d.path().join("other/out");
        let fetch = |_: &Key| Some(crate::engine::door::Opened::Bytes(object.clone()));
        let r = restore::restore(
            &[entry(bound.clone())],
            &t2,
            &roots(&d.path().join("other"), &t2),
            &fetch,
            1,
            Instant::now() + Duration::from_secs(9),
        );
        assert_eq!(r.skipped, vec![(UNIT.to_string(), "other-roots".to_string())]);
        let mid = object.len() / 2;
        object[mid] ^= 1;
        let fetch = |_: &Key| Some(crate::engine::door::Opened::Bytes(object.clone()));
        let r = restore::restore(
            &[entry(vec![])],
            &t2,
            &roots(&d.path().join("other"), &t2),
            &fetch,
            1,
            Instant::now() + Duration::from_secs(9),
        );
        assert_eq!(r.skipped, vec![(UNIT.to_string(), "damaged".to_string())]);
        assert!(!t2.join("debug/.fingerprint").join(UNIT).exists());
    }

    #[test]
    fn a_unit_is_restored_only_while_the_native_library_it_took_in_is_the_same() {
        let d = tempfile::tempdir().unwrap();
        let (ws, t) = (d.path().join("ws"), d.path().join("ws/target"));
        built_unit(&t);
        let (files, bound, _) = read_unit(&t.join("debug"), UNIT, &roots(&ws, &t), UNIX_EPOCH, None).unwrap();
        let object = encode_unit(&files);
        let fetch = |_: &Key| Some(crate::engine::door::Opened::Bytes(object.clone()));
        // A static library in the checkout the rlib bundled, named by placeholder.
        let lib = ws.join("native/libz.a");
        fs::create_dir_all(lib.parent().unwrap()).unwrap();
        fs::write(&lib, b"!<arch>\none").unwrap();
        let named = roots(&ws, &t).rel(&lib.display().to_string());
        assert!(!named.starts_with('/'), "{named}");
        let hash = crate::engine::filehash::hash_file(&lib).unwrap();
        let with_native = || SetEntry { native: vec![(named.clone(), hash)], ..entry(bound.clone()) };
        let restore_into = |t2: &Path| {
            let deadline = Instant::now() + Duration::from_secs(9);
            restore::restore(&[with_native()], t2, &roots(&ws, t2), &fetch, 1, deadline)
        };
        let r = restore_into(&d.path().join("ws/t2"));
        assert_eq!((r.units, r.skipped.len()), (1, 0), "the same library: {r:?}");
        // The library changes (an upgrade, a rebuild of it): cargo's fingerprint of the unit
        // would not see it, so the seed must not bring back what the old one made.
        // (Another length: a rewrite within the memo's window after a hash is only seen by size.)
        fs::write(&lib, b"!<arch>\nsecond").unwrap();
        let t3 = d.path().join("ws/t3");
        let r = restore_into(&t3);
        assert_eq!(r.skipped, vec![(UNIT.to_string(), "native-changed".to_string())]);
        assert!(!t3.join("debug/.fingerprint").join(UNIT).exists());
        fs::remove_file(&lib).unwrap();
        let r = restore_into(&d.path().join("ws/t4"));
        assert_eq!(r.skipped, vec![(UNIT.to_string(), "native-changed".to_string())], "a library gone");
    }

    #[test]
    fn a_workspace_compiles_end_waits_until_the_units_it_was_built_from_are_copied() {
        let (_d, t, seeder, uid, c) = reported_unit(POLL);
        // The unit's compile reported; cargo writes its fingerprint a little later.
        seeder.capture(uid, c, fs::File::open(&t).unwrap().into()).unwrap();
        let cargo = later_cargo(&t);
        assert_eq!(captured(&seeder), 0, "no fingerprint yet");
        seeder.settle_set(Key([1; 32]));
        assert_eq!(captured(&seeder), 1, "copied before the workspace's compile returns");
        cargo.join().unwrap();
        // Another set's build does not wait for this one.
        let t0 = Instant::now();
        seeder.settle_set(Key([3; 32]));
        assert!(t0.elapsed() < END_SETTLE);
    }

    #[test]
    fn a_unit_is_copied_the_moment_cargo_writes_its_fingerprint_not_at_the_next_look() {
        // Looking again only every minute: only the watch on the fingerprint folder can have
        // the copy made within the second a workspace compile's end waits.
        let (_d, t, seeder, uid, c) = reported_unit(Duration::from_secs(60));
        seeder.capture(uid, c, fs::File::open(&t).unwrap().into()).unwrap();
        let cargo = later_cargo(&t);
        seeder.settle_set(Key([1; 32]));
        assert_eq!(captured(&seeder), 1, "the fingerprint's .json woke the copy");
        cargo.join().unwrap();
    }

    /// A seeder (looking again every `poll`) and the report of a unit of `ws/target` whose
    /// fingerprint folder cargo has made (as it does before the compile), not yet written.
    fn reported_unit(poll: Duration) -> (tempfile::TempDir, PathBuf, Arc<Seeder<MemoryStore>>, u32, Capture) {
        use crate::engine::basedir::Kind;
        use crate::fs::FsOptions;
        let d = tempfile::tempdir().unwrap();
        let (ws, t) = (d.path().join("ws"), d.path().join("ws/target"));
        fs::create_dir_all(t.join("debug/.fingerprint").join(UNIT)).unwrap();
        let uid = nix::unistd::getuid().as_raw();
        let fs = Arc::new(CacheFs::new(
            Arc::new(MemoryStore::new(1 << 30)),
            FsOptions { uid, gid: uid, want_backing: false },
        ));
        let seeder = Seeder::start_polling(fs, poll).unwrap();
        let stored = vec![
            (Kind::Checkout.placeholder().to_string(), ws.display().to_string()),
            (Kind::Target.placeholder().to_string(), t.display().to_string()),
        ];
        let marker = Marker { exact: Key([1; 32]), latest: Key([2; 32]), roots: stored };
        let c = Capture {
            marker,
            profile: "debug".into(),
            unit: UNIT.into(),
            package: "foo 1.0.0".into(),
            compile_ns: 1,
            deps: vec![],
            result: None,
            native: vec![],
            sources: vec![],
            externs: vec![],
        };
        (d, t, seeder, uid, c)
    }

    /// Cargo writing the unit's files and fingerprint 100 ms after its compile's report.
    fn later_cargo(t: &Path) -> std::thread::JoinHandle<()> {
        let t = t.to_path_buf();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            built_unit(&t);
        })
    }

    fn captured(s: &Seeder<MemoryStore>) -> usize {
        let targets = s.targets.lock().unwrap();
        targets.values().map(|t| t.state.lock().unwrap().captured.len()).sum::<usize>()
    }

    /// The result of the unit's compile, as the wrapper stored it: its rlib and rmeta.
    fn compiled() -> Vec<u8> {
        use crate::protocol::object::{Body, CompileResult, EntryMeta, OutputFile};
        let file = |name: &str, bytes: &[u8]| OutputFile {
            name: name.into(),
            mode: 0o644,
            hash: *blake3::hash(bytes).as_bytes(),
            body: Body::Bytes(bytes.to_vec()),
        };
        CompileResult {
            meta: EntryMeta::default(),
            files: vec![
                file("libfoo-0123456789abcdef.rlib", b"\x00rlib"),
                file("libfoo-0123456789abcdef.rmeta", b"\x00rmeta"),
            ],
            stdout: Vec::new(),
            stderr: b"warning".to_vec(),
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn outputs_of_the_units_result_are_named_not_copied_and_restored_from_it() {
        let d = tempfile::tempdir().unwrap();
        let (ws, t) = (d.path().join("ws"), d.path().join("ws/target"));
        built_unit(&t);
        let result = compiled();
        let rkey = Key([7; 32]);
        let table = Outputs { key: rkey, dir: "deps", bound: &[], files: result_files(&result).unwrap() };
        let (files, _, total) = read_unit(&t.join("debug"), UNIT, &roots(&ws, &t), UNIX_EPOCH, Some(&table)).unwrap();
        let named: Vec<&str> =
            files.iter().filter(|(f, _)| matches!(f.stored, Stored::Result(_))).map(|(f, _)| f.path.as_str()).collect();
        assert_eq!(named, vec!["deps/libfoo-0123456789abcdef.rlib", "deps/libfoo-0123456789abcdef.rmeta"]);
        assert!(files.iter().filter(|(f, _)| matches!(f.stored, Stored::Result(_))).all(|(_, b)| b.is_empty()));
        assert!(total >= 11, "the set counts the files' own size: {total}");
        // A result whose outputs name a root binds the unit to it, as its bytes would.
        let checkout = [crate::engine::basedir::Kind::Checkout.placeholder().to_string()];
        let bound_table =
            Outputs { bound: &checkout, ..Outputs { key: rkey, dir: "deps", bound: &[], files: table.files.clone() } };
        let (_, bound, _) = read_unit(&t.join("debug"), UNIT, &roots(&ws, &t), UNIX_EPOCH, Some(&bound_table)).unwrap();
        assert_eq!(bound, vec![(checkout[0].clone(), ws.display().to_string())]);
        // A file of another size than the result's output is not that output: copied.
        fs::write(t.join("debug/deps/libfoo-0123456789abcdef.rmeta"), b"\x00another").unwrap();
        let (again, _, _) = read_unit(&t.join("debug"), UNIT, &roots(&ws, &t), UNIX_EPOCH, Some(&table)).unwrap();
        let rmeta = again.iter().find(|(f, _)| f.path.ends_with(".rmeta")).unwrap();
        assert_eq!((&rmeta.0.stored, rmeta.1.as_slice()), (&Stored::Bytes, &b"\x00another"[..]));
        // Text (dep-info) is read and moved, never named.
        let dinfo = again.iter().find(|(f, _)| f.path.ends_with(".d")).unwrap();
        assert_eq!(dinfo.0.stored, Stored::Relocated);

        let object = encode_unit(&files);
        let (unit_at, result_at) = (d.path().join("unit"), d.path().join("result"));
        fs::write(&unit_at, &object).unwrap();
        fs::write(&result_at, &result).unwrap();
        let t2 = d.path().join("other/out");
        let rel2 = roots(&d.path().join("other"), &t2);
        let mut e = entry(vec![]);
        e.refs = vec![rkey];
        // As the daemon hands objects over: stored files, or bytes (a memory store).
        for as_bytes in [false, true] {
            let _ = fs::remove_dir_all(&t2);
            let fetch = |k: &Key| match (*k == Key([9; 32]), *k == rkey, as_bytes) {
                (true, _, false) => Some(restore_from(&unit_at)),
                (_, true, false) => Some(restore_from(&result_at)),
                (true, _, true) => Some(crate::engine::door::Opened::Bytes(object.clone())),
                (_, true, true) => Some(crate::engine::door::Opened::Bytes(result.clone())),
                _ => None,
            };
            let r = restore::restore(&[e.clone()], &t2, &rel2, &fetch, 1, Instant::now() + Duration::from_secs(9));
            assert_eq!((r.units, r.skipped.len()), (1, 0), "{r:?}");
            assert_eq!(fs::read(t2.join("debug/deps/libfoo-0123456789abcdef.rlib")).unwrap(), b"\x00rlib");
            assert_eq!(fs::read(t2.join("debug/deps/libfoo-0123456789abcdef.rmeta")).unwrap(), b"\x00rmeta");
        }
        // The result removed (`rm <mount>/<key>`): the unit is left out, nothing of it written.
        let _ = fs::remove_dir_all(&t2);
        let gone = |k: &Key| (*k == Key([9; 32])).then(|| restore_from(&unit_at));
        let r = restore::restore(&[e.clone()], &t2, &rel2, &gone, 1, Instant::now() + Duration::from_secs(9));
        assert_eq!(r.skipped, vec![(UNIT.to_string(), "absent-result".to_string())]);
        assert!(!t2.join("debug/.fingerprint").join(UNIT).exists());
        assert!(!t2.join("debug/deps/libfoo-0123456789abcdef.rlib").exists());
        // A reference the result's table does not match (another output under that name).
        let mut files2 = files.clone();
        let i = files2.iter().position(|(f, _)| matches!(f.stored, Stored::Result(_))).unwrap();
        if let Stored::Result(r) = &mut files2[i].0.stored {
            r.hash = [1; 32];
        }
        let object2 = encode_unit(&files2);
        let fetch = |k: &Key| match (*k == Key([9; 32]), *k == rkey) {
            (true, _) => Some(crate::engine::door::Opened::Bytes(object2.clone())),
            (_, true) => Some(crate::engine::door::Opened::Bytes(result.clone())),
            _ => None,
        };
        let r = restore::restore(&[e.clone()], &t2, &rel2, &fetch, 1, Instant::now() + Duration::from_secs(9));
        assert_eq!(r.skipped, vec![(UNIT.to_string(), "result-mismatch".to_string())]);
        // A damaged result: left out.
        let mut bad = result.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        let fetch = |k: &Key| match (*k == Key([9; 32]), *k == rkey) {
            (true, _) => Some(crate::engine::door::Opened::Bytes(object.clone())),
            (_, true) => Some(crate::engine::door::Opened::Bytes(bad.clone())),
            _ => None,
        };
        let r = restore::restore(&[e], &t2, &rel2, &fetch, 1, Instant::now() + Duration::from_secs(9));
        assert_eq!(r.skipped, vec![(UNIT.to_string(), "damaged-result".to_string())]);
    }
}

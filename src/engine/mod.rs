//! The engine: the life of one cached compile, the same for every front end (rustc, build-script
//! runs, C/C++ objects, clippy). The engine imports no front end; front ends import it.
//!
//! A front end ([`FrontEnd`]) says only what differs: how to make the base key, how to hash a
//! dependency set now, how to put a stored result's files in place, how to run its tool, and
//! what a run wrote and read. The engine does the rest, in this order:
//!
//! 1. make the base key (a front end may answer "not cacheable" or fail: the tool runs
//!    uncached, and the outcome says why);
//! 2. tell the daemon a build of this build set begins (src/build_sets.rs);
//! 3. read the manifest named after the base key and, for each dependency set it lists, hash
//!    those inputs as they are now and try the result of that key: a damaged object is removed
//!    and logged, a result the front end cannot use here is passed over, and the first that
//!    restores is a **hit** (files put back, stdout and stderr replayed, paths moved to this
//!    build's folders);
//! 4. otherwise run the tool, passing its output through; then collect what it wrote and read,
//!    hash those inputs again *checking that none changed since the run began* (one rule,
//!    [`inputs::changed_since`]), store the result, and put its dependency set first in the
//!    manifest.
//!
//! Every outcome is decided here, once ([`outcome::Outcome`]): it makes one log line and one
//! report to the daemon. Invariants:
//! - nothing on the cache side fails a build: any fault runs the tool as if cairn were absent;
//! - a result whose inputs changed while its tool ran is never stored (`miss:changed`);
//! - a result is stored before the manifest names it, so a manifest never names a result that
//!   was not written;
//! - a failed run is stored only where the front end says its failure is a pure function of the
//!   key (rustc compiles that do not link), and only when it exited with a code.

pub mod basedir;
pub mod cache;
pub mod door;
pub mod filehash;
pub mod inputs;
pub mod keys;
pub mod linker;
pub mod log;
pub mod makedeps;
pub mod memo;
pub mod mount;
pub mod native_cpu;
pub mod outcome;
pub mod process;
pub mod profile;
pub mod remote;
pub mod seed;
pub mod toolchain;
pub mod tree;

#[cfg(test)]
pub(crate) mod tests;

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::key::Key;
use crate::protocol::object::{CompileResult, EntryMeta, Manifest, ObjectError, OutputFile, ResultView, Variant};
use crate::protocol::report::{Event, Kind};
use crate::protocol::result_file::ResultFile;
use basedir::Rel;
use cache::{Cache, Fetched};
use inputs::{NotNow, VariantInputs};
use outcome::{Fault, Outcome};
use process::Ran;

/// Why a compile cannot be keyed.
#[derive(Debug)]
pub enum Unkeyable {
    /// Never cacheable as it stands (the reason is a short word for logs and stats).
    NotCacheable(String),
    /// A fault while gathering the inputs (a file that cannot be read …).
    Fault(io::Error),
}

impl From<io::Error> for Unkeyable {
    fn from(e: io::Error) -> Self {
        Unkeyable::Fault(e)
    }
}

/// Why a finished run is not stored.
#[derive(Debug)]
pub enum NotStored {
    /// An input changed while the tool ran: what it wrote may not match what is there now.
    Changed(String),
    /// What the run read cannot be known (no dep-info, no linker list …), or a fault reading it.
    Fault(io::Error),
}

impl From<io::Error> for NotStored {
    fn from(e: io::Error) -> Self {
        NotStored::Fault(e)
    }
}

/// What a finished run wrote and read, as its front end found it.
pub struct Collected {
    /// The outputs, in the order the front end restores them.
    pub files: Vec<OutputFile>,
    /// The dependency set: the inputs it read, relative to the roots.
    pub variant: Variant,
    /// How the entry is listed (`by-crate/`, xattrs): crate name and types.
    pub listed: (String, Vec<String>),
    /// The target triple, and the rustc version where one applies.
    pub target: String,
    pub rustc_version: String,
}

/// Who a compile is and where its files go: what the log, the stats and the relocation of
/// replayed output need.
#[derive(Debug, Clone)]
pub struct Site {
    /// Which front end (log, stats, object metadata).
    pub kind: Kind,
    /// The name the log lists the compile under.
    pub crate_name: String,
    /// The roots (checkout, CARGO_HOME, target dir) its paths are relative to.
    pub rel: Rel,
    /// The folder its outputs go to: paths naming the stored one are moved here on a hit.
    pub out_dir: String,
}

/// What a front end tells the engine. Each method is one thing that differs between front
/// ends; everything else is the engine's.
pub trait FrontEnd {
    /// Who the compile is and where its files go.
    fn site(&self) -> &Site;
    /// The base key: everything known before the tool runs.
    fn base_key(&mut self) -> Result<Key, Unkeyable>;
    /// The build set this compile belongs to, if any (src/build_sets.rs).
    fn build_set(&self) -> Option<Key> {
        None
    }
    /// A dependency set's inputs as they are now. `since`: the run's start, when checking a
    /// finished run (an input changed since then is [`NotNow::Changed`]). The default reads
    /// each listed file (one the tool read: gone means the set no longer applies).
    fn hash_variant(&self, v: &Variant, since: Option<SystemTime>) -> Result<VariantInputs, NotNow> {
        inputs::hash_read_files(v, &self.site().rel, since)
    }
    /// Whether this front end's restore copies the output `name` straight from the object's
    /// file ([`FileView::at`](crate::protocol::object::FileView)) rather than from memory.
    /// Only outputs it says so of are left out of memory.
    fn restores_from_file(&self, _name: &str) -> bool {
        false
    }
    /// Whether a stored result can be restored here (the shape this compile expects).
    fn accepts(&self, _r: &ResultView<'_>) -> bool {
        true
    }
    /// Puts a stored result's files in place (not its output: the engine replays that).
    fn restore(&mut self, r: &ResultView<'_>, v: &Variant) -> io::Result<()>;
    /// Runs the tool for a miss, passing its output through and keeping a copy.
    fn run(&mut self) -> io::Result<Ran>;
    /// Runs the tool without the cache (after a fault before the lookup) and returns its exit
    /// code; may replace this process.
    fn run_uncached(&mut self) -> i32;
    /// Whether a failed run that exited with a code may be stored and replayed.
    fn stores_failures(&self) -> bool {
        false
    }
    /// What a finished run wrote and read. Called for every run; a front end that stores no
    /// failures may skip the work when the run failed.
    fn collect(&mut self, ran: &Ran) -> Result<Collected, NotStored>;
    /// After the tool's result is in place and it succeeded (hit or miss).
    fn after_success(&mut self) {}
    /// After a miss, with the inputs of the dependency set stored (when one was), as the
    /// engine hashed them: `cairn why`'s record.
    fn after_miss(&mut self, _outcome: &Outcome, _stored: Option<&VariantInputs>) {}
}

/// The engine: a door into the cache and the log to write.
pub struct Engine<'a> {
    pub cache: &'a dyn Cache,
    pub log: Option<PathBuf>,
}

/// Runs one compile through the cache: the mount, or the daemon's socket where there is no
/// mount (the daemon started if need be). Where there is neither, the tool runs uncached and
/// the log says why.
pub fn run(fe: &mut dyn FrontEnd) -> i32 {
    let t0 = Instant::now();
    match door::Door::find_or_start() {
        Ok(door) => Engine { cache: &door, log: log::log_path() }.run(fe),
        Err(why) => {
            mount::warn_once(&why);
            let outcome = Outcome::Error(Fault::new("no-mount", ""));
            log::record_kind(fe.site().kind, &fe.site().crate_name, None, &outcome.word(), t0.elapsed(), None);
            fe.run_uncached()
        }
    }
}

/// Says that a compile is not cacheable, in the log and (when a daemon is running) to the
/// daemon, without starting one.
pub fn not_cacheable(kind: Kind, crate_name: &str, reason: &str) {
    if let Some(door) = door::Door::live() {
        door.report(&[Event::NotCacheable(reason.to_string())]);
    }
    let word = Outcome::NotCacheable(reason.to_string()).word();
    log::record_kind(kind, crate_name, None, &word, Duration::ZERO, None);
}

impl Engine<'_> {
    /// The life of one compile; returns the exit code to give the build.
    pub fn run(&self, fe: &mut dyn FrontEnd) -> i32 {
        let mut life = Life { t0: Instant::now(), ph: profile::Phases::start() };
        let base = match fe.base_key() {
            Ok(k) => k,
            Err(e) => {
                let outcome = match e {
                    Unkeyable::NotCacheable(r) => Outcome::NotCacheable(r),
                    Unkeyable::Fault(e) => Outcome::Error(Fault::new("key", &e.to_string())),
                };
                self.finish(fe, &outcome, None, &mut life, None, None);
                return fe.run_uncached();
            }
        };
        life.ph.mark("key");
        let mkey = keys::manifest_key(&base);
        let set = fe.build_set();
        if let Some(s) = set {
            self.cache.report(&[Event::Begin(s)]);
        }
        let manifest = self.manifest(fe, &mkey, life.t0);
        let mut fault = None;
        for v in manifest.iter().flat_map(|m| m.variants.iter()) {
            let Ok((files, env)) = fe.hash_variant(v, None) else { continue };
            let rkey = keys::result_key(&base, &files, &env);
            let Some(fetched) = self.cache.open(&rkey) else { continue };
            let held = match fetched {
                Fetched::Bytes(b) => Ok(Held::Bytes(b)),
                Fetched::File(f) => ResultFile::read(f, &|n| fe.restores_from_file(n)).map(|r| Held::File(Box::new(r))),
            };
            let decoded = held.as_ref().map_err(Clone::clone).and_then(Held::view);
            let (r, size) = match decoded {
                Ok(r) => r,
                Err(e) => {
                    // Damaged or of another format: removed, so the next store can replace it.
                    self.cache.remove(&rkey);
                    let word = Outcome::Damaged(e.to_string()).word();
                    log::record_in(
                        self.log.as_deref(),
                        fe.site().kind,
                        &fe.site().crate_name,
                        Some(&rkey),
                        &word,
                        life.t0.elapsed(),
                        None,
                    );
                    continue;
                }
            };
            if !fe.accepts(&r) {
                continue;
            }
            life.ph.mark("lookup");
            match self.restore(fe, &r, v) {
                Ok(()) => {
                    let code = r.meta.exit_code;
                    life.ph.mark("restore");
                    if code == 0 {
                        fe.after_success();
                    }
                    life.ph.mark("after");
                    let outcome =
                        Outcome::Hit { exit_code: code, compile: Duration::from_nanos(r.meta.compile_ns), bytes: size };
                    let used = set.map(|s| (s, vec![mkey, rkey]));
                    self.finish(fe, &outcome, Some(&rkey), &mut life, used, None);
                    if code == 0 {
                        set_last_result(rkey, fe, v.env.iter().map(String::as_str), files);
                    }
                    return code;
                }
                Err(e) => {
                    // Part of the outputs may be written: the tool runs over them, as it would
                    // over an earlier build's files.
                    fault = Some((Fault::new("restore", &e.to_string()), rkey));
                    break;
                }
            }
        }
        life.ph.mark("lookup");
        self.miss(fe, &base, manifest, set, fault, life)
    }

    /// The manifest, if there is a readable one; a damaged one is removed.
    fn manifest(&self, fe: &dyn FrontEnd, mkey: &Key, t0: Instant) -> Option<Manifest> {
        let bytes = self.cache.get(mkey)?;
        match Manifest::decode(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                self.cache.remove(mkey);
                let word = Outcome::Damaged(e.to_string()).word();
                log::record_in(
                    self.log.as_deref(),
                    fe.site().kind,
                    &fe.site().crate_name,
                    Some(mkey),
                    &word,
                    t0.elapsed(),
                    None,
                );
                None
            }
        }
    }

    /// Files through the front end, then stdout and stderr replayed byte for byte, with paths
    /// naming the entry's folders moved to this build's.
    fn restore(&self, fe: &mut dyn FrontEnd, r: &ResultView<'_>, v: &Variant) -> io::Result<()> {
        fe.restore(r, v)?;
        io::stdout().write_all(&relocate(r.stdout, &r.meta, &fe.site().out_dir, &fe.site().rel))?;
        io::stderr().write_all(&relocate(r.stderr, &r.meta, &fe.site().out_dir, &fe.site().rel))
    }

    fn miss(
        &self,
        fe: &mut dyn FrontEnd,
        base: &Key,
        manifest: Option<Manifest>,
        set: Option<Key>,
        fault: Option<(Fault, Key)>,
        mut life: Life,
    ) -> i32 {
        let ran = match fe.run() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cairn: cannot run the {} tool: {e}", fe.site().kind.as_str());
                return 127;
            }
        };
        life.ph.mark("run");
        let collected = fe.collect(&ran);
        life.ph.mark("collect");
        let code = ran.status.code();
        let success = ran.status.success();
        // A failure is stored only where the front end allows it and the tool exited normally:
        // a crash or a signal is never replayed.
        let storable = success || (code.is_some() && fe.stores_failures());
        let stored = match collected {
            Ok(c) if storable => self.store(fe, base, manifest, &ran, c, &mut life.ph).map(Some),
            Err(e) if success => Err(e),
            _ => Ok(None),
        };
        // A failed run that could not be stored (rustc stopped before writing dep-info) is a
        // failure of the tool, never a fault of the cache.
        let stored = if success { stored } else { stored.or(Ok(None)) };
        let (outcome, key, variant, used) = match (stored, fault) {
            (_, Some((f, k))) => (Outcome::Error(f), Some(k), None, None),
            (Ok(Some((rkey, bytes, v))), None) => {
                let used = set.map(|s| (s, vec![keys::manifest_key(base), rkey]));
                let o = if success { Outcome::Miss { bytes } } else { Outcome::MissFailed };
                (o, Some(rkey), Some(v), used.filter(|_| success))
            }
            (Ok(None), None) => (Outcome::MissFailed, None, None, None),
            (Err(NotStored::Changed(p)), None) => (Outcome::MissChanged(p), None, None, None),
            (Err(NotStored::Fault(e)), None) => (Outcome::Error(Fault::new("store", &e.to_string())), None, None, None),
        };
        life.ph.mark("store");
        if success {
            fe.after_success();
        }
        fe.after_miss(&outcome, variant.as_ref());
        life.ph.mark("after");
        self.finish(fe, &outcome, key.as_ref(), &mut life, used, Some(ran.took));
        if let (Outcome::Miss { .. }, Some(k), Some((files, env))) = (&outcome, key, variant) {
            set_last_result(k, fe, env.iter().map(|(n, _)| n.as_str()), files);
        }
        code.unwrap_or(101)
    }

    /// Stores a finished run and records its dependency set first in the manifest. The inputs
    /// are hashed after the run: one that changed since it began means nothing is stored.
    fn store(
        &self,
        fe: &mut dyn FrontEnd,
        base: &Key,
        manifest: Option<Manifest>,
        ran: &Ran,
        c: Collected,
        ph: &mut profile::Phases,
    ) -> Result<(Key, u64, VariantInputs), NotStored> {
        let (files, env) = fe.hash_variant(&c.variant, Some(ran.started)).map_err(|n| match n {
            NotNow::Changed(p) | NotNow::Gone(p) => NotStored::Changed(p),
        })?;
        ph.mark("hash");
        let rkey = keys::result_key(base, &files, &env);
        let result = CompileResult {
            meta: EntryMeta {
                crate_name: c.listed.0,
                crate_types: c.listed.1,
                target: c.target,
                rustc_version: c.rustc_version,
                compile_ns: ran.took.as_nanos() as u64,
                created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                out_dir: fe.site().out_dir.clone(),
                exit_code: ran.status.code().unwrap_or(0),
                roots: fe.site().rel.stored(),
            },
            files: c.files,
            stdout: ran.stdout.clone(),
            stderr: ran.stderr.clone(),
        };
        let mut m = manifest.unwrap_or_default();
        let then = (m.variants.first() != Some(&c.variant) || m.recent.first() != Some(&rkey)).then(|| {
            m.push_front(c.variant);
            m.push_result(rkey);
            m.encode()
        });
        let mkey = keys::manifest_key(base);
        let len = self.cache.put_result(&rkey, &result, then.as_deref().map(|b| (&mkey, b)))?;
        Ok((rkey, len, (files, env)))
    }

    /// The one place an outcome becomes a log line and a report.
    fn finish(
        &self,
        fe: &dyn FrontEnd,
        outcome: &Outcome,
        key: Option<&Key>,
        life: &mut Life,
        used: Option<(Key, Vec<Key>)>,
        ran: Option<Duration>,
    ) {
        let took = life.t0.elapsed();
        let mut events: Vec<Event> = outcome.event(fe.site().kind, took, ran).into_iter().collect();
        events.extend(used.map(|(s, keys)| Event::Used(s, keys)));
        if !events.is_empty() {
            self.cache.report(&events);
        }
        let compile = match outcome {
            Outcome::Hit { compile, .. } => Some(*compile),
            _ => ran,
        };
        log::record_in(self.log.as_deref(), fe.site().kind, &fe.site().crate_name, key, &outcome.word(), took, compile);
        LAST_COMPILE_NS.store(compile.map_or(0, |c| c.as_nanos() as u64), std::sync::atomic::Ordering::Relaxed);
        *LAST_RESULT.lock().unwrap_or_else(|p| p.into_inner()) = None;
        life.ph.mark("report");
        life.ph.write(fe.site().kind.as_str(), &fe.site().crate_name, &outcome.word());
    }
}

/// What the last compile of this process took to compile (a hit: the original compile),
/// for target-dir seeding's record of what a unit saves (engine/seed).
static LAST_COMPILE_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// [`LAST_COMPILE_NS`] (0 when unknown). The wrapper runs one compile per process.
pub fn last_compile() -> Duration {
    Duration::from_nanos(LAST_COMPILE_NS.load(std::sync::atomic::Ordering::Relaxed))
}

/// The result object of the last compile of this process that succeeded from the cache or
/// was stored: its key, its output folder, the placeholders of the roots its outputs name
/// (their binding, `bind_roots`), and its dependency set's files as hashed for its key.
/// Target-dir seeding names its files instead of copying them, and keeps a workspace unit
/// only while those files are the same (engine/seed).
static LAST_RESULT: std::sync::Mutex<Option<LastResult>> = std::sync::Mutex::new(None);

/// See [`LAST_RESULT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastResult {
    pub key: Key,
    pub out_dir: String,
    pub bound: Vec<String>,
    /// The dependency set's files, labelled relative to the compile's roots `rel`.
    pub inputs: inputs::HashedFiles,
    pub rel: basedir::Rel,
}

/// [`LAST_RESULT`].
pub fn last_result() -> Option<LastResult> {
    LAST_RESULT.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn set_last_result<'a>(key: Key, fe: &dyn FrontEnd, env: impl Iterator<Item = &'a str>, inputs: inputs::HashedFiles) {
    let bound = env.filter(|n| basedir::is_placeholder(n)).map(str::to_string).collect();
    *LAST_RESULT.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(LastResult { key, out_dir: fe.site().out_dir.clone(), bound, inputs, rel: fe.site().rel.clone() });
}

/// A result object as it was fetched: its bytes, or read from its file.
enum Held {
    Bytes(Vec<u8>),
    File(Box<ResultFile>),
}

impl Held {
    /// The result, checked, and the object's size.
    fn view(&self) -> Result<(ResultView<'_>, u64), ObjectError> {
        match self {
            Held::Bytes(b) => CompileResult::decode(b).map(|r| (r, b.len() as u64)),
            Held::File(f) => Ok((f.view(), f.size())),
        }
    }
}

/// One compile's clock and profile.
struct Life {
    t0: Instant,
    ph: profile::Phases,
}

/// Stored bytes with paths naming the entry's original output folder, then its original
/// checkout, made to name this build's.
pub fn relocate(bytes: &[u8], meta: &EntryMeta, out_dir: &str, rel: &Rel) -> Vec<u8> {
    let b = basedir::rewrite_bytes(bytes, &meta.out_dir, out_dir);
    let from = Rel::from_stored(&meta.roots);
    if from == *rel || meta.roots.is_empty() {
        return b;
    }
    match String::from_utf8(b) {
        Ok(s) => rel.relocate(&s, &from).into_bytes(),
        Err(e) => e.into_bytes(),
    }
}

/// Adds to `env` the placeholder of every root whose absolute path occurs in `bytes`: an
/// output that names this machine's folders is only served under the same folders.
pub fn bind_roots(env: &mut Vec<String>, rel: &Rel, bytes: &[u8]) {
    bind(env, rel.found_in(bytes));
}

/// Adds to `env` each of these roots' placeholders (as found in an output: `Rel::found_in`,
/// `RootScan`) that it does not name yet, in their order.
pub fn bind(env: &mut Vec<String>, placeholders: impl IntoIterator<Item = &'static str>) {
    for ph in placeholders {
        if !env.iter().any(|e| e == ph) {
            env.push(ph.to_string());
        }
    }
}

//! The engine's flow against a memory door and a scripted front end, with no mount: each
//! outcome is decided once, logged once, reported once, and nothing wrong is ever stored.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::protocol::object::Body;

/// A cache in memory that records what it was told; `fail_puts` makes every commit fail (a
/// full disk, a dead mount).
#[derive(Default)]
pub(crate) struct MemCache {
    pub objects: RefCell<HashMap<Key, Vec<u8>>>,
    pub events: RefCell<Vec<Event>>,
    pub fail_puts: Cell<bool>,
}

impl Cache for MemCache {
    fn get(&self, key: &Key) -> Option<Vec<u8>> {
        self.objects.borrow().get(key).cloned()
    }
    fn put(&self, key: &Key, bytes: &[u8], replace: bool) -> io::Result<()> {
        if self.fail_puts.get() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let mut o = self.objects.borrow_mut();
        if replace || !o.contains_key(key) {
            o.insert(*key, bytes.to_vec());
        }
        Ok(())
    }
    fn remove(&self, key: &Key) {
        self.objects.borrow_mut().remove(key);
    }
    fn report(&self, events: &[Event]) {
        self.events.borrow_mut().extend_from_slice(events);
    }
}

impl MemCache {
    /// Flips one bit in the middle of every object (bit rot, a bad disk).
    pub fn damage_all(&self) {
        for b in self.objects.borrow_mut().values_mut() {
            let mid = b.len() / 2;
            b[mid] ^= 1;
        }
    }

    /// Takes the events reported so far.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.borrow_mut())
    }
}

/// Checks the log of a compile that missed, found its objects damaged, and compiled again.
pub(crate) fn assert_damaged_then_recompiled(words: &[String]) {
    assert_eq!(words.first().map(String::as_str), Some("miss"), "{words:?}");
    assert_eq!(words.last().map(String::as_str), Some("miss"), "compiled again: {words:?}");
    assert!(words.iter().any(|x| x.starts_with("error:object:")), "the damage is logged: {words:?}");
}

/// The outcome words of a log file, in order.
pub(crate) fn log_words(log: &std::path::Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\t').nth(3).unwrap_or("").to_string())
        .collect()
}

/// A tool that upper-cases `src.txt` into `out/out.txt`, scripted to misbehave.
struct Upper {
    dir: PathBuf,
    site: Site,
    runs: usize,
    exit_code: i32,
    stores_failures: bool,
    /// Rewrites the source while the tool runs.
    edit_during_run: bool,
    fail_restore: bool,
    /// What the run read cannot be known (as when rustc stops before writing dep-info).
    fail_collect: bool,
    accept: bool,
    unkeyable: Option<fn() -> Unkeyable>,
    uncached_runs: usize,
}

impl Upper {
    fn new(dir: &std::path::Path) -> Upper {
        fs::write(dir.join("src.txt"), "hello").unwrap();
        let out = dir.join("out");
        fs::create_dir_all(&out).unwrap();
        // The source was written before any run starts, as an edited file would be.
        let f = fs::File::options().write(true).open(dir.join("src.txt")).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(10)).unwrap();
        Upper {
            dir: dir.to_path_buf(),
            site: Site {
                kind: Kind::Cc,
                crate_name: "upper".into(),
                rel: Rel::default(),
                out_dir: out.display().to_string(),
            },
            runs: 0,
            exit_code: 0,
            stores_failures: false,
            edit_during_run: false,
            fail_restore: false,
            fail_collect: false,
            accept: true,
            unkeyable: None,
            uncached_runs: 0,
        }
    }
    fn src(&self) -> PathBuf {
        self.dir.join("src.txt")
    }
    fn output(&self) -> PathBuf {
        self.dir.join("out/out.txt")
    }
}

impl FrontEnd for Upper {
    fn site(&self) -> &Site {
        &self.site
    }
    fn base_key(&mut self) -> Result<Key, Unkeyable> {
        if let Some(u) = self.unkeyable {
            return Err(u());
        }
        let mut h = keys::KeyHasher::new("test-base");
        h.field("tool", b"upper");
        Ok(h.finish())
    }
    fn accepts(&self, _r: &ResultView<'_>) -> bool {
        self.accept
    }
    fn restore(&mut self, r: &ResultView<'_>, _v: &Variant) -> io::Result<()> {
        if self.fail_restore {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        fs::write(self.output(), r.files[0].bytes)
    }
    fn run(&mut self) -> io::Result<Ran> {
        self.runs += 1;
        let started = SystemTime::now();
        let t0 = Instant::now();
        let text = fs::read_to_string(self.src())?;
        fs::write(self.output(), text.to_uppercase())?;
        if self.edit_during_run {
            fs::write(self.src(), "edited")?;
        }
        Ok(Ran {
            status: ExitStatus::from_raw(self.exit_code << 8),
            stdout: b"out\n".to_vec(),
            stderr: Vec::new(),
            took: t0.elapsed().max(Duration::from_millis(3)),
            started,
        })
    }
    fn run_uncached(&mut self) -> i32 {
        self.uncached_runs += 1;
        0
    }
    fn stores_failures(&self) -> bool {
        self.stores_failures
    }
    fn collect(&mut self, _ran: &Ran) -> Result<Collected, NotStored> {
        if self.fail_collect {
            return Err(io::Error::other("no dep-info written").into());
        }
        let bytes = fs::read(self.output())?;
        let hash = *blake3::hash(&bytes).as_bytes();
        Ok(Collected {
            files: vec![OutputFile { name: "out.txt".into(), mode: 0o644, hash, body: Body::Bytes(bytes) }],
            variant: Variant { files: vec![self.src().display().to_string()], env: vec![] },
            listed: ("upper".into(), vec!["c-object".into()]),
            target: String::new(),
            rustc_version: String::new(),
        })
    }
}

struct Setup {
    _d: tempfile::TempDir,
    cache: MemCache,
    log: PathBuf,
    fe: Upper,
}

fn setup() -> Setup {
    let d = tempfile::tempdir().unwrap();
    let fe = Upper::new(d.path());
    Setup { log: d.path().join("log"), cache: MemCache::default(), fe, _d: d }
}

impl Setup {
    fn run(&mut self) -> i32 {
        Engine { cache: &self.cache, log: Some(self.log.clone()) }.run(&mut self.fe)
    }
    fn words(&self) -> Vec<String> {
        log_words(&self.log)
    }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            Event::Hit { .. } => "hit",
            Event::Miss { bytes: 0, .. } => "miss-unstored",
            Event::Miss { .. } => "miss",
            Event::NotCacheable(_) => "not-cacheable",
            Event::Error => "error",
            Event::Begin(_) => "begin",
            Event::Used(..) => "used",
            Event::Seeded { .. } => "seeded",
            Event::Remote(_) => "remote",
        })
        .collect()
}

#[test]
fn a_miss_stores_the_result_and_its_manifest_then_the_same_inputs_hit_without_running() {
    let mut s = setup();
    assert_eq!(s.run(), 0);
    assert_eq!(s.fe.runs, 1);
    assert_eq!(s.cache.objects.borrow().len(), 2, "a result and a manifest");
    assert_eq!(kinds(&s.cache.take_events()), ["miss"]);
    fs::remove_file(s.fe.output()).unwrap();
    assert_eq!(s.run(), 0);
    assert_eq!(s.fe.runs, 1, "the tool did not run");
    assert_eq!(fs::read_to_string(s.fe.output()).unwrap(), "HELLO");
    assert_eq!(kinds(&s.cache.take_events()), ["hit"]);
    assert_eq!(s.words(), ["miss", "hit"]);
}

#[test]
fn a_changed_source_misses_and_both_results_stay_listed() {
    let mut s = setup();
    s.run();
    fs::write(s.fe.src(), "other").unwrap();
    let f = fs::File::options().write(true).open(s.fe.src()).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(5)).unwrap();
    s.run();
    assert_eq!(s.fe.runs, 2);
    assert_eq!(fs::read_to_string(s.fe.output()).unwrap(), "OTHER");
    assert_eq!(s.cache.objects.borrow().len(), 3, "two results, one manifest");
    assert_eq!(s.words(), ["miss", "miss"]);
}

#[test]
fn a_damaged_result_is_removed_logged_and_replaced_by_a_new_run() {
    let mut s = setup();
    s.run();
    let rkey = {
        let o = s.cache.objects.borrow();
        *o.iter().find(|(_, b)| CompileResult::decode(b).is_ok()).unwrap().0
    };
    {
        let mut o = s.cache.objects.borrow_mut();
        let b = o.get_mut(&rkey).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
    }
    s.cache.take_events();
    assert_eq!(s.run(), 0);
    assert_eq!(s.fe.runs, 2, "a damaged object is never used");
    assert_eq!(s.words(), ["miss", "error:object:checksum_mismatch_(damaged_object)", "miss"]);
    assert_eq!(kinds(&s.cache.take_events()), ["miss"], "the compile is counted once, as what it became");
    assert!(CompileResult::decode(&s.cache.objects.borrow()[&rkey]).is_ok(), "stored again whole");
}

#[test]
fn a_damaged_manifest_is_removed_and_the_compile_misses() {
    let mut s = setup();
    let mkey = keys::manifest_key(&s.fe.base_key().unwrap());
    s.cache.objects.borrow_mut().insert(mkey, b"not a manifest".to_vec());
    assert_eq!(s.run(), 0);
    assert_eq!(s.fe.runs, 1);
    assert_eq!(s.words()[0].split(':').take(2).collect::<Vec<_>>(), ["error", "object"]);
    assert_eq!(s.words()[1], "miss");
    assert!(Manifest::decode(&s.cache.objects.borrow()[&mkey]).is_ok(), "replaced by a good one");
}

#[test]
fn an_input_edited_during_the_run_is_never_recorded() {
    let mut s = setup();
    s.fe.edit_during_run = true;
    assert_eq!(s.run(), 0);
    assert!(s.cache.objects.borrow().is_empty(), "nothing stored");
    assert_eq!(s.words(), ["miss:changed"]);
    assert_eq!(kinds(&s.cache.take_events()), ["miss-unstored"], "a miss, not a cache error");
}

#[test]
fn a_failed_restore_runs_the_tool_and_is_counted_as_an_error_once() {
    let mut s = setup();
    s.run();
    s.cache.take_events();
    s.fe.fail_restore = true;
    assert_eq!(s.run(), 0);
    assert_eq!(s.fe.runs, 2);
    assert_eq!(fs::read_to_string(s.fe.output()).unwrap(), "HELLO");
    assert_eq!(s.words()[1], "error:restore:Read-only_file_system_(os_error_30)");
    assert_eq!(kinds(&s.cache.take_events()), ["error"]);
}

#[test]
fn a_failed_run_is_not_stored_unless_the_front_end_says_failures_replay() {
    let mut s = setup();
    s.fe.exit_code = 3;
    assert_eq!(s.run(), 3);
    assert!(s.cache.objects.borrow().is_empty());
    s.fe.stores_failures = true;
    assert_eq!(s.run(), 3);
    assert_eq!(s.run(), 3, "the failure replays with its exit code");
    assert_eq!(s.fe.runs, 2);
    assert_eq!(s.words(), ["miss:failed", "miss:failed", "hit:failed"]);
}

#[test]
fn a_failure_that_cannot_be_stored_is_a_failure_and_a_success_that_cannot_be_is_a_fault() {
    let mut s = setup();
    s.fe.stores_failures = true;
    s.fe.fail_collect = true;
    s.fe.exit_code = 1;
    assert_eq!(s.run(), 1);
    s.fe.exit_code = 0;
    assert_eq!(s.run(), 0);
    assert_eq!(s.words(), ["miss:failed", "error:store:no_dep-info_written"]);
    assert_eq!(kinds(&s.cache.take_events()), ["miss-unstored", "error"]);
}

#[test]
fn a_store_fault_is_an_error_and_the_build_goes_on() {
    let mut s = setup();
    s.cache.fail_puts.set(true);
    assert_eq!(s.run(), 0);
    assert_eq!(fs::read_to_string(s.fe.output()).unwrap(), "HELLO", "the tool's output is in place");
    assert_eq!(s.words(), ["error:store:No_space_left_on_device_(os"]);
    assert_eq!(kinds(&s.cache.take_events()), ["error"]);
}

#[test]
fn a_compile_that_cannot_be_keyed_runs_uncached_and_says_why() {
    let mut s = setup();
    s.fe.unkeyable = Some(|| Unkeyable::NotCacheable("unknown-graph".into()));
    s.run();
    s.fe.unkeyable = Some(|| Unkeyable::Fault(io::Error::from_raw_os_error(libc::EACCES)));
    s.run();
    assert_eq!(s.fe.uncached_runs, 2);
    assert_eq!(s.fe.runs, 0);
    assert_eq!(s.words(), ["not-cacheable:unknown-graph", "error:key:Permission_denied_(os_error_13)"]);
    assert_eq!(kinds(&s.cache.take_events()), ["not-cacheable", "error"]);
}

#[test]
fn a_result_the_front_end_cannot_use_is_passed_over() {
    let mut s = setup();
    s.run();
    s.fe.accept = false;
    s.run();
    assert_eq!(s.fe.runs, 2);
    assert_eq!(s.words(), ["miss", "miss"]);
}

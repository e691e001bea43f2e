//! The rustc front end's flow with a real rustc against a memory cache, no mount: a miss
//! stores, the same compile then hits and restores the same bytes, a damaged result is
//! replaced, and a failed compile (that does not link) replays its failure.

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use super::*;
use crate::engine::tests::{assert_damaged_then_recompiled, log_words, MemCache};
use crate::engine::Engine;

struct Case {
    d: tempfile::TempDir,
    cache: MemCache,
}

impl Case {
    fn new(source: &str) -> Case {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("src")).unwrap();
        fs::write(d.path().join("src/lib.rs"), source).unwrap();
        let f = fs::File::options().write(true).open(d.path().join("src/lib.rs")).unwrap();
        f.set_modified(SystemTime::now() - std::time::Duration::from_secs(10)).unwrap();
        Case { d, cache: MemCache::default() }
    }

    fn out(&self) -> std::path::PathBuf {
        self.d.path().join("out")
    }

    /// Runs the compile through the engine; returns the exit code.
    fn compile(&self) -> i32 {
        fs::create_dir_all(self.out()).unwrap();
        let p = |x: &Path| x.display().to_string();
        let args: Vec<OsString> = [
            "--crate-name",
            "demo",
            "--edition=2021",
            &p(&self.d.path().join("src/lib.rs")),
            "--crate-type",
            "lib",
            "--emit=dep-info,metadata,link",
            "-C",
            "extra-filename=-0123",
            "--out-dir",
            &p(&self.out()),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let Classified::Cacheable(inv) = args::classify(&args) else { panic!("not cacheable: {args:?}") };
        let rustc = toolchain::resolve_program(Path::new("rustc")).unwrap();
        let mut fe = Rustc::new(rustc, args, *inv, Some(self.d.path().join("cache"))).unwrap();
        Engine { cache: &self.cache, log: Some(self.d.path().join("log")) }.run(&mut fe)
    }

    fn words(&self) -> Vec<String> {
        log_words(&self.d.path().join("log"))
    }
}

#[test]
fn a_compile_misses_then_hits_with_the_same_bytes_and_runs_no_rustc() {
    let c = Case::new("pub fn f() -> u32 { 1 }\n");
    assert_eq!(c.compile(), 0);
    let rlib = c.out().join("libdemo-0123.rlib");
    let first = fs::read(&rlib).unwrap();
    for e in fs::read_dir(c.out()).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    assert_eq!(c.compile(), 0);
    assert_eq!(fs::read(&rlib).unwrap(), first, "the restored rlib is the compiled one");
    assert!(c.out().join("demo-0123.d").is_file() && c.out().join("libdemo-0123.rmeta").is_file());
    assert_eq!(c.words(), ["miss", "hit"]);
}

#[test]
fn a_damaged_result_is_replaced_by_a_new_compile() {
    let c = Case::new("pub fn f() -> u32 { 2 }\n");
    c.compile();
    c.cache.damage_all();
    assert_eq!(c.compile(), 0);
    assert_damaged_then_recompiled(&c.words());
}

#[test]
fn a_failed_compile_that_does_not_link_replays_its_failure() {
    let c = Case::new("pub fn f() -> u32 { \"not a number\" }\n");
    let code = c.compile();
    assert_ne!(code, 0);
    assert_eq!(c.compile(), code, "the same exit code, replayed");
    assert_eq!(c.words(), ["miss:failed", "hit:failed"]);
}

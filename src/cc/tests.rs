//! The C front end's flow with the real `cc` against a memory cache, no mount: a miss stores
//! the object, the same compile then hits and restores the same bytes without running the
//! compiler, a damaged result is replaced, and a failed compile is never stored.

use std::ffi::OsString;
use std::fs;
use std::process::Command;
use std::time::{Duration, SystemTime};

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
        fs::write(d.path().join("a.c"), source).unwrap();
        let f = fs::File::options().write(true).open(d.path().join("a.c")).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(10)).unwrap();
        Case { d, cache: MemCache::default() }
    }

    fn object(&self) -> std::path::PathBuf {
        self.d.path().join("a.o")
    }

    fn compile(&self) -> i32 {
        let args: Vec<OsString> = ["-O2", "-c", "-o", "a.o", "a.c"].iter().map(OsString::from).collect();
        let args::Classified::Cacheable(inv) = args::classify(&args) else { panic!("not cacheable") };
        let mut cmd = Command::new("cc");
        cmd.args(&args).current_dir(self.d.path());
        let memo = self.d.path().join("memo");
        let mut fe = CcCompile::new(Lang::C, vec!["cc".into()], cmd, inv, self.d.path().to_path_buf(), memo).unwrap();
        Engine { cache: &self.cache, log: Some(self.d.path().join("log")) }.run(&mut fe)
    }

    fn words(&self) -> Vec<String> {
        log_words(&self.d.path().join("log"))
    }
}

#[test]
fn an_object_misses_then_hits_with_the_same_bytes() {
    let c = Case::new("int f(void) { return 42; }\n");
    assert_eq!(c.compile(), 0);
    let first = fs::read(c.object()).unwrap();
    fs::remove_file(c.object()).unwrap();
    assert_eq!(c.compile(), 0);
    assert_eq!(fs::read(c.object()).unwrap(), first);
    assert_eq!(c.words(), ["miss", "hit"]);
}

#[test]
fn a_damaged_object_is_replaced_by_a_new_compile() {
    let c = Case::new("int g(void) { return 7; }\n");
    c.compile();
    c.cache.damage_all();
    assert_eq!(c.compile(), 0);
    assert_damaged_then_recompiled(&c.words());
}

#[test]
fn a_failed_compile_is_never_stored() {
    let c = Case::new("int h(void) { return }\n");
    assert_ne!(c.compile(), 0);
    assert!(c.cache.objects.borrow().is_empty());
    assert_ne!(c.compile(), 0);
    assert_eq!(c.words(), ["miss:failed", "miss:failed"]);
}

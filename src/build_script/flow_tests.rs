//! The build-script front end's flow with a real script (a shell script standing in for a
//! compiled build script) against a memory cache, no mount: a miss stores `OUT_DIR` and the
//! output, the same run then hits without running the script, a change to a declared input
//! reruns it, and a run during which its package changed is never stored.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;
use crate::engine::tests::{log_words, MemCache};
use crate::engine::Engine;

struct Case {
    d: tempfile::TempDir,
    cache: MemCache,
}

fn backdate(p: &Path) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(10)).unwrap();
}

impl Case {
    /// A package whose script copies `input.txt` into `OUT_DIR/gen.txt`, declares it, counts
    /// its runs outside the package, and (with `touch_package`) edits a package file.
    fn new(touch_package: bool) -> Case {
        let d = tempfile::tempdir().unwrap();
        let pkg = d.path().join("pkg");
        fs::create_dir_all(&pkg).unwrap();
        fs::write(pkg.join("Cargo.toml"), "[package]\nname = \"demo\"\n").unwrap();
        fs::write(pkg.join("input.txt"), "one").unwrap();
        let edit = if touch_package { "echo x >> \"$CARGO_MANIFEST_DIR/Cargo.toml\"\n" } else { "" };
        let script = format!(
            "#!/bin/sh\necho run >> \"{}\"\ncp \"$CARGO_MANIFEST_DIR/input.txt\" \"$OUT_DIR/gen.txt\"\n{edit}\
             echo cargo:rerun-if-changed=input.txt\necho cargo:rustc-cfg=demo\n",
            d.path().join("runs").display()
        );
        let bin = d.path().join("build/demo-1/build-script-build");
        fs::create_dir_all(bin.parent().unwrap()).unwrap();
        fs::write(&bin, script).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        for p in [pkg.join("Cargo.toml"), pkg.join("input.txt"), bin] {
            backdate(&p);
        }
        Case { d, cache: MemCache::default() }
    }

    fn out_dir(&self) -> PathBuf {
        self.d.path().join("build/demo-2/out")
    }

    fn run(&self) -> i32 {
        let pkg = self.d.path().join("pkg");
        fs::create_dir_all(self.out_dir()).unwrap();
        let rustc = crate::engine::toolchain::resolve_program(Path::new("rustc")).unwrap();
        let target = "x86_64-unknown-linux-gnu".to_string();
        let env: Vec<(String, String)> = [
            ("CARGO_PKG_NAME", "demo".to_string()),
            ("CARGO_MANIFEST_DIR", pkg.display().to_string()),
            ("OUT_DIR", self.out_dir().display().to_string()),
            ("TARGET", target.clone()),
            ("HOST", target),
            ("RUSTC", rustc.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let real = self.d.path().join("build/demo-1/build-script-build");
        let memo = self.d.path().join("memo");
        let mut fe = BuildScript::new(real, vec![], env, pkg, self.out_dir(), memo);
        Engine { cache: &self.cache, log: Some(self.d.path().join("log")) }.run(&mut fe)
    }

    fn runs(&self) -> usize {
        fs::read_to_string(self.d.path().join("runs")).unwrap_or_default().lines().count()
    }

    fn words(&self) -> Vec<String> {
        log_words(&self.d.path().join("log"))
    }
}

#[test]
fn a_run_misses_then_hits_without_running_the_script_and_restores_out_dir() {
    let c = Case::new(false);
    assert_eq!(c.run(), 0);
    assert_eq!(c.runs(), 1);
    fs::remove_dir_all(c.out_dir()).unwrap();
    assert_eq!(c.run(), 0);
    assert_eq!(c.runs(), 1, "the script did not run");
    assert_eq!(fs::read_to_string(c.out_dir().join("gen.txt")).unwrap(), "one");
    assert_eq!(c.words(), ["miss", "hit"]);
}

#[test]
fn a_changed_declared_input_reruns_the_script() {
    let c = Case::new(false);
    c.run();
    let input = c.d.path().join("pkg/input.txt");
    fs::write(&input, "two").unwrap();
    backdate(&input);
    c.run();
    assert_eq!(c.runs(), 2);
    assert_eq!(fs::read_to_string(c.out_dir().join("gen.txt")).unwrap(), "two");
    assert_eq!(c.words(), ["miss", "miss"]);
}

#[test]
fn a_run_during_which_its_package_changed_is_never_stored() {
    let c = Case::new(true);
    assert_eq!(c.run(), 0);
    assert!(c.cache.objects.borrow().is_empty(), "nothing stored");
    assert_eq!(c.words(), ["miss:changed"]);
}

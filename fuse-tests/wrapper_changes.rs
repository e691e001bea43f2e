//! Change detection: each kind of input change makes exactly the affected crates miss (the
//! `probe` library and the `app` binary linked from it), the others hit, and the program
//! reflects the change.

use std::path::PathBuf;
use std::process::Command;

use crate::workspace::{cacheable, cargo, ensure_warm, lock, log_path, mount, ok, read_log, run_app, ws, Line};

/// Restores a file when dropped.
struct Restore(PathBuf, String);
impl Drop for Restore {
    fn drop(&mut self) {
        std::fs::write(&self.0, &self.1).unwrap();
    }
}

fn edit(rel: &str, from: &str, to: &str) -> Restore {
    let p = ws().root.join(rel);
    let old = std::fs::read_to_string(&p).unwrap();
    assert!(old.contains(from), "{rel} lacks {from:?}");
    std::fs::write(&p, old.replace(from, to)).unwrap();
    Restore(p, old)
}

/// Cleans, builds with `tweak`, and returns the log lines.
fn rebuild(m: &crate::common::Mount, name: &str, args: &[&str], tweak: impl FnOnce(&mut Command)) -> Vec<Line> {
    ok(cargo(None, "t-main", &log_path("x"), &["clean"]));
    let log = log_path(name);
    let mut c = cargo(Some(m), "t-main", &log, args);
    tweak(&mut c);
    ok(c);
    read_log(&log)
}

fn assert_only_probe_missed(lines: &[Line]) {
    assert_only_missed(lines, &["probe", "app"]);
}

/// `probe` misses; nothing outside `allowed` does; nothing is left uncached.
fn assert_only_missed(lines: &[Line], allowed: &[&str]) {
    let c = cacheable(lines);
    let probe: Vec<_> = c.iter().filter(|l| l.krate == "probe").collect();
    assert_eq!(probe.len(), 1, "{lines:?}");
    assert_eq!(probe[0].outcome, "miss", "probe must recompile: {lines:?}");
    let others: Vec<_> = c.iter().filter(|l| !allowed.contains(&l.krate.as_str()) && l.outcome != "hit").collect();
    assert!(others.is_empty(), "only {allowed:?} may miss: {others:?}");
    assert!(c.len() >= 25);
}

#[test]
fn a_source_edit_misses_only_that_crate() {
    let _g = lock();
    let Some(m) = mount("a_source_edit_misses_only_that_crate") else {
        return;
    };
    ensure_warm(&m);
    let _r = edit("probe/src/lib.rs", "    1\n", "    2\n");
    assert_only_probe_missed(&rebuild(&m, "edit", &["build"], |_| {}));
    assert!(run_app("t-main").contains("\"edited\":2"));
    // `cairn why` names the file. (Other tests' builds of probe are in its history too, so
    // the nearest earlier build may differ in more than this file.)
    let why = ok({
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.args(["why", "probe"]).env("XDG_CACHE_HOME", &ws().xdg);
        c
    });
    let text = String::from_utf8(why.stdout).unwrap();
    assert!(text.starts_with("probe (lib) compiled "), "{text}");
    assert!(text.lines().any(|l| l.starts_with("  changed  source ") && l.contains("probe/src/lib.rs")), "{text}");
}

#[test]
fn a_same_size_rewrite_with_its_mtime_put_back_misses() {
    let _g = lock();
    let Some(m) = mount("a_same_size_rewrite_with_its_mtime_put_back_misses") else {
        return;
    };
    ensure_warm(&m);
    // What `cp -p`, `rsync -t` and safe-saving editors do: new content of the same size, the
    // old mtime put back.
    let path = ws().root.join("probe/src/lib.rs");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let _r = edit("probe/src/lib.rs", "    1\n", "    3\n");
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
    assert_only_probe_missed(&rebuild(&m, "same-size", &["build"], |_| {}));
    assert!(run_app("t-main").contains("\"edited\":3"));
}

#[test]
fn target_cpu_native_is_cached_and_hits_on_this_machine() {
    let _g = lock();
    let Some(m) = mount("target_cpu_native_is_cached_and_hits_on_this_machine") else {
        return;
    };
    ensure_warm(&m);
    let native = |c: &mut Command| {
        c.env("RUSTFLAGS", "-C target-cpu=native");
    };
    // The first build compiles for this CPU (the flag changes every crate), the second hits:
    // `native` resolves the same on the same machine. That another CPU gets another key is
    // native_cpu.rs's unit test: one machine cannot be two CPUs.
    rebuild(&m, "native1", &["build"], native);
    let lines = rebuild(&m, "native2", &["build"], native);
    let c = cacheable(&lines);
    assert!(c.len() >= 25 && c.iter().all(|l| l.outcome == "hit"), "{lines:?}");
    assert!(run_app("t-main").contains("\"edited\":1"));
}

#[test]
fn an_include_str_file_edit_misses_only_that_crate() {
    let _g = lock();
    let Some(m) = mount("an_include_str_file_edit_misses_only_that_crate") else {
        return;
    };
    ensure_warm(&m);
    let _r = edit("probe/src/data.txt", "data-one", "data-two");
    assert_only_probe_missed(&rebuild(&m, "include", &["build"], |_| {}));
    assert!(run_app("t-main").contains("data-two"));
}

#[test]
fn an_env_variable_read_by_the_crate_misses_only_that_crate() {
    let _g = lock();
    let Some(m) = mount("an_env_variable_read_by_the_crate_misses_only_that_crate") else {
        return;
    };
    ensure_warm(&m);
    assert_only_probe_missed(&rebuild(&m, "env", &["build"], |c| {
        c.env("PROBE_VAR", "set-by-test");
    }));
    assert!(run_app("t-main").contains("set-by-test"));
}

#[test]
fn a_cargo_feature_misses_only_that_crate() {
    let _g = lock();
    let Some(m) = mount("a_cargo_feature_misses_only_that_crate") else {
        return;
    };
    ensure_warm(&m);
    // The feature reaches probe's build script as a --cfg too, so that compile misses as well.
    let lines = rebuild(&m, "feature", &["build", "--features", "probe/extra"], |_| {});
    assert_only_missed(&lines, &["probe", "app", "build_script_build"]);
    assert!(run_app("t-main").contains("\"extra\":true"));
}

#[test]
fn a_build_script_whose_output_changes_misses_only_that_crate() {
    let _g = lock();
    let Some(m) = mount("a_build_script_whose_output_changes_misses_only_that_crate") else {
        return;
    };
    ensure_warm(&m);
    assert_only_probe_missed(&rebuild(&m, "buildrs", &["build"], |c| {
        c.env("PROBE_GEN", "two");
    }));
    assert!(run_app("t-main").contains("gen-two"));
}

/// A toolchain folder that runs the real compiler but whose sysroot has one library of its
/// own: changing that library must change every key.
#[test]
fn a_different_sysroot_library_misses() {
    let _g = lock();
    let Some(m) = mount("a_different_sysroot_library_misses") else {
        return;
    };
    let sysroot = String::from_utf8(
        ok({
            let mut c = Command::new("rustc");
            c.args(["--print", "sysroot"]);
            c
        })
        .stdout,
    )
    .unwrap();
    let sysroot = PathBuf::from(sysroot.trim());
    let host = String::from_utf8(Command::new("rustc").arg("-vV").output().unwrap().stdout).unwrap();
    let host = host.lines().find_map(|l| l.strip_prefix("host: ")).unwrap().to_string();
    let fake = ws().root.parent().unwrap().join("faketc");
    let _ = std::fs::remove_dir_all(&fake);
    let rustlib = format!("lib/rustlib/{host}/lib");
    for sub in ["lib", rustlib.as_str()] {
        std::fs::create_dir_all(fake.join(sub)).unwrap();
        for e in std::fs::read_dir(sysroot.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::os::unix::fs::symlink(&p, fake.join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::create_dir_all(fake.join("bin")).unwrap();
    let script = fake.join("bin/rustc");
    std::fs::write(&script, format!("#!/bin/sh\nexec {} \"$@\"\n", sysroot.join("bin/rustc").display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let lib = fake.join("lib/libcairn-test-extra.so");
    std::fs::write(&lib, b"version one").unwrap();
    let build = |name: &str| {
        rebuild(&m, name, &["build", "-p", "probe"], |c| {
            c.env("RUSTC", &script);
        })
    };
    let probe = |lines: &[Line]| cacheable(lines).iter().find(|l| l.krate == "probe").map(|l| l.outcome.clone());
    build("fake1");
    assert_eq!(probe(&build("fake2")).as_deref(), Some("hit"), "the same toolchain hits");
    std::fs::write(&lib, b"version two").unwrap();
    assert_eq!(probe(&build("fake3")).as_deref(), Some("miss"), "a changed sysroot library misses");
    // Deeper in the sysroot: the self-contained linker under rustlib/<host>/bin/gcc-ld.
    let ld = fake.join(format!("lib/rustlib/{host}/bin/gcc-ld/ld.lld"));
    std::fs::create_dir_all(ld.parent().unwrap()).unwrap();
    std::fs::write(&ld, b"lld one").unwrap();
    build("fake4");
    assert_eq!(probe(&build("fake5")).as_deref(), Some("hit"));
    std::fs::write(&ld, b"lld number two").unwrap();
    assert_eq!(probe(&build("fake6")).as_deref(), Some("miss"), "a changed self-contained linker misses");
}

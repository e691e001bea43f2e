//! User settings do not split the cache: another `CARGO_TERM_COLOR`, or another target dir.

use std::collections::BTreeSet;

use crate::workspace::{cacheable, cargo, ensure_warm, lock, log_path, mount, ok, read_log, run_app, ws};

#[test]
fn another_term_color_hits_every_crate() {
    let _g = lock();
    let Some(m) = mount("another_term_color_hits_every_crate") else {
        return;
    };
    ensure_warm(&m);
    ok(cargo(None, "t-main", &log_path("x"), &["clean"]));
    let log = log_path("color");
    let mut c = cargo(Some(&m), "t-main", &log, &["build"]);
    c.env("CARGO_TERM_COLOR", "always");
    ok(c);
    let lines = read_log(&log);
    let missed: Vec<_> = cacheable(&lines).into_iter().filter(|l| l.outcome != "hit").collect();
    assert!(missed.is_empty(), "{missed:?}");
}

/// In another target dir every compile hits, including the crates that `include!` code their
/// build script generated into `OUT_DIR` (serde, serde_json, the workspace's `probe`): rustc
/// writes the target dir as `/cargo/build-dir`, so nothing in their artifacts names it, and
/// `OUT_DIR` enters their keys relative to it (docs/cache-key.md, "One cache for a team").
#[test]
fn another_target_dir_hits_every_crate() {
    let _g = lock();
    let Some(m) = mount("another_target_dir_hits_every_crate") else {
        return;
    };
    ensure_warm(&m);
    let target = "t-other";
    let _ = std::fs::remove_dir_all(ws().root.join(target));
    let log = log_path("other-target");
    ok(cargo(Some(&m), target, &log, &["build"]));
    let lines = read_log(&log);
    // The crates that read OUT_DIR are among them (else this test proves less than it says).
    let mut reads_out_dir = BTreeSet::new();
    for e in std::fs::read_dir(ws().root.join(target).join("debug/deps")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "d")
            && std::fs::read_to_string(&p).unwrap().contains("# env-dep:OUT_DIR=")
        {
            reads_out_dir.insert(p.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(reads_out_dir.len() >= 2, "{reads_out_dir:?}");
    let c = cacheable(&lines);
    let missed: Vec<_> = lines.iter().filter(|l| !l.outcome.starts_with("hit")).collect();
    assert!(missed.is_empty(), "misses in another target dir: {missed:?}");
    assert!(c.len() >= 25, "{lines:?}");
    ok(cargo(Some(&m), "t-main", &log_path("x"), &["build"]));
    assert_eq!(run_app(target), run_app("t-main"));
}

/// The same toolchain at another path (another `RUSTUP_HOME`): every compile hits, because the
/// toolchain enters keys by its files' contents, named inside the sysroot.
#[test]
fn the_same_toolchain_at_another_path_hits_every_crate() {
    let _g = lock();
    let Some(m) = mount("the_same_toolchain_at_another_path_hits_every_crate") else {
        return;
    };
    ensure_warm(&m);
    let sysroot = String::from_utf8(
        ok({
            let mut c = std::process::Command::new("rustc");
            c.args(["--print", "sysroot"]);
            c
        })
        .stdout,
    )
    .unwrap();
    let sysroot = std::path::Path::new(sysroot.trim());
    let copy = ws().root.parent().unwrap().join("other-rustup/toolchains/same");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    // Hard links where the file system allows (instant), else a real copy.
    let linked = std::process::Command::new("cp").arg("-al").arg(sysroot).arg(&copy).status().unwrap();
    if !linked.success() {
        let _ = std::fs::remove_dir_all(&copy);
        ok({
            let mut c = std::process::Command::new("cp");
            c.arg("-a").arg(sysroot).arg(&copy);
            c
        });
    }
    let rustc = copy.join("bin/rustc");
    let moved = String::from_utf8(
        ok({
            // (The test runner's LD_LIBRARY_PATH names the first toolchain's libraries: the
            // copy would load those and call that its sysroot.)
            let mut c = std::process::Command::new(&rustc);
            c.args(["--print", "sysroot"]).env_remove("LD_LIBRARY_PATH");
            c
        })
        .stdout,
    )
    .unwrap();
    assert_eq!(std::path::Path::new(moved.trim()), copy, "the copy is a toolchain of its own");
    let target = "t-toolchain";
    let _ = std::fs::remove_dir_all(ws().root.join(target));
    let log = log_path("other-toolchain");
    let mut c = cargo(Some(&m), target, &log, &["build"]);
    c.env("RUSTC", &rustc).env_remove("LD_LIBRARY_PATH");
    ok(c);
    let lines = read_log(&log);
    let missed: Vec<_> = lines.iter().filter(|l| !l.outcome.starts_with("hit")).collect();
    assert!(missed.is_empty(), "misses with the toolchain at another path: {missed:?}");
    assert!(cacheable(&lines).len() >= 25, "{lines:?}");
    let _ = std::fs::remove_dir_all(ws().root.parent().unwrap().join("other-rustup"));
}

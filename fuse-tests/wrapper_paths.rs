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

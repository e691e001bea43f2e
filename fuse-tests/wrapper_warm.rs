//! After `cargo clean`, a build with a full cache hits every compile — libraries, proc-macros,
//! build scripts and the binary — so rustc runs zero times; it produces the same binary as
//! plain cargo given the path remapping cairn applies (cargo's `trim-paths` forms), and leaves
//! cargo nothing to do afterwards. The same through the daemon's socket, where FUSE cannot be
//! used.

use crate::common::Via;
use crate::workspace::{cacheable, cargo, ensure_warm, lock, log_path, mount_via, ok, read_log, ws};

#[test]
fn warm_build_after_clean_runs_rustc_zero_times_and_matches_plain_cargo() {
    warm_build("warm_build_after_clean_runs_rustc_zero_times_and_matches_plain_cargo", Via::Mount);
}

#[test]
fn without_fuse_a_warm_build_after_clean_runs_rustc_zero_times_and_matches_plain_cargo() {
    warm_build("without_fuse_a_warm_build_after_clean_runs_rustc_zero_times_and_matches_plain_cargo", Via::Socket);
}

fn warm_build(test: &str, via: Via) {
    let _g = lock();
    let Some(m) = mount_via(test, via) else {
        return;
    };
    // Plain cargo first, from clean, in the same target dir, as the reference. (Other tests
    // leave wrapper-built artifacts there that cargo would otherwise call fresh.)
    ok(cargo(None, "t-main", &log_path("x"), &["clean"]));
    let mut plain_build = cargo(None, "t-main", &log_path("plain"), &["build"]);
    plain_build.env("RUSTFLAGS", trim_paths_flags());
    ok(plain_build);
    let plain = std::fs::read(ws().root.join("t-main/debug/app")).unwrap();
    ok(cargo(None, "t-main", &log_path("x"), &["clean"]));
    ensure_warm(&m);
    ok(cargo(None, "t-main", &log_path("x"), &["clean"]));
    let log = log_path("warm");
    ok(cargo(Some(&m), "t-main", &log, &["build"]));
    let lines = read_log(&log);
    let c = cacheable(&lines);
    assert!(c.len() >= 25, "expected at least 25 cacheable compiles, got {}: {lines:?}", c.len());
    let missed: Vec<_> = c.iter().filter(|l| l.outcome != "hit").collect();
    assert!(missed.is_empty(), "every cacheable compile should hit: {missed:?}");
    let ran_rustc: Vec<_> = lines.iter().filter(|l| !l.outcome.starts_with("hit")).collect();
    assert!(ran_rustc.is_empty(), "rustc ran (not cached or missed): {ran_rustc:?}");
    for kind in ["app", "build_script_build", "serde_derive", "clap_derive"] {
        assert!(c.iter().any(|l| l.krate == kind), "{kind} (bin, build script, proc-macro) is cached");
    }
    assert_eq!(std::fs::read(ws().root.join("t-main/debug/app")).unwrap(), plain, "same binary as plain cargo");
    // Cargo considers everything fresh: a further build runs no compiler at all.
    let again = log_path("again");
    let out = ok(cargo(Some(&m), "t-main", &again, &["build", "-v"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Running `"), "cargo recompiled something:\n{stderr}");
    assert!(read_log(&again).is_empty());
}

/// The `--remap-path-prefix` flags cairn gives rustc in this workspace (docs/cache-key.md:
/// checkout `.`, `CARGO_HOME` `/cargo`, target dir `/cargo/build-dir`, most specific last), for
/// plain cargo through RUSTFLAGS. Written out here, not taken from cairn, so the test checks it.
fn trim_paths_flags() -> String {
    let home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap().trim_end_matches('/')));
    let root = ws().root.display().to_string();
    let mut roots = [(root.clone(), "."), (home, "/cargo"), (format!("{root}/t-main"), "/cargo/build-dir")];
    roots.sort_by_key(|(p, _)| p.len());
    roots.iter().map(|(p, to)| format!("--remap-path-prefix={p}={to}")).collect::<Vec<_>>().join(" ")
}

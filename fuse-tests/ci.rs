//! The CI recipe of docs/ci.md (scripts/ci-build) as a CI system would run it: a writer runner
//! that starts empty fills the bucket and returns only when its uploads are there; a
//! pull-request runner that starts empty, reads the bucket and never writes it, builds with
//! hits only.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::can_mount;
use crate::s3server::{credentials, S3Server};
use crate::workspace::{cacheable, lock, ok, read_log, ws};

fn ci_build(server: &S3Server, dir: &Path, target: &str, log: &Path, read_only: bool) -> Output {
    let w = ws();
    let mut c = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ci-build"));
    c.args(["cargo", "build", "-p", "probe"]).current_dir(&w.root);
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k.starts_with("CAIRN_") || k == "RUSTC_WRAPPER" {
            c.env_remove(k);
        }
    }
    c.env("CARGO_TARGET_DIR", w.root.join(target))
        .env("XDG_CACHE_HOME", &w.xdg)
        .env("CAIRN_BIN_DIR", Path::new(env!("CARGO_BIN_EXE_cairn")).parent().unwrap())
        .env("CAIRN_CI_DIR", dir)
        .env("CAIRN_CONFIG", "/nonexistent/cairn.toml")
        .env("CAIRN_LOG", log)
        .env("CAIRN_SEED", "0")
        .env("CAIRN_S3_BUCKET", "team")
        .env("CAIRN_S3_ENDPOINT", &server.endpoint)
        .envs(credentials());
    if read_only {
        c.env("CAIRN_S3_READ_ONLY", "1");
    }
    ok(c)
}

/// Whether a process was started with `store` among its arguments (the CI runner's daemon).
fn daemon_running_on(store: &Path) -> bool {
    let needle = store.to_str().unwrap().as_bytes();
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { return false };
        let state = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        !state.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'))
            && cmd.windows(needle.len()).any(|w| w == needle)
    })
}

fn objects_in(server: &S3Server) -> usize {
    std::fs::read_dir(server.root.join("team")).unwrap().count()
}

#[test]
fn a_writer_runner_fills_the_bucket_and_a_read_only_pr_runner_builds_from_it() {
    if !can_mount("a_writer_runner_fills_the_bucket_and_a_read_only_pr_runner_builds_from_it") {
        return;
    }
    let _g = lock();
    let server = S3Server::start("team");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (log_a, log_b) = (a.path().join("a.log"), b.path().join("b.log"));
    for t in ["t-ci-a", "t-ci-b"] {
        let _ = std::fs::remove_dir_all(ws().root.join(t));
    }
    let out = ci_build(&server, a.path(), "t-ci-a", &log_a, false);
    let stats = String::from_utf8_lossy(&out.stdout);
    assert!(stats.contains("cairn cache at"), "the script shows the cache's stats:\n{stats}");
    let store = a.path().join("store");
    assert!(!daemon_running_on(&store), "the script returned while its daemon was still finishing");
    let filled = objects_in(&server);
    assert!(filled > 0, "the writer's uploads are in the bucket when the script returns");
    assert!(!Path::new(&a.path().join("mnt")).join(".cairn").exists(), "unmounted");

    ci_build(&server, b.path(), "t-ci-b", &log_b, true);
    let lines = read_log(&log_b);
    let c = cacheable(&lines);
    assert!(!c.is_empty() && c.iter().all(|l| l.outcome == "hit"), "a fresh PR runner hits every crate: {c:?}");
    assert_eq!(objects_in(&server), filled, "the read-only runner wrote nothing");
}

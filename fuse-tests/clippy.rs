//! `cargo clippy` through the cache: a warm run after `cargo clean` replays exactly the lints a
//! fresh run prints, and a changed lint level or clippy.toml is a miss, never a stale replay.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::mount;
use crate::workspace::{cargo_in, read_log_all, Line};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A crate with a default clippy warning (`needless_return`) and a function that only a
/// `clippy.toml` setting flags (`too_many_arguments` with a threshold of 1).
fn project(root: &Path) {
    let _ = std::fs::remove_dir_all(root);
    write(&root.join("Cargo.toml"), "[package]\nname = \"linted\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
    write(
        &root.join("src/lib.rs"),
        "pub fn one() -> i32 {\n    return 1;\n}\n\npub fn two(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
    );
}

/// The clippy lines of a run's log.
fn clippy_lines(log: &Path) -> Vec<Line> {
    read_log_all(log).into_iter().filter(|l| l.kind == "clippy").collect()
}

/// The warning and error lines cargo printed (not its progress lines, which name times).
fn lints(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("warning") || l.starts_with("error") || l.trim_start().starts_with("-->"))
        .map(String::from)
        .collect()
}

#[test]
fn a_warm_cargo_clippy_replays_the_same_lints_and_a_changed_lint_level_or_config_misses() {
    let Some(m) = mount("clippy", "1GiB") else { return };
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clippy");
    let root = base.join("p");
    project(&root);
    let xdg = base.join("xdg");
    let logs = base.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let run = |name: &str, args: &[&str], wrapped: bool| -> (Output, Vec<Line>) {
        let log = logs.join(format!("{name}.log"));
        let _ = std::fs::remove_file(&log);
        let mut c: Command = cargo_in(&root, &xdg, wrapped.then_some(&m), "target", &log, &["clean"]);
        assert!(c.status().unwrap().success());
        let mut c = cargo_in(&root, &xdg, wrapped.then_some(&m), "target", &log, args);
        let out = c.output().unwrap();
        (out, clippy_lines(&log))
    };

    let (plain, _) = run("plain", &["clippy"], false);
    assert!(plain.status.success());
    let expected = lints(&plain);
    assert!(expected.iter().any(|l| l.contains("needless_return") || l.contains("unneeded `return`")), "{expected:?}");

    let (cold, lines) = run("cold", &["clippy"], true);
    assert!(cold.status.success());
    assert_eq!(lints(&cold), expected, "the cold run prints what plain clippy prints");
    assert!(!lines.is_empty() && lines.iter().all(|l| l.outcome == "miss"), "{lines:?}");

    let (warm, lines) = run("warm", &["clippy"], true);
    assert!(warm.status.success());
    assert!(!lines.is_empty() && lines.iter().all(|l| l.outcome == "hit"), "clippy ran again: {lines:?}");
    assert_eq!(lints(&warm), expected, "the warm run replays exactly the same lints");

    // Denying the lint is a new key: clippy runs and fails, nothing stale is replayed.
    let (denied, lines) = run("denied", &["clippy", "--", "-D", "clippy::needless_return"], true);
    assert!(!denied.status.success(), "a denied lint fails the run");
    assert!(!lines.is_empty() && lines.iter().all(|l| l.outcome == "miss:failed"), "{lines:?}");
    let (denied_again, lines) = run("denied-again", &["clippy", "--", "-D", "clippy::needless_return"], true);
    assert!(!denied_again.status.success(), "the stored failure replays as a failure");
    assert!(lines.iter().all(|l| l.outcome == "hit:failed"), "{lines:?}");
    assert_eq!(lints(&denied_again), lints(&denied));

    // A clippy.toml that lowers a threshold: a miss, and the new lint is printed.
    write(&root.join("clippy.toml"), "too-many-arguments-threshold = 1\n");
    let (configured, lines) = run("configured", &["clippy"], true);
    assert!(configured.status.success());
    assert!(!lines.is_empty() && lines.iter().all(|l| l.outcome == "miss"), "{lines:?}");
    assert!(lints(&configured).iter().any(|l| l.contains("too many arguments")), "{:?}", lints(&configured));
    std::fs::remove_file(root.join("clippy.toml")).unwrap();
    let (back, lines) = run("back", &["clippy"], true);
    assert!(lines.iter().all(|l| l.outcome == "hit"), "back to the first configuration: {lines:?}");
    assert_eq!(lints(&back), expected);
}

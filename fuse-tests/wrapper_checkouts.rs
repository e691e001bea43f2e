//! One cache for a team: another checkout path, `CARGO_HOME` and target dir hit with no setting;
//! under one `CAIRN_BASEDIR` a second checkout compiles nothing the first built.

use crate::workspace::{cacheable, cargo, lock, log_path, mount, ok, read_log, read_log_all, ws};

/// The workspace's sources, without its lock file (each checkout resolves its own).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    crate::workspace::copy_sources(from, to, &["Cargo.lock"]);
}

#[test]
fn a_second_checkout_under_one_basedir_compiles_nothing_the_first_built() {
    let _g = lock();
    let Some(m) = mount("a_second_checkout_under_one_basedir_compiles_nothing_the_first_built") else {
        return;
    };
    let clones = ws().root.parent().unwrap().join("clones");
    let _ = std::fs::remove_dir_all(&clones);
    let (a, b) = (clones.join("first/proj"), clones.join("second/proj"));
    copy_dir(&ws().root, &a);
    copy_dir(&ws().root, &b);
    let build = |dir: &std::path::Path, name: &str| {
        let log = log_path(name);
        let mut c = cargo(Some(&m), "unused", &log, &["build"]);
        c.current_dir(dir).env("CARGO_TARGET_DIR", dir.join("target")).env("CAIRN_BASEDIR", &clones);
        ok(c);
        let out = ok(std::process::Command::new(dir.join("target/debug/app")));
        (read_log(&log), out.stdout)
    };
    let (_, out_a) = build(&a, "clone-a");
    let (lines, out_b) = build(&b, "clone-b");
    let c = cacheable(&lines);
    assert!(c.len() >= 25);
    let missed: Vec<_> = lines.iter().filter(|l| !l.outcome.starts_with("hit")).collect();
    assert!(missed.is_empty(), "the second checkout compiled: {missed:?}");
    assert_eq!(out_a, out_b);
    // Restored dep-info names the second checkout only, so cargo tracks the right files.
    for e in std::fs::read_dir(b.join("target/debug/deps")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "d") {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(!text.contains(a.to_str().unwrap()), "{} names the first checkout", p.display());
        }
    }
}

/// A teammate: another checkout path, another `CARGO_HOME` (registry sources unpacked at
/// another path), another target dir and build dir, with no setting at all. Nearly every compile and
/// every build-script run hits, the program is the same, and restored dep-info names only this
/// machine's folders.
#[test]
fn a_teammates_checkout_home_and_target_dir_hit_with_no_setting() {
    let _g = lock();
    let Some(m) = mount("a_teammates_checkout_home_and_target_dir_hit_with_no_setting") else {
        return;
    };
    let base = ws().root.parent().unwrap().join("teammate");
    let _ = std::fs::remove_dir_all(&base);
    let (a, b) = (base.join("alice/proj"), base.join("bob/src/work/proj"));
    copy_dir(&ws().root, &a);
    copy_dir(&ws().root, &b);
    // Bob's CARGO_HOME holds the same registry (index and downloaded .crate files, shared by
    // symlink), but cargo unpacks the sources under it, at a path of its own.
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let bob_home = base.join("bob/cargo-home");
    std::fs::create_dir_all(bob_home.join("registry")).unwrap();
    for part in ["index", "cache"] {
        std::os::unix::fs::symlink(home.join("registry").join(part), bob_home.join("registry").join(part)).unwrap();
    }
    // Bob also keeps cargo's intermediate files in a build dir of his own (`build.build-dir`).
    let bob_build_dir = base.join("bob/intermediate");
    let build = |dir: &std::path::Path, target: &std::path::Path, cargo_home: Option<&std::path::Path>, name: &str| {
        let log = log_path(name);
        let mut c = cargo(Some(&m), "unused", &log, &["build", "--offline"]);
        c.current_dir(dir).env("CARGO_TARGET_DIR", target);
        if let Some(h) = cargo_home {
            c.env("CARGO_HOME", h).env("CARGO_BUILD_BUILD_DIR", &bob_build_dir);
        }
        ok(c);
        let out = ok(std::process::Command::new(target.join("debug/app")));
        (read_log_all(&log), out.stdout)
    };
    let (_, out_a) = build(&a, &a.join("target"), None, "teammate-a");
    let bob_target = base.join("bob/build-output");
    let (lines, out_b) = build(&b, &bob_target, Some(&bob_home), "teammate-b");
    let scripts: Vec<_> = lines.iter().filter(|l| l.kind == "build-script").collect();
    assert!(scripts.len() >= 3 && scripts.iter().all(|l| l.outcome == "hit"), "build-script runs: {scripts:?}");
    assert!(bob_home.join("registry/src").is_dir(), "the sources were unpacked in Bob's home");
    let rustc: Vec<_> = lines.iter().filter(|l| l.kind == "rustc").cloned().collect();
    let c = cacheable(&rustc);
    assert!(c.len() >= 25, "{lines:?}");
    let hits = c.iter().filter(|l| l.outcome == "hit").count();
    let missed: Vec<_> = rustc.iter().filter(|l| !l.outcome.starts_with("hit")).collect();
    assert!(hits * 100 >= c.len() * 95, "{hits} of {} hit; missed: {missed:?}", c.len());
    assert_eq!(out_a, out_b);
    for e in std::fs::read_dir(bob_build_dir.join("debug/deps")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "d") {
            let text = std::fs::read_to_string(&p).unwrap();
            for other in [a.to_str().unwrap(), home.to_str().unwrap()] {
                assert!(!text.contains(&format!("{other}/")), "{} names {other}:\n{text}", p.display());
            }
        }
    }
}

/// Two crates that read `CARGO_MANIFEST_DIR`: `shows` keeps it as a string (the program prints
/// it), `uses` only to `include_str!` a file of its own. In a second checkout `shows` must
/// miss and print the second checkout's path; `uses`, whose artifact holds no path, hits.
#[test]
fn a_path_the_program_can_see_is_never_served_to_another_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let Some(m) = crate::common::mount_store("a_path_the_program_can_see", None, "1GiB", &[]) else { return };
    let write = |p: std::path::PathBuf, text: &str| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let (a, b, xdg) = (dir.path().join("a/proj"), dir.path().join("bee/work/proj"), dir.path().join("xdg"));
    for root in [&a, &b] {
        write(root.join("Cargo.toml"), "[workspace]\nmembers = [\"shows\", \"uses\"]\nresolver = \"2\"\n");
        write(root.join("uses/Cargo.toml"), "[package]\nname = \"uses\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
        write(root.join("uses/greeting.txt"), "hello");
        write(
            root.join("uses/src/lib.rs"),
            "pub const GREETING: &str = include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/greeting.txt\"));\n",
        );
        write(
            root.join("shows/Cargo.toml"),
            "[package]\nname = \"shows\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nuses = { path = \"../uses\" }\n",
        );
        write(
            root.join("shows/src/main.rs"),
            "fn main() {\n    println!(\"{} from {}\", uses::GREETING, env!(\"CARGO_MANIFEST_DIR\"));\n}\n",
        );
    }
    let build = |root: &std::path::Path, name: &str| {
        let log = dir.path().join(format!("{name}.log"));
        ok(crate::workspace::cargo_in(root, &xdg, Some(&m), "target", &log, &["build"]));
        let out = ok(std::process::Command::new(root.join("target/debug/shows")));
        (String::from_utf8_lossy(&out.stdout).into_owned(), crate::workspace::read_log(&log))
    };
    let (out_a, _) = build(&a, "a");
    assert_eq!(out_a, format!("hello from {}\n", a.join("shows").display()));
    let (out_b, lines) = build(&b, "b");
    assert_eq!(out_b, format!("hello from {}\n", b.join("shows").display()), "a path from the other checkout");
    let outcome = |k: &str| lines.iter().find(|l| l.krate == k).map(|l| l.outcome.clone());
    assert_eq!(outcome("uses").as_deref(), Some("hit"), "{lines:?}");
    assert_eq!(outcome("shows").as_deref(), Some("miss"), "{lines:?}");
}

//! Two checkouts of one project at different paths share the cache under one
//! `CAIRN_BASEDIR`: the second compiles nothing the first built.

use crate::workspace::{cacheable, cargo, lock, log_path, mount, ok, read_log, ws};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name.to_string_lossy().starts_with("t-") || name == "target" || name == "Cargo.lock" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
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

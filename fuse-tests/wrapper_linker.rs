//! A linker that changes (here: its version) makes exactly the crates that link miss.

use crate::workspace::{cacheable, cargo, ensure_warm, lock, log_path, mount, ok, read_log, ws};

#[test]
fn a_changed_linker_makes_the_linked_crates_miss() {
    let _g = lock();
    let Some(m) = mount("a_changed_linker_makes_the_linked_crates_miss") else {
        return;
    };
    ensure_warm(&m);
    let linker = ws().root.parent().unwrap().join("mylinker");
    let write = |version: &str| {
        std::fs::write(
            &linker,
            format!("#!/bin/sh\n[ \"$1\" = --version ] && {{ echo '{version}'; exit 0; }}\nexec cc \"$@\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&linker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    let host = String::from_utf8(std::process::Command::new("rustc").arg("-vV").output().unwrap().stdout).unwrap();
    let host = host.lines().find_map(|l| l.strip_prefix("host: ")).unwrap().to_uppercase().replace('-', "_");
    let build = |name: &str| {
        ok(cargo(None, "t-main", &log_path("x"), &["clean"]));
        let log = log_path(name);
        let mut c = cargo(Some(&m), "t-main", &log, &["build"]);
        c.env(format!("CARGO_TARGET_{host}_LINKER"), &linker);
        ok(c);
        read_log(&log)
    };
    write("mylinker 1.0");
    build("linker-1");
    let same = build("linker-1-again");
    let compiles = cacheable(&same);
    assert!(!compiles.is_empty() && compiles.iter().all(|l| l.outcome == "hit"), "the same linker hits: {same:?}");
    write("mylinker 2.0");
    let lines = build("linker-2");
    let c = cacheable(&lines);
    // Linked: the app binary, build scripts and proc-macros. Libraries do not link.
    let linked = ["app", "build_script_build", "serde_derive", "clap_derive"];
    for l in &c {
        let expect = if linked.contains(&l.krate.as_str()) { "miss" } else { "hit" };
        assert_eq!(l.outcome, expect, "{} after a linker change", l.krate);
    }
    assert!(c.iter().filter(|l| l.outcome == "hit").count() >= 20);
}

//! Build scripts and the C they compile (fixture: csys.rs). A warm build runs no build script
//! and no C compiler; every change to a script's inputs reruns exactly that script and gives
//! what plain cargo gives from clean; a failing script is never replayed; `rm` of one entry
//! reruns just that script. The warm build and the other checkout run through the socket too,
//! where FUSE cannot be used.

use std::process::Command;

use crate::common::Via;
use crate::csys::{
    cargo, clean_build_run, count_lines, csys, lock, log_path, mount, mount_via, mycc_log, runs_file, write, write_mycc,
};
use crate::workspace::{ok, read_log_all, Line};

fn script_lines<'a>(lines: &'a [Line], krate: &str) -> Vec<&'a Line> {
    lines.iter().filter(|l| l.kind == "build-script" && l.krate == krate).collect()
}

fn no_tweak(_: &mut Command) {}

#[test]
fn a_warm_build_runs_no_build_script_and_no_c_compiler() {
    warm_no_script("a_warm_build_runs_no_build_script_and_no_c_compiler", Via::Mount);
}

#[test]
fn without_fuse_a_warm_build_runs_no_build_script_and_no_c_compiler() {
    warm_no_script("without_fuse_a_warm_build_runs_no_build_script_and_no_c_compiler", Via::Socket);
}

fn warm_no_script(test: &str, via: Via) {
    let _g = lock();
    let Some(m) = mount_via(test, via) else { return };
    let plain = clean_build_run(None, "t-plain", "app", &log_path("plain"), &no_tweak);
    let cold = clean_build_run(Some(&m), "t-cairn", "app", &log_path("cold"), &no_tweak);
    assert_eq!(cold, plain);
    let (runs, calls) = (count_lines(&runs_file()), count_lines(&mycc_log()));
    let log = log_path("warm");
    let warm = clean_build_run(Some(&m), "t-cairn", "app", &log, &no_tweak);
    assert_eq!(warm, plain, "a warm build gives what plain cargo gives");
    assert_eq!(count_lines(&runs_file()), runs, "cnative's build script ran in a warm build");
    assert_eq!(count_lines(&mycc_log()), calls, "the C compiler ran in a warm build");
    let lines = read_log_all(&log);
    let scripts: Vec<_> = lines.iter().filter(|l| l.kind == "build-script").collect();
    assert_eq!(script_lines(&lines, "cnative").len(), 1, "cnative's script: {lines:?}");
    assert!(
        !scripts.is_empty() && scripts.iter().all(|l| l.outcome == "hit"),
        "every build script hits (and there are some): {scripts:?}"
    );
    assert!(!lines.is_empty() && lines.iter().all(|l| l.kind != "cc"), "no C compile at all: {lines:?}");
    // Cargo sees the restored OUT_DIR as fresh: nothing runs again.
    let again = log_path("again");
    let out = crate::workspace::ok(crate::csys::cargo(Some(&m), "t-cairn", &again, &["build", "-p", "app", "-v"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Running `"), "cargo ran something again:\n{stderr}");
}

/// One change to cnative's inputs: plain cargo from clean and a cairn build from clean give
/// the same output, that output is new, and cnative's script missed (reran) under cairn.
fn check_change(m: &crate::common::Mount, name: &str, tweak: &dyn Fn(&mut Command), before: &str) -> String {
    let plain = clean_build_run(None, "t-plain", "app", &log_path(&format!("{name}-plain")), tweak);
    let log = log_path(name);
    let runs = count_lines(&runs_file());
    let cached = clean_build_run(Some(m), "t-cairn", "app", &log, tweak);
    assert_eq!(cached, plain, "{name}: cairn's output differs from plain cargo's");
    assert_ne!(cached, before, "{name}: the change did not change the program (a weak test)");
    let lines = read_log_all(&log);
    let s = script_lines(&lines, "cnative");
    assert_eq!(s.len(), 1, "{name}: {lines:?}");
    assert_eq!(s[0].outcome, "miss", "{name}: cnative's script must rerun: {lines:?}");
    assert_eq!(count_lines(&runs_file()), runs + 1, "{name}: the script ran once");
    let others: Vec<_> =
        lines.iter().filter(|l| l.kind == "build-script" && l.krate != "cnative" && l.outcome != "hit").collect();
    assert!(others.is_empty(), "{name}: only cnative's script may rerun: {others:?}");
    cached
}

#[test]
fn each_input_change_reruns_that_script_and_matches_plain_cargo() {
    let _g = lock();
    let Some(m) = mount("each_input_change_reruns_that_script_and_matches_plain_cargo") else { return };
    let root = &csys().root;
    let base = clean_build_run(Some(&m), "t-cairn", "app", &log_path("base"), &no_tweak);
    // A file in the declared folder.
    write(&root.join("cnative/c/value.h"), "#define VALUE 2\n");
    check_change(&m, "declared-file", &no_tweak, &base);
    write(&root.join("cnative/c/value.h"), "#define VALUE 1\n");
    // A header the script never declared, found through the C compile's dependencies.
    write(&root.join("cnative/include/other.h"), "#define OTHER 20\n");
    check_change(&m, "undeclared-header", &no_tweak, &base);
    write(&root.join("cnative/include/other.h"), "#define OTHER 10\n");
    // A declared variable.
    check_change(
        &m,
        "declared-variable",
        &|c| {
            c.env("CNATIVE_MODE", "fast");
        },
        &base,
    );
    // CFLAGS, read by cc-rs.
    check_change(
        &m,
        "cflags",
        &|c| {
            c.env("CFLAGS", "-DFROM_CFLAGS");
        },
        &base,
    );
    // A feature.
    check_change(
        &m,
        "feature",
        &|c| {
            c.args(["--features", "cnative/extra"]);
        },
        &base,
    );
    // The C compiler itself: same name, new contents.
    write_mycc(root, 2);
    check_change(&m, "compiler", &no_tweak, &base);
    write_mycc(root, 1);
    // Everything back as it was: the first entry serves again, and the script does not run.
    let runs = count_lines(&runs_file());
    let log = log_path("back");
    assert_eq!(clean_build_run(Some(&m), "t-cairn", "app", &log, &no_tweak), base);
    assert_eq!(script_lines(&read_log_all(&log), "cnative")[0].outcome, "hit");
    assert_eq!(count_lines(&runs_file()), runs);
}

#[test]
fn a_failing_build_script_is_never_replayed() {
    let _g = lock();
    let Some(m) = mount("a_failing_build_script_is_never_replayed") else { return };
    let root = &csys().root;
    let good = std::fs::read_to_string(root.join("cnative/c/value.c")).unwrap();
    write(&root.join("cnative/c/value.c"), &format!("{good}\n#error broken on purpose\n"));
    for attempt in ["fail-1", "fail-2"] {
        let log = log_path(attempt);
        crate::workspace::ok(crate::csys::cargo(None, "t-cairn", &log, &["clean"]));
        let out = crate::csys::cargo(Some(&m), "t-cairn", &log, &["build", "-p", "app"]).output().unwrap();
        assert!(!out.status.success(), "{attempt}: the build must fail");
        let lines = read_log_all(&log);
        let s = script_lines(&lines, "cnative");
        assert_eq!(s.len(), 1, "{lines:?}");
        assert_eq!(s[0].outcome, "miss:failed", "{attempt}: the failure ran, not replayed: {lines:?}");
    }
    write(&root.join("cnative/c/value.c"), &good);
}

#[test]
fn rm_of_one_entry_reruns_just_that_script_and_by_crate_shows_each_kind() {
    let _g = lock();
    let Some(m) = mount("rm_of_one_entry_reruns_just_that_script_and_by_crate_shows_each_kind") else { return };
    clean_build_run(Some(&m), "t-cairn", "app", &log_path("rm-warm"), &no_tweak);
    let log = log_path("rm-hit");
    let before = clean_build_run(Some(&m), "t-cairn", "app", &log, &no_tweak);
    let lines = read_log_all(&log);
    let hit = script_lines(&lines, "cnative")[0].clone();
    assert_eq!(hit.outcome, "hit");
    // The crate's folder lists its rustc result, its build-script run and its C object.
    let kinds: Vec<String> = std::fs::read_dir(m.mnt.join("by-crate/cnative"))
        .unwrap()
        .map(|e| crate::common::xattr(&e.unwrap().path(), "user.cairn.crate_types").unwrap_or_default())
        .collect();
    for k in ["build-script-run", "c-object", "lib"] {
        assert!(kinds.iter().any(|x| x == k), "by-crate/cnative lacks a {k} entry: {kinds:?}");
    }
    std::fs::remove_file(m.mnt.join(&hit.key)).unwrap();
    let runs = count_lines(&runs_file());
    let log = log_path("rm-after");
    assert_eq!(clean_build_run(Some(&m), "t-cairn", "app", &log, &no_tweak), before);
    let lines = read_log_all(&log);
    assert_eq!(script_lines(&lines, "cnative")[0].outcome, "miss", "{lines:?}");
    assert_eq!(count_lines(&runs_file()), runs + 1);
    let others: Vec<_> =
        lines.iter().filter(|l| l.kind != "cc" && l.krate != "cnative" && l.outcome != "hit").collect();
    assert!(others.is_empty(), "only that script reruns: {others:?}");
    // Its C compile was not removed: the rerun hit it.
    assert!(lines.iter().any(|l| l.kind == "cc" && l.krate == "cnative" && l.outcome == "hit"), "{lines:?}");
}

#[test]
fn real_sys_crates_warm_build_runs_no_script_and_matches_plain_cargo() {
    let _g = lock();
    let Some(m) = mount("real_sys_crates_warm_build_runs_no_script_and_matches_plain_cargo") else { return };
    let plain = clean_build_run(None, "t-plain", "heavy", &log_path("heavy-plain"), &no_tweak);
    assert!(plain.contains("sqlite=3.") && plain.contains("zstd="), "{plain}");
    let cold = clean_build_run(Some(&m), "t-cairn", "heavy", &log_path("heavy-cold"), &no_tweak);
    assert_eq!(cold, plain, "cold");
    let calls = count_lines(&mycc_log());
    let log = log_path("heavy-warm");
    let warm = clean_build_run(Some(&m), "t-cairn", "heavy", &log, &no_tweak);
    assert_eq!(warm, plain, "warm");
    assert_eq!(count_lines(&mycc_log()), calls, "the C compiler ran in a warm build");
    let lines = read_log_all(&log);
    for krate in ["zstd_sys", "libsqlite3_sys", "ring", "cnative"] {
        let s = script_lines(&lines, krate);
        assert_eq!(s.len(), 1, "{krate}: {lines:?}");
        assert_eq!(s[0].outcome, "hit", "{krate}");
    }
    let not_hit: Vec<_> = lines.iter().filter(|l| l.outcome != "hit").collect();
    assert!(not_hit.is_empty(), "{not_hit:?}");
}

#[test]
fn a_cmake_script_is_replayed_and_its_objects_are_cached_when_it_runs() {
    let _g = lock();
    let Some(m) = mount("a_cmake_script_is_replayed_and_its_objects_are_cached_when_it_runs") else { return };
    let root = &csys().root;
    let plain = clean_build_run(None, "t-plain", "capp", &log_path("cmake-plain"), &no_tweak);
    assert_eq!(plain.trim(), "cmk=7");
    assert_eq!(clean_build_run(Some(&m), "t-cairn", "capp", &log_path("cmake-cold"), &no_tweak), plain);
    let log = log_path("cmake-warm");
    assert_eq!(clean_build_run(Some(&m), "t-cairn", "capp", &log, &no_tweak), plain);
    let lines = read_log_all(&log);
    assert_eq!(script_lines(&lines, "cmk")[0].outcome, "hit", "{lines:?}");
    assert!(!lines.is_empty() && lines.iter().all(|l| l.kind != "cc"), "no C compile, in a non-empty log: {lines:?}");
    // Excluded from replay, the script runs; cmake's compile of v.c (with -MD -MF) hits.
    let log = log_path("cmake-excluded");
    let excluded = |c: &mut Command| {
        c.env("CAIRN_BUILD_SCRIPT_EXCLUDE", "cmk");
    };
    assert_eq!(clean_build_run(Some(&m), "t-cairn", "capp", &log, &excluded), plain);
    let lines = read_log_all(&log);
    assert!(script_lines(&lines, "cmk").is_empty(), "an excluded script is not looked up: {lines:?}");
    assert!(lines.iter().any(|l| l.kind == "cc" && l.krate == "cmk" && l.outcome == "hit"), "{lines:?}");
    // A header edit: the run and the object miss, and the program changes as plain cargo's does.
    write(&root.join("cmk/c/v.h"), "#define V 8\n");
    let plain8 = clean_build_run(None, "t-plain", "capp", &log_path("cmake-plain8"), &no_tweak);
    let log = log_path("cmake-edit");
    let cached8 = clean_build_run(Some(&m), "t-cairn", "capp", &log, &no_tweak);
    write(&root.join("cmk/c/v.h"), "#define V 7\n");
    assert_eq!((plain8.trim(), cached8.trim()), ("cmk=8", "cmk=8"));
    assert_eq!(script_lines(&read_log_all(&log), "cmk")[0].outcome, "miss");
}

/// The `-sys` crates, from another checkout path into another target dir: every build-script
/// run hits (their `OUT_DIR`s hold C objects whose debuginfo names the folders as fixed
/// prefixes, `-ffile-prefix-map`), no C compiler runs, and the program is plain cargo's.
#[test]
fn real_sys_crates_in_another_checkout_run_no_script_and_no_c_compiler() {
    another_checkout("real_sys_crates_in_another_checkout_run_no_script_and_no_c_compiler", Via::Mount);
}

#[test]
fn without_fuse_real_sys_crates_in_another_checkout_run_no_script_and_no_c_compiler() {
    another_checkout("without_fuse_real_sys_crates_in_another_checkout_run_no_script_and_no_c_compiler", Via::Socket);
}

fn another_checkout(test: &str, via: Via) {
    let _g = lock();
    let Some(m) = mount_via(test, via) else { return };
    let plain = clean_build_run(None, "t-plain", "heavy", &log_path("second-plain"), &no_tweak);
    clean_build_run(Some(&m), "t-cairn", "heavy", &log_path("second-first"), &no_tweak);
    let second = csys().root.parent().unwrap().join("elsewhere/checkout");
    let _ = std::fs::remove_dir_all(&second);
    crate::workspace::copy_sources(&csys().root, &second, &[]);
    let calls = count_lines(&mycc_log());
    let log = log_path("second-checkout");
    let mut c = cargo(Some(&m), "unused", &log, &["build", "-p", "heavy"]);
    c.current_dir(&second).env("CARGO_TARGET_DIR", second.join("out"));
    ok(c);
    let run = ok(Command::new(second.join("out/debug/heavy")));
    assert_eq!(String::from_utf8(run.stdout).unwrap(), plain);
    assert_eq!(count_lines(&mycc_log()), calls, "a C compiler ran in the other checkout");
    let lines = read_log_all(&log);
    for krate in ["zstd_sys", "libsqlite3_sys", "ring", "cnative"] {
        let s = script_lines(&lines, krate);
        assert_eq!(s.len(), 1, "{krate}: {lines:?}");
        assert_eq!(s[0].outcome, "hit", "{krate}: {lines:?}");
    }
    let not_hit: Vec<_> = lines.iter().filter(|l| !l.outcome.starts_with("hit")).collect();
    assert!(not_hit.is_empty(), "{not_hit:?}");
    // The restored text file that names OUT_DIR names this build's.
    let pc: Vec<_> = std::fs::read_dir(second.join("out/debug/build"))
        .unwrap()
        .map(|e| e.unwrap().path().join("out/cnative.pc"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(pc.len(), 1, "{pc:?}");
    assert_eq!(std::fs::read_to_string(&pc[0]).unwrap(), format!("prefix={}\n", pc[0].parent().unwrap().display()));
}

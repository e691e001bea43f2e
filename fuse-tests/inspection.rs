//! What each entry is, and what the cache was worth: xattrs, `by-crate/`, `cairn stats`,
//! `cairn evict`, `cairn clear` — after real wrapper compiles.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::{errno, mount, xattr};
use crate::workspace::{cacheable, cargo, ensure_warm, lock, log_path, mount as ws_mount, ok, read_log, read_log_all};

fn cairn(args: &[&str], mnt: &Path) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).arg("--mount").arg(mnt).output().unwrap();
    assert!(out.status.success(), "cairn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stats(mnt: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(mnt.join(".cairn/stats.json")).unwrap()).unwrap()
}

fn warm_build(m: &crate::common::Mount, name: &str) -> Vec<crate::workspace::Line> {
    ok(cargo(None, "t-main", &log_path("x"), &["clean"]));
    let log = log_path(name);
    ok(cargo(Some(m), "t-main", &log, &["build"]));
    read_log(&log)
}

#[test]
fn entries_carry_their_metadata_and_by_crate_lists_them() {
    let _g = lock();
    let Some(m) = ws_mount("entries_carry_their_metadata_and_by_crate_lists_them") else { return };
    ensure_warm(&m);
    let lines = warm_build(&m, "inspect");
    let sj = lines.iter().find(|l| l.krate == "serde_json" && l.outcome == "hit").expect("serde_json hit");
    let obj = m.mnt.join(&sj.key);
    assert_eq!(xattr(&obj, "user.cairn.crate").as_deref(), Some("serde_json"));
    assert_eq!(xattr(&obj, "user.cairn.crate_types").as_deref(), Some("lib"));
    assert_eq!(xattr(&obj, "user.cairn.kind").as_deref(), Some("result"));
    assert!(xattr(&obj, "user.cairn.rustc").unwrap().starts_with("rustc "));
    let host = String::from_utf8(Command::new("rustc").arg("-vV").output().unwrap().stdout).unwrap();
    let host = host.lines().find_map(|l| l.strip_prefix("host: ")).unwrap().to_string();
    assert_eq!(xattr(&obj, "user.cairn.target"), Some(host));
    assert!(xattr(&obj, "user.cairn.compile_secs").unwrap().parse::<f64>().unwrap() > 0.0);
    assert_eq!(xattr(&obj, "user.cairn.size").unwrap(), std::fs::metadata(&obj).unwrap().len().to_string());

    // by-crate: the crate's entries, each a link to the object.
    let dir = m.mnt.join("by-crate/serde_json");
    let listed: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(listed.contains(&sj.key), "{listed:?}");
    assert_eq!(std::fs::read_link(dir.join(&sj.key)).unwrap(), Path::new("../..").join(&sj.key));
    assert_eq!(std::fs::metadata(dir.join(&sj.key)).unwrap().len(), std::fs::metadata(&obj).unwrap().len());
    let crates: BTreeSet<String> = std::fs::read_dir(m.mnt.join("by-crate"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for c in ["serde_json", "serde_derive", "app", "probe"] {
        assert!(crates.contains(c), "{c} in {crates:?}");
    }
    // A build script's compile is listed under its package, as a build script.
    assert!(!crates.contains("build_script_build"), "{crates:?}");
    let probe_types: BTreeSet<String> = std::fs::read_dir(m.mnt.join("by-crate/probe"))
        .unwrap()
        .filter_map(|e| xattr(&e.unwrap().path(), "user.cairn.crate_types"))
        .collect();
    for t in ["lib", "build-script", "build-script-run"] {
        assert!(probe_types.contains(t), "{t} in {probe_types:?}");
    }
    // The view is read-only: rm through it is refused, and the object stays.
    assert_eq!(errno(std::fs::remove_file(dir.join(&sj.key))), libc::EROFS);
    assert!(obj.exists());
}

#[test]
fn stats_count_hits_and_time_saved_and_survive_a_restart() {
    let _g = lock();
    let Some(mut m) = ws_mount("stats_count_hits_and_time_saved_and_survive_a_restart") else { return };
    ensure_warm(&m);
    cairn(&["stats", "--zero"], &m.mnt);
    assert_eq!(stats(&m.mnt)["hits"], 0);
    let lines = warm_build(&m, "stats");
    // The stats count exactly what the wrapper's log shows (replayed failures are hits too).
    let hits = lines.iter().filter(|l| l.outcome.starts_with("hit")).count() as u64;
    let misses = lines.iter().filter(|l| l.outcome.starts_with("miss")).count() as u64;
    assert!(hits > 20, "{lines:?}");
    let s = stats(&m.mnt);
    assert_eq!(s["kinds"]["rustc"]["hits"].as_u64().unwrap(), hits, "{s}");
    assert_eq!(s["kinds"]["rustc"]["misses"].as_u64().unwrap_or(0), misses, "{s}");
    // Build-script runs are their own kind; the top-level counts add up every kind.
    let all = read_log_all(&log_path_existing("stats"));
    let scripts = all.iter().filter(|l| l.kind == "build-script" && l.outcome == "hit").count() as u64;
    assert!(scripts >= 3, "serde, probe … ran no script: {all:?}");
    assert_eq!(s["kinds"]["build-script"]["hits"].as_u64().unwrap(), scripts, "{s}");
    let all_hits = all.iter().filter(|l| l.outcome.starts_with("hit")).count() as u64;
    assert_eq!(s["hits"].as_u64().unwrap(), all_hits, "{s}");
    // Time saved: positive, and at most the sum of the original compile times of the hits.
    let compiled: f64 = std::fs::read_to_string(log_path_existing("stats"))
        .unwrap()
        .lines()
        .filter(|l| l.split('\t').nth(3).is_some_and(|o| o.starts_with("hit")))
        .filter_map(|l| l.split('\t').nth(5)?.parse::<f64>().ok())
        .sum::<f64>()
        / 1000.0;
    let saved = s["time_saved_secs"].as_f64().unwrap();
    assert!(saved > 0.0 && saved <= compiled + 0.001, "saved {saved} s of {compiled} s compiled");
    let human = String::from_utf8(cairn(&["stats"], &m.mnt).stdout).unwrap();
    assert!(human.contains("time saved") && human.contains("hits"), "{human}");
    // Restart: "since zero" survives (documented), "since start" begins again.
    m.stop();
    m.start();
    let after = stats(&m.mnt);
    assert_eq!(after["hits"].as_u64().unwrap(), all_hits);
    assert_eq!(after["since_start"]["hits"], 0);
}

fn log_path_existing(name: &str) -> std::path::PathBuf {
    crate::workspace::ws().root.parent().unwrap().join("logs").join(format!("{name}.log"))
}

#[test]
fn evict_crate_removes_exactly_that_crates_entries() {
    let _g = lock();
    let Some(m) = ws_mount("evict_crate_removes_exactly_that_crates_entries") else { return };
    ensure_warm(&m);
    warm_build(&m, "evict-before");
    let objects = |p: &Path| -> BTreeSet<String> {
        std::fs::read_dir(p)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.len() == 64)
            .collect()
    };
    let before = objects(&m.mnt);
    let itoa: BTreeSet<String> = objects(&m.mnt.join("by-crate/itoa"));
    assert!(!itoa.is_empty());
    let out = String::from_utf8(cairn(&["evict", "--crate", "itoa"], &m.mnt).stdout).unwrap();
    for k in &itoa {
        assert!(out.contains(k.as_str()), "{out}");
    }
    let after = objects(&m.mnt);
    assert_eq!(before.difference(&after).cloned().collect::<BTreeSet<_>>(), itoa, "exactly itoa's entries went");
    assert!(!m.mnt.join("by-crate/itoa").exists());
    // The next build recompiles itoa, and only itoa.
    let lines = warm_build(&m, "evict-after");
    let missed: Vec<&str> = cacheable(&lines).iter().filter(|l| l.outcome != "hit").map(|l| l.krate.as_str()).collect();
    assert_eq!(missed, vec!["itoa"]);
}

#[test]
fn evict_crate_takes_only_a_crate_name() {
    let Some(m) = mount("evict_crate_takes_only_a_crate_name", "64MiB") else { return };
    for i in 0..3u8 {
        m.put(&[i; 100]);
    }
    for bad in ["..", ".", "", "a/..", "../by-crate"] {
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["evict", "--crate", bad, "--mount"])
            .arg(&m.mnt)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?} was taken");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a crate name"), "{bad:?}: {out:?}");
        assert_eq!(m.ls().iter().filter(|n| n.len() == 64).count(), 3, "{bad:?} removed entries");
    }
}

/// Crate names come from object headers, which anyone who can commit an object writes: the
/// `by-crate/` view lists only real crate names.
#[test]
fn by_crate_lists_only_crate_names_from_object_headers() {
    let Some(m) = mount("by_crate_lists_only_crate_names_from_object_headers", "64MiB") else { return };
    let object = |name: &str| {
        cairn::protocol::object::CompileResult {
            meta: cairn::protocol::object::EntryMeta {
                crate_name: name.into(),
                crate_types: vec!["lib".into()],
                ..Default::default()
            },
            files: vec![],
            stdout: vec![],
            stderr: vec![],
        }
        .encode()
        .expect("in memory")
    };
    for name in ["..", ".", "", "a/b", "x\ny", "fine_crate"] {
        m.put(&object(name));
    }
    let listed: BTreeSet<String> = std::fs::read_dir(m.mnt.join("by-crate"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listed, BTreeSet::from(["fine_crate".to_string()]));
    assert_eq!(m.ls().iter().filter(|n| n.len() == 64).count(), 6, "every object is still in the root");
}

#[test]
fn clear_needs_yes_and_then_removes_everything() {
    let Some(m) = mount("clear_needs_yes_and_then_removes_everything", "64MiB") else { return };
    for i in 0..5u8 {
        m.put(&[i; 100]);
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["clear", "--mount"]).arg(&m.mnt).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(m.ls().iter().filter(|n| n.len() == 64).count(), 5);
    let out = String::from_utf8(cairn(&["clear", "--yes"], &m.mnt).stdout).unwrap();
    assert!(out.contains("5 entries"), "{out}");
    assert_eq!(m.ls().iter().filter(|n| n.len() == 64).count(), 0);
}

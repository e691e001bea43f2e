//! Target-dir seeding (issue #21, docs/seeding.md), end to end with real cargo builds of the
//! e2e workspace (serde, clap, proc-macros, build scripts from crates.io): a fresh target dir
//! gets the registry units of earlier builds from the cache before cargo looks, so cargo
//! runs nothing for them; what it builds is byte for byte what an unseeded build gives; and
//! anything cargo's fingerprints cannot see keeps the seed out.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::{Mount, Via};
use crate::s3server::S3Server;
use crate::workspace::{cargo, cargo_in, copy_sources, lock, log_path, ok, read_log_all, static_lib, ws, Line};

/// Crates of the workspace itself: the only ones a seeded build may compile or run.
const OWN: [&str; 3] = ["app", "probe", "build_script_build"];

/// A cargo command with seeding on and the daemon's store named (as a user's config does).
fn seeded(m: &Mount, target: &str, log: &Path, args: &[&str]) -> Command {
    let mut c = cargo(Some(m), target, log, args);
    c.env("CAIRN_SEED", "1").env("CAIRN_STORE", &m.store).env_remove("CAIRN_DOOR");
    c
}

/// The lockfile must be there before the first probe (seeding keys on it); `cargo fetch`
/// writes it without compiling anything.
fn with_lockfile() {
    if !ws().root.join("Cargo.lock").is_file() {
        ok(cargo(None, "t-fetch", &log_path("fetch"), &["fetch"]));
    }
}

/// A daemon over a fresh store, and the workspace's lockfile.
fn daemon(test: &str, via: Via) -> Option<Mount> {
    let m = crate::common::mount_via(test, None, "8GiB", &[], &[], via)?;
    with_lockfile();
    Some(m)
}

/// A seeded `cargo build` of the checkout at `dir` into `target`.
fn build_at(m: &Mount, dir: &Path, target: &Path, log: &Path) {
    let mut c = seeded(m, "unused", log, &["build"]);
    c.current_dir(dir).env("CARGO_TARGET_DIR", target);
    ok(c);
}

/// The seed line of a build's log: (outcome, target dir).
fn seed_line(lines: &[Line]) -> (String, String) {
    let s: Vec<&Line> = lines.iter().filter(|l| l.kind == "seed").collect();
    assert_eq!(s.len(), 1, "one seed line per fresh target dir: {lines:?}");
    (s[0].outcome.clone(), s[0].krate.clone())
}

fn units_seeded(outcome: &str) -> usize {
    outcome.strip_prefix("seed:").and_then(|r| r.split('-').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Crates the build compiled or ran (hits included) that are not the workspace's own.
fn registry_units_that_ran(lines: &[Line]) -> Vec<String> {
    let mut scripts_of_own = 0;
    let mut out = Vec::new();
    for l in lines.iter().filter(|l| l.kind == "rustc" || l.kind == "build-script") {
        if l.kind == "rustc" && l.krate == "build_script_build" {
            scripts_of_own += 1;
            if scripts_of_own == 1 {
                continue; // probe's build script
            }
        }
        if !OWN.contains(&l.krate.as_str()) {
            out.push(format!("{} {}", l.kind, l.krate));
        }
    }
    out
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

/// Asserts every library and the program of the reference target dir `b` are in `a`, byte
/// for byte (a seeded `a` may hold more: units of other builds that cargo did not use).
fn same_outputs(a: &Path, b: &Path) {
    let (fa, fb) = (files(&a.join("debug/deps")), files(&b.join("debug/deps")));
    let libs: Vec<&String> = fb.iter().filter(|f| f.ends_with(".rlib") || f.ends_with(".so")).collect();
    assert!(libs.len() >= 15, "the workspace's libraries: {libs:?}");
    for f in libs {
        assert!(fa.contains(f), "{f} is missing");
        assert!(
            std::fs::read(a.join("debug/deps").join(f)).unwrap()
                == std::fs::read(b.join("debug/deps").join(f)).unwrap(),
            "{f} differs"
        );
    }
    assert!(
        std::fs::read(a.join("debug/app")).unwrap() == std::fs::read(b.join("debug/app")).unwrap(),
        "the program differs"
    );
}

fn run(target: &Path) -> String {
    String::from_utf8(ok(Command::new(target.join("debug/app"))).stdout).unwrap()
}

#[test]
fn a_cleaned_target_dir_is_seeded_and_cargo_runs_no_registry_unit() {
    cleaned_is_seeded("a_cleaned_target_dir_is_seeded_and_cargo_runs_no_registry_unit", Via::Mount);
}

#[test]
fn without_fuse_a_cleaned_target_dir_is_seeded_and_cargo_runs_no_registry_unit() {
    cleaned_is_seeded("without_fuse_a_cleaned_target_dir_is_seeded_and_cargo_runs_no_registry_unit", Via::Socket);
}

fn cleaned_is_seeded(test: &str, via: Via) {
    let _g = lock();
    let Some(m) = daemon(test, via) else { return };
    let root = &ws().root;
    let (t, reference) = (root.join("t-seed"), root.join("t-seed-ref"));
    for d in [&t, &reference] {
        let _ = std::fs::remove_dir_all(d);
    }
    // Cold: nothing to seed from yet; the build leaves its units in the cache.
    let cold = log_path("seed-cold");
    ok(seeded(&m, "t-seed", &cold, &["build"]));
    assert_eq!(seed_line(&read_log_all(&cold)).0, "seed-none:no-set");
    // An unseeded warm build: every unit restored by the wrapper, the reference.
    let mut c = seeded(&m, "t-seed-ref", &log_path("seed-ref"), &["build"]);
    c.env("CAIRN_SEED", "0");
    ok(c);
    // After `cargo clean`, the target dir is seeded and cargo runs nothing of the registry.
    ok(cargo(None, "t-seed", &log_path("x"), &["clean"]));
    let warm = log_path("seed-warm");
    ok(seeded(&m, "t-seed", &warm, &["build"]));
    let lines = read_log_all(&warm);
    let (outcome, target) = seed_line(&lines);
    assert_eq!(target, t.display().to_string());
    assert!(units_seeded(&outcome) >= 20, "{outcome}");
    assert!(!outcome.contains("-not:"), "every unit of the set was restored: {outcome}");
    // Made before cargo could make it, the target dir still carries cargo's tag: backup tools
    // and the walk of a package's files (a build script's inputs) skip it.
    assert!(t.join("CACHEDIR.TAG").is_file(), "a seeded target dir is tagged as cargo's");
    let ran = registry_units_that_ran(&lines);
    assert!(ran.is_empty(), "cargo ran registry units of a seeded target dir: {ran:?}");
    same_outputs(&t, &reference);
    assert_eq!(run(&t), run(&reference));
    // Restored dep-info names this target dir.
    let dinfo: Vec<String> = files(&t.join("debug/deps"))
        .into_iter()
        .filter(|f| f.starts_with("serde_json-") && f.ends_with(".d"))
        .collect();
    assert_eq!(dinfo.len(), 1, "{dinfo:?}");
    let text = std::fs::read_to_string(t.join("debug/deps").join(&dinfo[0])).unwrap();
    assert!(text.contains(&format!("{}/debug/deps/", t.display())), "{text}");
    // Counted, with the compile time they stood for.
    let stats = m.stats();
    assert!(stats["seeded_units"].as_u64().unwrap() >= 20, "{stats}");
    assert!(stats["seed_saved_secs"].as_f64().unwrap() > 0.0, "{stats}");
    assert!(m.cairn(&["stats"]).contains("seeded"), "cairn stats names the seeded units");
    // A target dir that was built before is never seeded over.
    let again = log_path("seed-again");
    ok(seeded(&m, "t-seed", &again, &["build"]));
    assert!(read_log_all(&again).iter().all(|l| l.kind != "seed" || l.outcome == "seed-none:built-before"));
    // Unit objects name their compiles' results instead of copying the libraries again.
    let (units, results) = (stored_bytes(&m.store, b"CAIRNU02"), stored_bytes(&m.store, b"CAIRNR04"));
    assert!(units > 0 && results > 0, "units {units} B, results {results} B");
    assert!(units * 5 < results, "unit objects hold {units} B against {results} B of results: copies");
    // Removing one result takes its unit out of the next seed; cargo compiles it again.
    let itoa = read_log_all(&cold).into_iter().find(|l| l.kind == "rustc" && l.krate == "itoa").expect("itoa").key;
    m.cairn(&["rm", &itoa]);
    ok(cargo(None, "t-seed", &log_path("x"), &["clean"]));
    let after = log_path("seed-after-rm");
    ok(seeded(&m, "t-seed", &after, &["build"]));
    let lines = read_log_all(&after);
    let (outcome, _) = seed_line(&lines);
    assert!(outcome.contains("-not:absent-result:itoa-"), "{outcome}");
    // itoa compiles; what cargo rebuilds on top of it comes from the cache.
    let ran: Vec<&Line> = lines
        .iter()
        .filter(|l| l.kind == "rustc" && l.krate != "build_script_build" && !OWN.contains(&l.krate.as_str()))
        .collect();
    assert!(ran.iter().any(|l| l.krate == "itoa" && l.outcome == "miss"), "{ran:?}");
    assert!(ran.iter().all(|l| l.krate == "itoa" || l.outcome == "hit"), "{ran:?}");
    same_outputs(&t, &reference);
    assert_eq!(run(&t), run(&reference));
}

/// The bytes of the stored objects that start with `magic`.
fn stored_bytes(store: &Path, magic: &[u8]) -> u64 {
    let mut total = 0;
    for f in files(store) {
        let p = store.join(&f);
        let mut head = [0u8; 8];
        let read = std::fs::File::open(&p).and_then(|mut h| std::io::Read::read_exact(&mut h, &mut head));
        if read.is_ok() && head == magic {
            total += std::fs::metadata(&p).unwrap().len();
        }
    }
    total
}

#[test]
fn a_checkout_at_another_path_is_seeded_and_names_its_own_folders() {
    let _g = lock();
    let test = "a_checkout_at_another_path_is_seeded_and_names_its_own_folders";
    let Some(m) = daemon(test, Via::Mount) else { return };
    let root = &ws().root;
    let first = root.join("t-first");
    let _ = std::fs::remove_dir_all(&first);
    ok(seeded(&m, "t-first", &log_path("first"), &["build"]));
    // Another checkout, elsewhere, with its own target dir.
    let other = root.parent().unwrap().join("elsewhere/another-checkout");
    let _ = std::fs::remove_dir_all(&other);
    copy_sources(root, &other, &[]);
    let log = log_path("another");
    build_at(&m, &other, &other.join("target"), &log);
    let lines = read_log_all(&log);
    let (outcome, _) = seed_line(&lines);
    assert!(units_seeded(&outcome) >= 20, "{outcome}");
    let ran = registry_units_that_ran(&lines);
    assert!(ran.is_empty(), "cargo ran registry units in the other checkout: {ran:?}");
    same_outputs(&first, &other.join("target"));
    // No file of the new target dir names the first one.
    let old = first.display().to_string();
    for f in files(&other.join("target")) {
        let bytes = std::fs::read(other.join("target").join(&f)).unwrap();
        assert!(memchr_find(&bytes, old.as_bytes()).is_none(), "{f} names the first checkout's target dir");
    }
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn what_cargo_or_cairn_would_build_differently_is_never_seeded_over() {
    let _g = lock();
    let test = "what_cargo_or_cairn_would_build_differently_is_never_seeded_over";
    let Some(m) = daemon(test, Via::Mount) else { return };
    let root = &ws().root;
    for t in ["t-base", "t-flags", "t-release", "t-plain-flags", "t-plain-release", "t-cc"] {
        let _ = std::fs::remove_dir_all(root.join(t));
    }
    ok(seeded(&m, "t-base", &log_path("base"), &["build"]));
    // RUSTFLAGS: another seed context altogether (cargo would also see it).
    let log = log_path("flags");
    let mut c = seeded(&m, "t-flags", &log, &["build"]);
    c.env("RUSTFLAGS", "--cfg cairn_seed_test -C debug-assertions=off");
    ok(c);
    let lines = read_log_all(&log);
    assert_eq!(seed_line(&lines).0, "seed-none:no-set");
    assert!(!registry_units_that_ran(&lines).is_empty(), "the registry crates were built for the new flags");
    let mut p = cargo(None, "t-plain-flags", &log_path("x"), &["build"]);
    p.env("RUSTFLAGS", "--cfg cairn_seed_test -C debug-assertions=off");
    ok(p);
    assert_eq!(run(&root.join("t-flags")), run(&root.join("t-plain-flags")));
    // A C compiler cargo does not track: another seed context too.
    let cc = root.parent().unwrap().join("other-cc");
    std::fs::write(&cc, "#!/bin/sh\nexec cc \"$@\"\n").unwrap();
    std::fs::set_permissions(&cc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = log_path("cc");
    let mut c = seeded(&m, "t-cc", &log, &["build"]);
    c.env("CC", &cc);
    ok(c);
    assert_eq!(seed_line(&read_log_all(&log)).0, "seed-none:no-set");
    // A registry crate's features (the lockfile does not change): seeded from the same set,
    // cargo rebuilds that crate and what depends on it, and the outputs are those of an
    // unseeded build.
    let featured = root.parent().unwrap().join("elsewhere/featured");
    let _ = std::fs::remove_dir_all(&featured);
    copy_sources(root, &featured, &[]);
    let manifest = featured.join("app/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("smallvec = \"1\"", "smallvec = { version = \"1\", features = [\"union\"] }");
    std::fs::write(&manifest, text).unwrap();
    let log = log_path("features");
    build_at(&m, &featured, &featured.join("target"), &log);
    let lines = read_log_all(&log);
    assert!(units_seeded(&seed_line(&lines).0) >= 20, "{lines:?}");
    let ran = registry_units_that_ran(&lines);
    assert_eq!(ran, vec!["rustc smallvec".to_string()], "only the crate whose features changed was built");
    let mut c = seeded(&m, "unused", &log_path("features-ref"), &["build"]);
    c.current_dir(&featured).env("CARGO_TARGET_DIR", featured.join("target-ref")).env("CAIRN_SEED", "0");
    ok(c);
    same_outputs(&featured.join("target"), &featured.join("target-ref"));
    // The release profile: seeded from the same set, but cargo finds no release unit in it
    // and builds them (through the cache); the program is plain cargo's.
    let log = log_path("release");
    ok(seeded(&m, "t-release", &log, &["build", "--release"]));
    let lines = read_log_all(&log);
    assert!(lines.iter().filter(|l| l.kind == "rustc").count() >= 20, "release units were built: {lines:?}");
    ok(cargo(None, "t-plain-release", &log_path("x"), &["build", "--release"]));
    let out = |t: &str| String::from_utf8(ok(Command::new(root.join(t).join("release/app"))).stdout).unwrap();
    assert_eq!(out("t-release"), out("t-plain-release"));
}

#[test]
fn a_fresh_runner_is_seeded_from_a_warm_bucket() {
    let _g = lock();
    let test = "a_fresh_runner_is_seeded_from_a_warm_bucket";
    let server = S3Server::start("seeds");
    let dir = tempfile::tempdir().unwrap();
    let Some(mut a) = server.mount(test, Some(&dir.path().join("a")), "seeds") else { return };
    with_lockfile();
    let root = &ws().root;
    let t = root.join("t-runner");
    let _ = std::fs::remove_dir_all(&t);
    ok(seeded(&a, "t-runner", &log_path("runner-a"), &["build"]));
    let expected = run(&t);
    // Stopping writes the sets and returns once the uploads are in the bucket.
    a.stop();
    // Machine B: an empty local store, the same bucket, a fresh checkout's target dir.
    let Some(b) = server.mount_via(test, Some(&dir.path().join("b")), "seeds", Via::Socket) else { return };
    ok(cargo(None, "t-runner", &log_path("x"), &["clean"]));
    let log = log_path("runner-b");
    ok(seeded(&b, "t-runner", &log, &["build"]));
    let lines = read_log_all(&log);
    let (outcome, _) = seed_line(&lines);
    assert!(units_seeded(&outcome) >= 20, "{outcome}");
    let ran = registry_units_that_ran(&lines);
    assert!(ran.is_empty(), "B ran registry units: {ran:?}");
    assert_eq!(run(&t), expected);
}

/// `c` with another program: its arguments, variables and folder kept.
fn with_program(c: &Command, program: &Path) -> Command {
    let mut n = Command::new(program);
    n.args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => n.env(k, v),
            None => n.env_remove(k),
        };
    }
    if let Some(d) = c.get_current_dir() {
        n.current_dir(d);
    }
    n
}

/// A copy of the installed toolchain at `to` (hard links: it takes no space), with `bin/cargo`
/// a real copy of its own, so either can be changed without touching the original.
fn toolchain_copy(to: &Path) -> std::path::PathBuf {
    let out = Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
    let sysroot = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let _ = std::fs::remove_dir_all(to);
    let linked = Command::new("cp").arg("-al").arg(&sysroot).arg(to).status().unwrap().success();
    if !linked {
        assert!(Command::new("cp").arg("-a").arg(&sysroot).arg(to).status().unwrap().success());
    }
    let cargo = to.join("bin/cargo");
    let bytes = std::fs::read(&cargo).unwrap();
    std::fs::remove_file(&cargo).unwrap();
    std::fs::write(&cargo, bytes).unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    to.to_path_buf()
}

#[test]
fn a_seed_is_never_taken_by_another_toolchain_or_another_cargo() {
    let _g = lock();
    let test = "a_seed_is_never_taken_by_another_toolchain_or_another_cargo";
    let Some(m) = daemon(test, Via::Mount) else { return };
    let root = &ws().root;
    for t in ["t-tc-base", "t-tc-updated", "t-tc-cargo"] {
        let _ = std::fs::remove_dir_all(root.join(t));
    }
    ok(seeded(&m, "t-tc-base", &log_path("tc-base"), &["build"]));
    let base = run(&root.join("t-tc-base"));
    let host = host();
    let tmp = root.parent().unwrap();

    // What `rustup update` does: the toolchain's files change (here one file more in its
    // target library folder, which every key and seed context hashes). No seed is taken and
    // no compile is served from the old toolchain's results.
    let updated = toolchain_copy(&tmp.join("toolchain-updated"));
    std::fs::write(updated.join(format!("lib/rustlib/{host}/lib/cairn-test-update.txt")), "1.95.1").unwrap();
    let log = log_path("tc-updated");
    let mut c = with_program(&seeded(&m, "t-tc-updated", &log, &["build"]), &updated.join("bin/cargo"));
    c.env("RUSTC", updated.join("bin/rustc"));
    ok(c);
    let lines = read_log_all(&log);
    assert_eq!(seed_line(&lines).0, "seed-none:no-set");
    let compiles: Vec<&Line> = lines.iter().filter(|l| l.kind == "rustc").collect();
    assert!(compiles.len() >= 20, "{lines:?}");
    assert!(compiles.iter().all(|l| l.outcome.starts_with("miss")), "served from another toolchain: {compiles:?}");
    assert_eq!(run(&root.join("t-tc-updated")), base);

    // Another cargo (its fingerprints may be of another format) beside the same compiler: the
    // compiles are the same, so they hit, but the seed set is another one.
    let other = toolchain_copy(&tmp.join("toolchain-other-cargo"));
    let mut bytes = std::fs::read(other.join("bin/cargo")).unwrap();
    bytes.extend_from_slice(b"\0another cargo build");
    std::fs::write(other.join("bin/cargo"), bytes).unwrap();
    let with_other = |log: &Path| {
        let mut c = with_program(&seeded(&m, "t-tc-cargo", log, &["build"]), &other.join("bin/cargo"));
        c.env("RUSTC", other.join("bin/rustc"));
        c
    };
    let log = log_path("tc-cargo");
    ok(with_other(&log));
    let lines = read_log_all(&log);
    assert_eq!(seed_line(&lines).0, "seed-none:no-set");
    let compiles: Vec<&Line> = lines.iter().filter(|l| l.kind == "rustc").collect();
    assert!(compiles.len() >= 20 && compiles.iter().all(|l| l.outcome == "hit"), "{compiles:?}");
    assert_eq!(run(&root.join("t-tc-cargo")), base);
    // That cargo's own set seeds its next fresh target dir.
    std::fs::remove_dir_all(root.join("t-tc-cargo")).unwrap();
    let log = log_path("tc-cargo-again");
    ok(with_other(&log));
    let lines = read_log_all(&log);
    assert!(units_seeded(&seed_line(&lines).0) >= 20, "{lines:?}");
    assert!(registry_units_that_ran(&lines).is_empty(), "{lines:?}");
    assert_eq!(run(&root.join("t-tc-cargo")), base);
    for d in [updated, other] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A build whose target dir is removed the moment cargo exits still leaves every unit it
/// built in the seed set: the workspace's last compile waits until the daemon has copied
/// them (their fingerprints come from cargo a few milliseconds after each compile). A warm
/// build of hits alone, then `rm -rf` at once, is where a unit used to go missing (CI,
/// 2026-12-07: smallvec and fnv).
#[test]
fn a_target_dir_removed_as_the_build_ends_still_seeds_the_next_one() {
    let _g = lock();
    let test = "a_target_dir_removed_as_the_build_ends_still_seeds_the_next_one";
    // The daemon looks again for a reported unit's fingerprint every 400 ms instead of 10
    // (besides the watch on its folder): the set must be whole however the copies and the
    // removal interleave.
    let env = [("CAIRN_SEED_POLL_MS".to_string(), "400".to_string())];
    let Some(m) = crate::common::mount_via(test, None, "8GiB", &[], &env, Via::Mount) else { return };
    with_lockfile();
    let root = &ws().root;
    for t in ["t-race-cold", "t-race-hits", "t-race-next"] {
        let _ = std::fs::remove_dir_all(root.join(t));
    }
    // The results, without a seed set.
    let mut c = seeded(&m, "t-race-cold", &log_path("race-cold"), &["build"]);
    c.env("CAIRN_SEED", "0");
    ok(c);
    let base = run(&root.join("t-race-cold"));
    // A build of hits alone (no set to seed from), its target dir removed as cargo exits.
    let hits = log_path("race-hits");
    ok(seeded(&m, "t-race-hits", &hits, &["build"]));
    std::fs::remove_dir_all(root.join("t-race-hits")).unwrap();
    let lines = read_log_all(&hits);
    assert_eq!(seed_line(&lines).0, "seed-none:no-set");
    let built = registry_units_that_ran(&lines);
    assert!(built.len() >= 20, "{lines:?}");
    // The next fresh target dir gets every one of them.
    let next = log_path("race-next");
    ok(seeded(&m, "t-race-next", &next, &["build"]));
    let lines = read_log_all(&next);
    let (outcome, _) = seed_line(&lines);
    assert!(units_seeded(&outcome) >= built.len(), "{outcome}, built {built:?}");
    assert!(registry_units_that_ran(&lines).is_empty(), "missing from the set: {lines:?}");
    assert_eq!(run(&root.join("t-race-next")), base);
}

/// `cargo build -p itoa`: the build's last unit is a registry unit, so no workspace compile
/// waits at the end for its copy (`SETTLE`), and cargo writes its fingerprint only after the
/// wrapper returns. The daemon looks for reported units' fingerprints every minute here, so
/// only the watch on the unit's fingerprint folder can copy it in time; without the watch the
/// next fresh target dir's probe stops waiting (3 s without a copy ending) and compiles it.
#[test]
fn a_build_whose_last_unit_is_a_registry_unit_leaves_it_in_the_set_at_once() {
    let _g = lock();
    let test = "a_build_whose_last_unit_is_a_registry_unit_leaves_it_in_the_set_at_once";
    let env = [("CAIRN_SEED_POLL_MS".to_string(), "60000".to_string())];
    let Some(m) = crate::common::mount_via(test, None, "8GiB", &[], &env, Via::Mount) else { return };
    with_lockfile();
    let root = &ws().root;
    for t in ["t-last-a", "t-last-b"] {
        let _ = std::fs::remove_dir_all(root.join(t));
    }
    let first = log_path("last-a");
    ok(seeded(&m, "t-last-a", &first, &["build", "-p", "itoa"]));
    assert_eq!(registry_units_that_ran(&read_log_all(&first)), ["rustc itoa"], "itoa alone was built");
    std::fs::remove_dir_all(root.join("t-last-a")).unwrap();
    let next = log_path("last-b");
    ok(seeded(&m, "t-last-b", &next, &["build", "-p", "itoa"]));
    let lines = read_log_all(&next);
    assert_eq!(seed_line(&lines).0, "seed:1-units", "{lines:?}");
    assert!(registry_units_that_ran(&lines).is_empty(), "itoa was not in the set: {lines:?}");
}

/// A workspace of two packages (`util`, a library, and `app`, a program using it and itoa)
/// in `w`, with its lockfile.
fn small_workspace(w: &Path, xdg: &Path) {
    for (dir, manifest, file, source) in [
        ("util", "[package]\nname = \"util\"\nversion = \"0.1.0\"\nedition = \"2021\"\n", "lib.rs", "pub fn value() -> u32 {\n    7\n}\n"),
        (
            "app",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nutil = { path = \"../util\" }\nitoa = \"1\"\n",
            "main.rs",
            "fn main() {\n    println!(\"{}\", itoa::Buffer::new().format(util::value()));\n}\n",
        ),
    ] {
        std::fs::create_dir_all(w.join(dir).join("src")).unwrap();
        std::fs::write(w.join(dir).join("Cargo.toml"), manifest).unwrap();
        std::fs::write(w.join(dir).join("src").join(file), source).unwrap();
    }
    std::fs::write(w.join("Cargo.toml"), "[workspace]\nmembers = [\"app\", \"util\"]\nresolver = \"2\"\n").unwrap();
    ok(cargo_in(w, xdg, None, "target", &w.join("lock.log"), &["generate-lockfile"]));
}

/// A seeded `cargo build` of the checkout `root` into `root/<target>` (its log in `logs`):
/// what its program `app` prints, and the log's lines.
fn seeded_app_build(m: &Mount, xdg: &Path, logs: &Path, root: &Path, target: &str) -> (String, Vec<Line>) {
    let log = logs.join(format!("{}-{target}.log", root.display().to_string().replace('/', "_")));
    let mut c = cargo_in(root, xdg, Some(m), target, &log, &["build"]);
    c.env("CAIRN_SEED", "1").env("CAIRN_STORE", &m.store).env_remove("CAIRN_DOOR");
    ok(c);
    let out = String::from_utf8(ok(Command::new(root.join(target).join("debug/app"))).stdout).unwrap();
    (out, read_log_all(&log))
}

/// The workspace's own units are seeded too, checked by content: a cleaned target dir and a
/// checkout at another path get them and cargo compiles nothing; a package whose source
/// differs from what its seed was built from is compiled instead (and what depends on it);
/// and a source edited after a seeded build is rebuilt by cargo as after any build. Each
/// program is plain cargo's.
#[test]
fn the_workspaces_own_units_are_seeded_only_while_their_sources_are_the_same() {
    let _g = lock();
    let test = "the_workspaces_own_units_are_seeded_only_while_their_sources_are_the_same";
    let Some(m) = daemon(test, Via::Mount) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (w, xdg) = (dir.path().join("w"), dir.path().join("xdg"));
    small_workspace(&w, &xdg);
    let build = |root: &Path, target: &str| seeded_app_build(&m, &xdg, dir.path(), root, target);
    let compiled = |lines: &[Line]| -> Vec<String> {
        lines.iter().filter(|l| l.kind == "rustc").map(|l| format!("{} {}", l.krate, l.outcome)).collect()
    };
    let (out, lines) = build(&w, "t1");
    assert_eq!(out, "7\n");
    assert_eq!(seed_line(&lines).0, "seed-none:no-set");
    // A fresh target dir of the same checkout: all three units seeded, nothing compiled, the
    // same bytes as the build that compiled them.
    let (out, lines) = build(&w, "t2");
    assert_eq!((out.as_str(), seed_line(&lines).0.as_str()), ("7\n", "seed:3-units"), "{lines:?}");
    assert!(compiled(&lines).is_empty(), "cargo compiled seeded units: {lines:?}");
    let util = |t: &str| {
        let deps = w.join(t).join("debug/deps");
        let found: Vec<String> =
            files(&deps).into_iter().filter(|n| n.starts_with("libutil-") && n.ends_with(".rlib")).collect();
        assert_eq!(found.len(), 1, "{found:?}");
        std::fs::read(deps.join(&found[0])).unwrap()
    };
    assert!(util("t1") == util("t2"), "util's library differs from the one compiled");
    let program = |t: &str| std::fs::read(w.join(t).join("debug/app")).unwrap();
    assert!(program("t1") == program("t2"), "the program differs from the one compiled");
    // Another checkout, at another path: seeded, nothing compiled.
    let w2 = dir.path().join("elsewhere/w");
    copy_sources(&w, &w2, &["lock.log"]);
    let (out, lines) = build(&w2, "target");
    assert_eq!((out.as_str(), seed_line(&lines).0.as_str()), ("7\n", "seed:3-units"), "{lines:?}");
    assert!(compiled(&lines).is_empty(), "{lines:?}");
    // util's source differs from its seed's: util is left out, and so is app, built on the
    // util of the seed; both are compiled; the program is plain cargo's.
    std::fs::write(w2.join("util/src/lib.rs"), "pub fn value() -> u32 {\n    8\n}\n").unwrap();
    let (out, lines) = build(&w2, "t-changed");
    assert_eq!(out, "8\n");
    let (outcome, _) = seed_line(&lines);
    assert!(outcome.starts_with("seed:1-units,2-not:dependency-left-out+source-changed:app-"), "{outcome}");
    assert!(outcome.contains("+util-"), "{outcome}");
    assert_eq!(compiled(&lines), ["util miss", "app miss"]);
    let plain = dir.path().join("plain.log");
    ok(cargo_in(&w2, &xdg, None, "t-plain", &plain, &["build"]));
    let plain_out = String::from_utf8(ok(Command::new(w2.join("t-plain/debug/app"))).stdout).unwrap();
    assert_eq!(out, plain_out);
    // Both versions are in the set now, each unit with what it was built on: the first
    // checkout (7) and the changed one (8) are each seeded whole, never with the other's
    // program.
    let (out, lines) = build(&w2, "t-8");
    assert_eq!((out.as_str(), seed_line(&lines).0.as_str()), ("8\n", "seed:3-units"), "{lines:?}");
    assert!(compiled(&lines).is_empty(), "{lines:?}");
    // After a seeded build, an edit is seen by cargo as after any build: the seeded units are
    // older than anything written once the seed's check began.
    let (out, lines) = build(&w, "t3");
    assert_eq!((out.as_str(), seed_line(&lines).0.as_str()), ("7\n", "seed:3-units"), "{lines:?}");
    std::fs::write(w.join("util/src/lib.rs"), "pub fn value() -> u32 {\n    9\n}\n").unwrap();
    let (out, lines) = build(&w, "t3");
    assert_eq!(out, "9\n");
    assert_eq!(compiled(&lines), ["util miss", "app miss"]);
}

/// A workspace whose packages have build scripts, with its lockfile: `gen`, a library whose
/// script declares its folder `data` (`rerun-if-changed`) and gives the compile `GEN_VALUE`
/// (`rustc-env`) read from it; and `app`, a program on `gen` and itoa whose script declares
/// nothing (cargo then judges the run by its package's newest file, path and time) and
/// writes code the program includes from `OUT_DIR`.
fn scripted_workspace(w: &Path, xdg: &Path) {
    let gen_script = "fn main() {\n    println!(\"cargo:rerun-if-changed=data\");\n    \
                      let v = std::fs::read_to_string(\"data/value.txt\").unwrap();\n    \
                      println!(\"cargo:rustc-env=GEN_VALUE={}\", v.trim());\n}\n";
    let app_script = "fn main() {\n    let out = std::env::var(\"OUT_DIR\").unwrap();\n    \
                      let code = \"pub const GREETING: &str = \\\"hi\\\";\\n\";\n    \
                      std::fs::write(format!(\"{out}/greeting.rs\"), code).unwrap();\n}\n";
    let app_main = "include!(concat!(env!(\"OUT_DIR\"), \"/greeting.rs\"));\n\nfn main() {\n    \
                    println!(\"{} {} {}\", GREETING, gen::value(), itoa::Buffer::new().format(1u8));\n}\n";
    for (path, text) in [
        ("Cargo.toml", "[workspace]\nmembers = [\"app\", \"gen\"]\nresolver = \"2\"\n"),
        ("gen/Cargo.toml", "[package]\nname = \"gen\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
        ("gen/build.rs", gen_script),
        ("gen/data/value.txt", "7\n"),
        ("gen/src/lib.rs", "pub fn value() -> &'static str {\n    env!(\"GEN_VALUE\")\n}\n"),
        (
            "app/Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ngen = { path = \"../gen\" }\nitoa = \"1\"\n",
        ),
        ("app/build.rs", app_script),
        ("app/src/main.rs", app_main),
    ] {
        std::fs::create_dir_all(w.join(path).parent().unwrap()).unwrap();
        std::fs::write(w.join(path), text).unwrap();
    }
    ok(cargo_in(w, xdg, None, "t-lock", &w.join("lock.log"), &["generate-lockfile"]));
}

/// The workspace's own build-script runs are seeded too, checked by what they read: a
/// cleaned target dir gets every unit and cargo runs and compiles nothing; another checkout
/// gets the run that declared its inputs, not the one cargo judges by the package's path
/// (that one, and the program built on it, go through the wrapper as hits); a run whose
/// declared folder changed is left out with everything built on what it told cargo, and the
/// program is plain cargo's; and once both values were built, each checkout gets its own
/// run with the library compiled on that run's `output`, never the other's (cargo cannot
/// tell them apart: the library's sources and flags are the same).
#[test]
fn the_workspaces_build_script_runs_are_seeded_only_while_what_they_read_is_the_same() {
    let _g = lock();
    let test = "the_workspaces_build_script_runs_are_seeded_only_while_what_they_read_is_the_same";
    let Some(m) = daemon(test, Via::Mount) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (w, xdg) = (dir.path().join("w"), dir.path().join("xdg"));
    scripted_workspace(&w, &xdg);
    let build = |root: &Path, target: &str| seeded_app_build(&m, &xdg, dir.path(), root, target);
    let ran = |lines: &[Line]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.kind == "rustc" || l.kind == "build-script")
            .map(|l| format!("{} {} {}", l.kind, l.krate, l.outcome))
            .collect()
    };
    let (out, lines) = build(&w, "t-1");
    assert_eq!(out, "hi 7 1\n");
    assert_eq!(seed_line(&lines).0, "seed-none:no-set");
    // A cleaned target dir: itoa, both scripts' compiles and runs, the library and the
    // program; nothing runs, and the program is the one built.
    let (out, lines) = build(&w, "t-2");
    assert_eq!((out.as_str(), seed_line(&lines).0.as_str()), ("hi 7 1\n", "seed:7-units"), "{lines:?}");
    assert!(ran(&lines).is_empty(), "cargo ran seeded units: {lines:?}");
    let program = |root: &Path, t: &str| std::fs::read(root.join(t).join("debug/app")).unwrap();
    assert!(program(&w, "t-1") == program(&w, "t-2"), "the program differs from the one compiled");
    // Another checkout: gen's run is seeded there (cargo compares the times of what it
    // declared with the run's); app's is not, since cargo reruns it where its package's
    // newest file has another time than cargo recorded, nor the program built on it.
    let w2 = dir.path().join("elsewhere/w");
    copy_sources(&w, &w2, &["lock.log"]);
    let (out, lines) = build(&w2, "t-1");
    assert_eq!(out, "hi 7 1\n");
    let (outcome, _) = seed_line(&lines);
    assert!(outcome.starts_with("seed:5-units,2-not:dependency-left-out+package-touched:app-"), "{outcome}");
    assert_eq!(ran(&lines), ["build-script app hit", "rustc app hit"], "{lines:?}");
    // gen's declared folder changed there: its run is left out, and the library compiled on
    // what the run told cargo, and the program; app's run, recorded in this checkout by the
    // build before, is seeded. The program is plain cargo's.
    std::fs::write(w2.join("gen/data/value.txt"), "8\n").unwrap();
    let (out, lines) = build(&w2, "t-2");
    assert_eq!(out, "hi 8 1\n");
    let (outcome, _) = seed_line(&lines);
    assert!(outcome.starts_with("seed:4-units,3-not:dependency-left-out+source-changed:"), "{outcome}");
    assert_eq!(ran(&lines), ["build-script gen miss", "rustc gen miss", "rustc app miss"], "{lines:?}");
    let plain = dir.path().join("plain.log");
    ok(cargo_in(&w2, &xdg, None, "t-plain", &plain, &["build"]));
    assert_eq!(String::from_utf8(ok(Command::new(w2.join("t-plain/debug/app"))).stdout).unwrap(), out);
    // Both values are in the set now: each checkout is seeded whole with its own run, and
    // its own library, compiled on that run's `output`.
    let (out, lines) = build(&w2, "t-3");
    assert_eq!((out.as_str(), seed_line(&lines).0.as_str()), ("hi 8 1\n", "seed:7-units"), "{lines:?}");
    assert!(ran(&lines).is_empty(), "{lines:?}");
    let (out, lines) = build(&w, "t-3");
    assert_eq!((out.as_str(), seed_line(&lines).0.as_str()), ("hi 7 1\n", "seed:7-units"), "{lines:?}");
    assert!(ran(&lines).is_empty(), "{lines:?}");
    // An edit of the declared folder after a seeded build is seen by cargo: the run is newer
    // than nothing it read.
    std::fs::write(w.join("gen/data/value.txt"), "9\n").unwrap();
    let (out, lines) = build(&w, "t-3");
    assert_eq!(out, "hi 9 1\n");
    assert!(ran(&lines).contains(&"build-script gen miss".to_string()), "{lines:?}");
}

/// The host's target triple.
fn host() -> String {
    let mut c = Command::new("rustc");
    c.arg("-vV");
    String::from_utf8(ok(c).stdout).unwrap().lines().find_map(|l| l.strip_prefix("host: ").map(str::to_string)).unwrap()
}

/// `libz.a` in `dir` whose `zlibVersion()` says `fake-<value>`.
fn fake_zlib(dir: &Path, value: u32) {
    static_lib(dir, "z", &format!("const char *zlibVersion(void) {{ return \"fake-{value}\"; }}\n"));
}

/// A registry crate whose rlib bundles a static library from outside the target dir: here
/// `libz-sys`, with its `links = "z"` overridden in cargo's configuration (`[target.<host>.z]`
/// with `static=z` and a search path), as teams do to link their own build of a library.
/// Cargo's fingerprint of the unit does not see the library's bytes, so once the library
/// changes a seed must not bring back the rlib made from the old one; the program is then
/// plain cargo's.
#[test]
fn a_registry_unit_whose_bundled_native_library_changed_is_not_seeded() {
    let _g = lock();
    let test = "a_registry_unit_whose_bundled_native_library_changed_is_not_seeded";
    let Some(m) = daemon(test, Via::Mount) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (root, libdir, xdg) = (dir.path().join("w"), dir.path().join("zlib"), dir.path().join("xdg"));
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join(".cargo")).unwrap();
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nlibz-sys = \"1\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("src/main.rs"),
        "fn main() {\n    let v = unsafe { std::ffi::CStr::from_ptr(libz_sys::zlibVersion()) };\n    \
         println!(\"{}\", v.to_str().unwrap());\n}\n",
    )
    .unwrap();
    std::fs::write(
        root.join(".cargo/config.toml"),
        format!(
            "[target.{}.z]\nrustc-link-lib = [\"static=z\"]\nrustc-link-search = [\"native={}\"]\n",
            host(),
            libdir.display()
        ),
    )
    .unwrap();
    fake_zlib(&libdir, 42);
    ok(cargo_in(&root, &xdg, None, "target", &dir.path().join("lock.log"), &["generate-lockfile"]));
    let build = |target: &str| {
        let log = dir.path().join(format!("{target}.log"));
        let mut c = cargo_in(&root, &xdg, Some(&m), target, &log, &["build"]);
        c.env("CAIRN_SEED", "1").env("CAIRN_STORE", &m.store).env_remove("CAIRN_DOOR");
        ok(c);
        (String::from_utf8(ok(Command::new(root.join(target).join("debug/app"))).stdout).unwrap(), read_log_all(&log))
    };
    let (out, lines) = build("t1");
    assert_eq!(out, "fake-42\n");
    assert_eq!(seed_line(&lines).0, "seed-none:no-set");
    // The same library: libz-sys is seeded, and cargo compiles only the program.
    let (out, lines) = build("t2");
    assert_eq!(out, "fake-42\n");
    assert!(units_seeded(&seed_line(&lines).0) >= 1, "{lines:?}");
    assert_eq!(registry_units_that_ran(&lines), Vec::<String>::new());
    // The library changes: libz-sys is left out of the seed and compiled again (a miss: its
    // key hashes the library), and the program carries the new library, as plain cargo's does.
    fake_zlib(&libdir, 43);
    let (out, lines) = build("t3");
    let (outcome, _) = seed_line(&lines);
    assert!(outcome.contains("native-changed:libz-sys-"), "{outcome}");
    let zlib: Vec<&Line> = lines.iter().filter(|l| l.kind == "rustc" && l.krate == "libz_sys").collect();
    assert!(!zlib.is_empty() && zlib.iter().all(|l| l.outcome == "miss"), "{lines:?}");
    assert_eq!(out, "fake-43\n");
    ok(cargo_in(&root, &xdg, None, "t-plain", &dir.path().join("plain.log"), &["build"]));
    let plain = String::from_utf8(ok(Command::new(root.join("t-plain/debug/app"))).stdout).unwrap();
    assert_eq!(out, plain);
}

/// A registry unit that links — libc's build script — with a library the linker found
/// through `LIBRARY_PATH`, which no `-L` names: cargo's fingerprint does not see the library,
/// nor can cairn find it from the unit's `-l`, so the seed records what the linker itself
/// read (as the unit's compile key does). Once the library changes, that unit is left out of
/// the seed and linked again, and the program is plain cargo's.
#[test]
fn a_registry_unit_linked_with_a_library_found_through_library_path_is_not_seeded_once_it_changed() {
    let _g = lock();
    let test = "a_registry_unit_linked_with_a_library_found_through_library_path_is_not_seeded_once_it_changed";
    let Some(m) = daemon(test, Via::Mount) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (root, libdir, xdg) = (dir.path().join("w"), dir.path().join("lib"), dir.path().join("xdg"));
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nlibc = \"0.2\"\n",
    )
    .unwrap();
    std::fs::write(root.join("src/main.rs"), "fn main() {\n    println!(\"{}\", unsafe { libc::getpid() } > 0);\n}\n")
        .unwrap();
    let extra = |n: u32| static_lib(&libdir, "cairnextra", &format!("int cairn_extra(void) {{ return {n}; }}\n"));
    extra(1);
    ok(cargo_in(&root, &xdg, None, "target", &dir.path().join("lock.log"), &["generate-lockfile"]));
    let with_lib = |c: &mut Command| {
        c.env("RUSTFLAGS", "-l cairnextra").env("LIBRARY_PATH", &libdir);
    };
    let build = |target: &str| {
        let log = dir.path().join(format!("{target}.log"));
        let mut c = cargo_in(&root, &xdg, Some(&m), target, &log, &["build"]);
        c.env("CAIRN_SEED", "1").env("CAIRN_STORE", &m.store).env_remove("CAIRN_DOOR");
        with_lib(&mut c);
        ok(c);
        (String::from_utf8(ok(Command::new(root.join(target).join("debug/app"))).stdout).unwrap(), read_log_all(&log))
    };
    let script_compiles = |lines: &[Line]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.kind == "rustc" && l.krate == "build_script_build")
            .map(|l| l.outcome.clone())
            .collect()
    };
    let (out, lines) = build("t1");
    assert_eq!(out, "true\n");
    assert_eq!(seed_line(&lines).0, "seed-none:no-set");
    assert_eq!(script_compiles(&lines), ["miss"], "{lines:?}");
    // The same library: libc is seeded, its build script is neither compiled nor run.
    let (_, lines) = build("t2");
    assert!(units_seeded(&seed_line(&lines).0) >= 2, "{lines:?}");
    let ran: Vec<&Line> = lines.iter().filter(|l| l.kind != "seed" && l.krate != "app").collect();
    assert!(ran.is_empty(), "{ran:?}");
    // The library changes: the build script's unit is left out and linked again (a miss: its
    // key hashes what the linker read).
    extra(2);
    let (out, lines) = build("t3");
    let (outcome, _) = seed_line(&lines);
    // (The program's own unit is left out too: its link read the library.)
    assert!(outcome.contains("native-changed") && outcome.contains("libc-"), "{outcome}");
    assert_eq!(script_compiles(&lines), ["miss"], "{lines:?}");
    let mut plain = cargo_in(&root, &xdg, None, "t-plain", &dir.path().join("plain.log"), &["build"]);
    with_lib(&mut plain);
    ok(plain);
    assert_eq!(out, String::from_utf8(ok(Command::new(root.join("t-plain/debug/app"))).stdout).unwrap());
}

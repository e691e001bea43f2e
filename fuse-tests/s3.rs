//! Two mounts with separate local stores sharing one bucket on a real S3-compatible server
//! (s3s-fs on 127.0.0.1).

use std::process::Command;

use crate::common::{doctor, sh, wait_until, Via};
use crate::s3server::{credentials, S3Server};
use crate::workspace::{cacheable, cargo, lock, log_path, ok, read_log, ws};

fn stats(mnt: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(mnt.join(".cairn/stats.json")).unwrap()).unwrap()
}

fn pending(mnt: &std::path::Path) -> u64 {
    stats(mnt)["s3"]["uploads_pending"].as_u64().unwrap()
}

#[test]
fn an_object_committed_on_a_is_read_on_b_and_rm_on_b_reaches_the_bucket() {
    let server = S3Server::start("cache");
    let Some(a) = server.mount("s3 a", None, "cache") else { return };
    let Some(b) = server.mount("s3 b", None, "cache") else { return };
    let data = b"built once, shared by all".repeat(1000);
    let key = a.put(&data);
    let in_bucket = server.object_path("cache", &key.to_hex());
    wait_until(30, "the upload", || in_bucket.exists());
    // The server writes the file before its answer reaches the daemon; then the queue empties.
    wait_until(30, "the upload to be recorded as done", || pending(&a.mnt) == 0);
    assert!(stats(&a.mnt)["s3"]["configured"].as_bool().unwrap());
    let stored = std::fs::metadata(&in_bucket).unwrap().len();
    assert!(stored * 3 < data.len() as u64, "the bucket holds it compressed: {stored} of {} bytes", data.len());
    // B has never seen it: it comes through from the bucket, checked, and is now local to B.
    assert_eq!(std::fs::read(b.path(&key.to_hex())).unwrap(), data);
    assert!(b.store_path(&key).exists());
    // rm on B removes it from the bucket too, so it cannot come back anywhere.
    let (okk, _, err) = sh(&format!("rm {}/{}", b.mnt.display(), key));
    assert!(okk, "{err}");
    wait_until(30, "the remote deletion", || !in_bucket.exists());
    let Some(c) = server.mount("s3 c", None, "cache") else { return };
    assert!(!c.path(&key.to_hex()).exists(), "a third machine does not find it");
}

/// Bytes that do not compress (so the upload stays above the multipart threshold).
/// The peak resident memory of a process, in bytes (VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(&[seed]).finalize_xof().fill(&mut out);
    out
}

#[test]
fn a_large_object_goes_up_in_parts_and_a_damaged_bucket_copy_is_a_miss() {
    let server = S3Server::start("big");
    let Some(a) = server.mount("s3 big a", None, "big") else { return };
    let Some(b) = server.mount("s3 big b", None, "big") else { return };
    let big = noise(40 << 20, 1);
    let small = noise(100_000, 2);
    let (kbig, ksmall) = (a.put(&big), a.put(&small));
    wait_until(60, "the uploads", || pending(&a.mnt) == 0);
    assert!(a.log_text().matches("failed").count() == 0, "{}", a.log_text());
    let peak_before = peak_rss(b.pid());
    assert!(std::fs::read(b.path(&kbig.to_hex())).unwrap() == big, "40 MiB, multipart, back whole");
    // The body is streamed to disk as it arrives: B's daemon never held the 40 MiB.
    let grew = peak_rss(b.pid()) - peak_before;
    assert!(grew < 16 << 20, "fetching 40 MiB raised the daemon's peak memory by {} MiB", grew >> 20);
    // Damage the bucket's copy of the other: B must treat it as a miss, never as bytes.
    let in_bucket = server.object_path("big", &ksmall.to_hex());
    let mut stored = std::fs::read(&in_bucket).unwrap();
    let mid = stored.len() / 2;
    stored[mid] ^= 0x40;
    std::fs::write(&in_bucket, &stored).unwrap();
    assert_eq!(crate::common::errno(std::fs::read(b.path(&ksmall.to_hex()))), libc::ENOENT);
    assert!(!b.store_path(&ksmall).exists());
}

#[test]
fn uploads_pending_when_the_daemon_is_killed_arrive_after_restart() {
    let server = S3Server::start("cache");
    let Some(mut a) = server.mount("s3 kill", None, "cache") else { return };
    server.stall();
    let keys: Vec<_> = (0..5u8).map(|i| a.put(&vec![i; 10_000])).collect();
    assert_eq!(pending(&a.mnt), 5, "commits returned at local speed; uploads wait");
    a.kill9();
    server.resume();
    a.start();
    for k in &keys {
        let p = server.object_path("cache", &k.to_hex());
        wait_until(30, "the resumed upload", || p.exists());
    }
    wait_until(30, "the queue to empty", || pending(&a.mnt) == 0);
}

#[test]
fn a_build_on_b_after_a_compiles_nothing_that_a_cached() {
    build_on_b("a_build_on_b_after_a_compiles_nothing_that_a_cached", Via::Mount);
}

/// A fresh CI container without FUSE, on a warm bucket: the same, through the socket.
#[test]
fn without_fuse_a_fresh_runner_on_a_warm_bucket_compiles_nothing_that_a_cached() {
    build_on_b("without_fuse_a_fresh_runner_on_a_warm_bucket_compiles_nothing_that_a_cached", Via::Socket);
}

fn build_on_b(test: &str, via: Via) {
    let _g = lock();
    let server = S3Server::start("builds");
    let dir = tempfile::tempdir().unwrap();
    let Some(a) = server.mount(test, Some(&dir.path().join("a")), "builds") else { return };
    let target = "t-s3";
    let _ = std::fs::remove_dir_all(ws().root.join(target));
    let build = |m: &crate::common::Mount, name: &str| {
        let log = log_path(name);
        ok(cargo(Some(m), target, &log, &["build"]));
        read_log(&log)
    };
    build(&a, "s3-a");
    wait_until(120, "A's uploads", || pending(&a.mnt) == 0);
    // Machine B: its own, empty local store.
    let Some(b) = server.mount_via(test, Some(&dir.path().join("b")), "builds", via) else { return };
    ok(cargo(None, target, &log_path("x"), &["clean"]));
    let lines = build(&b, "s3-b");
    assert!(cacheable(&lines).len() >= 25);
    let ran: Vec<_> = lines.iter().filter(|l| !l.outcome.starts_with("hit")).collect();
    assert!(ran.is_empty(), "B compiled what A had cached: {ran:?}");
    // Each crate's manifest named its result, so B fetched the results ahead of the lookups:
    // one round trip per crate, not two. (A prefetch that loses the race to the lookup is not
    // counted, hence "most".)
    let s3 = &b.stats()["s3"];
    let (fetched, prefetched) = (s3["fetched"].as_u64().unwrap(), s3["prefetched"].as_u64().unwrap());
    let hits = cacheable(&lines).len() as u64;
    println!("B: {hits} hits, {fetched} objects fetched from the bucket, {prefetched} of them ahead of need");
    assert!(fetched >= 2 * hits, "a manifest and a result per crate: {fetched} fetched for {hits} hits");
    assert!(prefetched * 2 >= hits, "most results were prefetched: {prefetched} of {hits}");
}

#[test]
fn the_server_stopped_mid_build_still_gives_a_correct_build() {
    let _g = lock();
    let mut server = S3Server::start("gone");
    let dir = tempfile::tempdir().unwrap();
    let Some(m) = server.mount("s3 server dies", Some(&dir.path().join("s")), "gone") else { return };
    let target = "t-s3-dies";
    let _ = std::fs::remove_dir_all(ws().root.join(target));
    // The server dies as cargo reaches memchr; everything after must still build.
    let shim = dir.path().join("shim.sh");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" --crate-name memchr \"*) kill -9 {} 2>/dev/null;; esac\nexec {} \"$@\"\n",
            server.pid(),
            env!("CARGO_BIN_EXE_cairn-rustc")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = cargo(Some(&m), target, &log_path("s3-dies"), &["build"]);
    c.env("RUSTC_WRAPPER", &shim);
    ok(c);
    server.kill();
    let out = ok(Command::new(ws().root.join(target).join("debug/app")));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"generated\""));
    assert!(m.log_text().contains("cannot reach the S3 endpoint"), "explained in plain words:\n{}", m.log_text());
}

#[test]
fn doctor_names_the_fix_for_each_s3_misconfiguration() {
    let server = S3Server::start("real");
    let good = credentials();
    let (okk, out) = doctor(&["--s3-bucket", "real", "--s3-endpoint", &server.endpoint], &good);
    assert!(okk, "{out}");
    assert!(out.contains("ok    s3 read/write"), "{out}");

    let mut wrong = good.clone();
    wrong.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY".into(), "not-the-secret".into()));
    let (okk, out) = doctor(&["--s3-bucket", "real", "--s3-endpoint", &server.endpoint], &wrong);
    assert!(!okk);
    assert!(out.contains("FAIL  s3 credentials") && out.contains("AWS_SECRET_ACCESS_KEY"), "{out}");

    let (okk, out) = doctor(&["--s3-bucket", "missing", "--s3-endpoint", &server.endpoint], &good);
    assert!(!okk);
    assert!(out.contains("FAIL  s3 bucket") && out.contains("does not exist"), "{out}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (okk, out) = doctor(&["--s3-bucket", "real", "--s3-endpoint", &format!("http://{closed}")], &good);
    assert!(!okk);
    assert!(out.contains("FAIL  s3 endpoint") && out.contains("cannot connect"), "{out}");

    let https = server.endpoint.replace("http://", "https://");
    let (okk, out) = doctor(&["--s3-bucket", "real", "--s3-endpoint", &https], &good);
    assert!(!okk);
    assert!(out.contains("FAIL  s3 tls") && out.contains("http://"), "{out}");
}

/// A build through a mount whose S3 tier fails in one way: it must pass, and the daemon's log
/// must name the fix.
fn build_passes_and_log_says(server: &S3Server, env: Vec<(String, String)>, target: &str, says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--s3-bucket", "cache", "--s3-endpoint", server.endpoint.as_str()];
    let Some(m) = crate::common::mount_store_with_env(target, Some(&dir.path().join("s")), "8GiB", &flags, &env) else {
        return;
    };
    let _ = std::fs::remove_dir_all(ws().root.join(target));
    let log = log_path(target);
    ok(cargo(Some(&m), target, &log, &["build", "-p", "probe"]));
    assert!(read_log(&log).iter().any(|l| l.krate == "probe" && l.outcome == "miss"));
    // The upload of what was just compiled meets the fault too; the log explains it.
    wait_until(30, "the explanation in the log", || m.log_text().contains(says));
}

#[test]
fn wrong_credentials_still_build_and_the_log_names_the_fix() {
    let _g = lock();
    let server = S3Server::start("cache");
    let mut env = credentials();
    env.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY".into(), "wrong".into()));
    build_passes_and_log_says(&server, env, "t-s3-denied", "S3 refused access to bucket cache (403)");
}

#[test]
fn a_stalled_server_still_builds_and_the_log_names_the_fix() {
    let _g = lock();
    let server = S3Server::start("cache");
    server.stall();
    build_passes_and_log_says(&server, credentials(), "t-s3-stalled", "cannot reach the S3 endpoint");
    server.resume();
}

#[test]
fn a_bucket_that_refuses_uploads_leaves_a_small_cache_working_and_says_so() {
    let server = S3Server::start("cache");
    let mut env = credentials();
    env.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY".into(), "wrong".into()));
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--s3-bucket", "cache", "--s3-endpoint", server.endpoint.as_str()];
    let Some(m) = crate::common::mount_store_with_env("s3-refused", Some(&dir.path().join("s")), "1MiB", &flags, &env)
    else {
        return;
    };
    // Four times the cache's size, in 100 KiB objects: every upload is refused, and every
    // commit still succeeds because nothing stays pinned for an upload that cannot happen.
    for n in 0..40u8 {
        m.put(&noise(100 << 10, n));
        if n == 0 {
            wait_until(30, "the first refused upload", || stats(&m.mnt)["s3"]["uploads_failed"].as_u64() >= Some(1));
        }
    }
    let s = stats(&m.mnt);
    assert!(s["local"]["used_bytes"].as_u64().unwrap() <= 1 << 20);
    assert!(s["local"]["evicted"].as_u64().unwrap() >= 30, "{s}");
    let problem = s["s3"]["problem"].as_str().unwrap_or_default().to_string();
    assert!(problem.contains("S3 refused access to bucket cache (403)"), "{s}");
    let human = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["stats", "--mount"]).arg(&m.mnt).output().unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains("PROBLEM: S3 refused access"), "{human}");
    let log = m.log_text();
    assert_eq!(log.matches("the bucket refuses uploads").count(), 1, "told once:\n{log}");
}

fn mount_s3(server: &S3Server, test: &str, extra: &[&str]) -> Option<crate::common::Mount> {
    let mut flags = vec!["--s3-bucket", "cache", "--s3-endpoint", server.endpoint.as_str()];
    flags.extend_from_slice(extra);
    crate::common::mount_store_with_env(test, None, "1GiB", &flags, &credentials())
}

#[test]
fn a_mount_with_a_signing_key_ignores_objects_planted_without_it() {
    let server = S3Server::start("cache");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("signing.key");
    std::fs::write(&key_file, noise(32, 9)).unwrap();
    let key_arg = key_file.to_str().unwrap();
    let Some(team) = mount_s3(&server, "signed writer", &["--s3-signing-key", key_arg]) else { return };
    let Some(planter) = mount_s3(&server, "unsigned writer", &[]) else { return };
    let (good, planted) = (team.put(b"built by the team"), planter.put(b"a planted proc-macro"));
    wait_until(30, "both uploads", || pending(&team.mnt) == 0 && pending(&planter.mnt) == 0);
    assert!(server.object_path("cache", &planted.to_hex()).exists(), "the planted object is in the bucket");
    let Some(reader) = mount_s3(&server, "signed reader", &["--s3-signing-key", key_arg]) else { return };
    assert_eq!(std::fs::read(reader.path(&good.to_hex())).unwrap(), b"built by the team");
    assert_eq!(crate::common::errno(std::fs::read(reader.path(&planted.to_hex()))), libc::ENOENT);
    assert_eq!(stats(&reader.mnt)["s3"]["unsigned_refused"], 1);
    assert!(reader.log_text().contains("not signed with this machine's signing key"));
}

#[test]
fn a_read_only_mount_reads_the_bucket_and_never_writes_it() {
    let server = S3Server::start("cache");
    let Some(writer) = mount_s3(&server, "rw writer", &[]) else { return };
    let shared = writer.put(b"from the writer");
    wait_until(30, "the upload", || pending(&writer.mnt) == 0);
    let Some(ro) = mount_s3(&server, "read-only", &["--s3-read-only"]) else { return };
    assert_eq!(std::fs::read(ro.path(&shared.to_hex())).unwrap(), b"from the writer");
    let local = ro.put(b"built on a pull request");
    std::fs::remove_file(ro.path(&shared.to_hex())).unwrap();
    assert_eq!(crate::common::errno(std::fs::read(ro.path(&shared.to_hex()))), libc::ENOENT, "not fetched back");
    let mut ro = ro;
    ro.stop(); // a clean unmount: anything queued would be sent now
    assert!(
        server.object_path("cache", &shared.to_hex()).exists(),
        "rm on the read-only machine kept the bucket's copy"
    );
    assert!(!server.object_path("cache", &local.to_hex()).exists(), "nothing uploaded");
}

/// `cairn umount` returns once the daemon is done, pending uploads included, so a CI runner may
/// stop as soon as it returns (before, it returned at the unmount, with uploads still going).
#[test]
fn cairn_umount_returns_once_pending_uploads_are_in_the_bucket() {
    let server = S3Server::start("cache");
    let Some(m) = server.mount("umount waits", None, "cache") else { return };
    server.stall();
    let key = m.put(&noise(200_000, 7));
    assert_eq!(pending(&m.mnt), 1);
    let mnt = m.mnt.clone();
    let umount =
        std::thread::spawn(move || Command::new(env!("CARGO_BIN_EXE_cairn")).arg("umount").arg(&mnt).output().unwrap());
    // The unmount itself happens at once; the upload waits for the server.
    wait_until(30, "the unmount", || {
        !std::fs::read_to_string("/proc/self/mounts").unwrap().contains(m.mnt.to_str().unwrap())
    });
    server.resume();
    let out = umount.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(server.object_path("cache", &key.to_hex()).exists(), "cairn umount returned before the upload was done");
}

/// Without FUSE (a container whose step is about to end): `cairn stop` returns once the
/// daemon is done, pending uploads included.
#[test]
fn without_fuse_cairn_stop_returns_once_pending_uploads_are_in_the_bucket() {
    let server = S3Server::start("cache");
    let test = "without_fuse_cairn_stop_returns_once_pending_uploads_are_in_the_bucket";
    let Some(m) = server.mount_via(test, None, "cache", Via::Socket) else { return };
    server.stall();
    let data = noise(200_000, 9);
    let key = cairn::key::Key::of_bytes(&data);
    let door = cairn::engine::door::Door::at(None, Some(&m.store)).expect("the socket answers");
    door.put(&key, &data, false).unwrap();
    assert_eq!(m.stats()["s3"]["uploads_pending"].as_u64(), Some(1));
    let store = m.store.clone();
    let stop = std::thread::spawn(move || {
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["stop", "--store"])
            .arg(&store)
            .env("CAIRN_MOUNT", "/nonexistent/mnt")
            .env("CAIRN_CONFIG", "/nonexistent/cairn.toml")
            .output()
            .unwrap()
    });
    // The daemon stops taking requests at once (its socket goes); the upload waits for the server.
    wait_until(30, "the daemon to stop serving", || !m.store.join("cairn.sock").exists());
    assert!(!stop.is_finished(), "cairn stop returned with an upload pending");
    server.resume();
    let out = stop.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(server.object_path("cache", &key.to_hex()).exists(), "cairn stop returned before the upload was done");
}

/// A build set: machine A's build records, per workspace, toolchain and profile, the keys it
/// used; machine B's build, starting empty, fetches them all at its first compile, so its
/// lookups find their objects already local (or on their way) instead of waiting for S3.
#[test]
fn a_fresh_machine_fetches_the_build_set_before_cargo_asks() {
    let _g = lock();
    let server = S3Server::start("sets");
    let dir = tempfile::tempdir().unwrap();
    let Some(mut a) = server.mount("s3 set a", Some(&dir.path().join("a")), "sets") else { return };
    let target = "t-s3-set";
    let _ = std::fs::remove_dir_all(ws().root.join(target));
    ok(cargo(Some(&a), target, &log_path("s3-set-a"), &["build"]));
    a.stop(); // saves the build set and uploads it with the rest
    let Some(b) = server.mount("s3 set b", Some(&dir.path().join("b")), "sets") else { return };
    ok(cargo(None, target, &log_path("x"), &["clean"]));
    let log = log_path("s3-set-b");
    ok(cargo(Some(&b), target, &log, &["build"]));
    let lines = read_log(&log);
    let hits = cacheable(&lines).len() as u64;
    assert!(hits >= 25 && lines.iter().all(|l| l.outcome.starts_with("hit")), "{lines:?}");
    let s3 = &stats(&b.mnt)["s3"];
    let (fetched, prefetched) = (s3["fetched"].as_u64().unwrap(), s3["prefetched"].as_u64().unwrap());
    let on_demand = fetched - prefetched;
    println!("B: {hits} hits, {fetched} objects fetched, {prefetched} ahead of need, {on_demand} on demand");
    // Without the set, every manifest is fetched on demand (one per crate).
    assert!(on_demand * 4 <= hits, "{on_demand} of {fetched} objects were fetched on demand for {hits} hits");
}

//! cairn against a real distributed engine: builds shared through a 3-node Garage cluster
//! (replication factor 3) that keeps serving with a node killed, and each common
//! misconfiguration reproduced against it and explained three times over: one line in the
//! daemon's log, the PROBLEM line of `cairn stats`, and `cairn doctor`'s fix.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{doctor, wait_until, Mount};
use crate::garage::{Garage, REGION};
use crate::workspace::{cacheable, cargo, lock, log_path, ok, read_log, ws};

fn stats(mnt: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(mnt.join(".cairn/stats.json")).unwrap()).unwrap()
}

fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(b"garage").update(&[seed]).finalize_xof().fill(&mut out);
    out
}

#[test]
fn builds_share_through_a_three_node_garage_cluster_that_keeps_serving_with_a_node_killed() {
    let _g = lock();
    let mut garage = Garage::start("builds");
    let dir = tempfile::tempdir().unwrap();
    let Some(a) = garage.mount("garage a", Some(&dir.path().join("a")), 0) else { return };
    let target = "t-garage";
    let _ = std::fs::remove_dir_all(ws().root.join(target));
    let build = |m: &Mount, name: &str| {
        let log = log_path(name);
        ok(cargo(Some(m), target, &log, &["build"]));
        read_log(&log)
    };
    let first = build(&a, "garage-a");
    assert!(cacheable(&first).len() >= 25);
    wait_until(120, "A's uploads", || stats(&a.mnt)["s3"]["uploads_pending"].as_u64() == Some(0));
    assert_eq!(stats(&a.mnt)["s3"]["uploads_failed"].as_u64(), Some(0), "{}", a.log_text());

    // A node dies. With replication factor 3, the other two still hold a quorum.
    garage.kill_node(2);
    // Machine B: an empty local store, talking to another node; everything is a hit.
    let Some(b) = garage.mount("garage b", Some(&dir.path().join("b")), 1) else { return };
    ok(cargo(None, target, &log_path("x"), &["clean"]));
    let lines = build(&b, "garage-b");
    let ran: Vec<_> = lines.iter().filter(|l| !l.outcome.starts_with("hit")).collect();
    assert!(ran.is_empty(), "B compiled what A had cached: {ran:?}");
    let out = ok(Command::new(ws().root.join(target).join("debug/app")));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"generated\""));

    // Writes go on too: B's new object reaches the bucket, and C (empty, node 0) reads it.
    let data = noise(300 << 10, 1);
    let key = b.put(&data);
    wait_until(60, "B's upload", || stats(&b.mnt)["s3"]["uploads_pending"].as_u64() == Some(0));
    assert_eq!(stats(&b.mnt)["s3"]["uploads_failed"].as_u64(), Some(0), "{}", b.log_text());
    let Some(c) = garage.mount("garage c", Some(&dir.path().join("c")), 0) else { return };
    assert_eq!(std::fs::read(c.path(&key.to_hex())).unwrap(), data);
    assert!(!b.log_text().contains("WARN"), "no S3 complaint with one node down:\n{}", b.log_text());
}

/// One misconfiguration, end to end: a mount with it serves a lookup (a miss) and, with
/// `write`, a commit; the daemon's log says `says` once; `cairn stats` shows it as the
/// PROBLEM; and `cairn doctor` fails the check `check` with a line that contains `fix`.
struct Case<'a> {
    endpoint: &'a str,
    bucket: &'a str,
    env: Vec<(String, String)>,
    write: bool,
    says: &'a str,
    check: &'a str,
    fix: &'a str,
}

fn explained(garage: &Garage, test: &str, case: Case) {
    let Some(m) = garage.mount_with(test, None, case.endpoint, case.bucket, &case.env, &[]) else { return };
    // A lookup of a key nobody has: the daemon asks the bucket.
    let absent = blake3::hash(test.as_bytes()).to_hex().to_string();
    assert!(std::fs::read(m.path(&absent)).is_err());
    if case.write {
        m.put(&noise(64 << 10, 2));
    }
    wait_until(30, &format!("the log to say: {}", case.says), || m.log_text().contains(case.says));
    // More calls meet the same failure; it is still told once.
    for n in 0..3u8 {
        let _ = std::fs::read(m.path(&blake3::hash(&[n]).to_hex()));
    }
    let log = m.log_text();
    let lines: Vec<_> = log.lines().filter(|l| l.contains(case.says)).collect();
    assert_eq!(lines.len(), 1, "one line in the log:\n{log}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    let human = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["stats", "--mount"]).arg(&m.mnt).output().unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains(&format!("PROBLEM: {}", case.says)), "cairn stats:\n{human}");
    let (passed, out) = doctor(&["--s3-bucket", case.bucket, "--s3-endpoint", case.endpoint], &case.env);
    assert!(!passed, "{out}");
    let line = out.lines().find(|l| l.starts_with("FAIL")).unwrap_or_default();
    assert!(line.contains(case.check) && line.contains(case.fix), "cairn doctor:\n{out}");
}

#[test]
fn a_wrong_region_is_a_400_and_the_fix_names_the_right_region() {
    let garage = Garage::start("cache");
    let mut env = garage.env();
    env.retain(|(k, _)| k != "AWS_REGION");
    env.push(("AWS_REGION".into(), "us-east-1".into()));
    let case = Case {
        endpoint: &garage.endpoints[0],
        bucket: "cache",
        env,
        write: false,
        says: &format!("bucket cache is in region \"{REGION}\""),
        check: "s3 region",
        fix: &format!("set --s3-region {REGION}"),
    };
    explained(&garage, "garage region", case);
}

#[test]
fn https_written_for_a_plain_http_server_names_http() {
    let garage = Garage::start("cache");
    let https = garage.endpoints[0].replace("http://", "https://");
    let plain = garage.endpoints[0].clone();
    let case = Case {
        endpoint: &https,
        bucket: "cache",
        env: garage.env(),
        write: false,
        says: &format!("{https} speaks plain HTTP, not HTTPS: write the endpoint as {plain}"),
        check: "s3 tls",
        fix: &format!("write the endpoint as {plain}"),
    };
    explained(&garage, "garage https", case);
}

/// A TLS front for node 0, with a certificate from a throw-away CA (as a reverse proxy with
/// TLS serves Garage in production). To plain HTTP it either hangs up (`close`) or answers
/// nginx's 400 (`answer`).
struct TlsFront {
    child: std::process::Child,
    port: u16,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsFront {
    fn start(target: &str, mode: &str) -> TlsFront {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let script = format!(
            "set -e; cd {d}
             openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=cairn-test-ca
             openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1
             printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
             openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext.cnf"
        );
        let (made, _, err) = crate::common::sh(&format!("({script}) 2>&1 >/dev/null"));
        assert!(made, "making the test certificates with openssl: {err}");
        let port: u16 = target.rsplit(':').next().unwrap().parse().unwrap();
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuse-tests/tls_proxy.py"))
            .arg(dir.path().join("srv.crt"))
            .arg(dir.path().join("srv.key"))
            .arg(port.to_string())
            .arg(mode)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the TLS front");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let port = first.trim().strip_prefix("listening ").expect("the TLS front's port").parse().unwrap();
        TlsFront { child, port, ca: dir.path().join("ca.crt"), _dir: dir }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn http_written_for_an_https_front_names_https_and_https_with_its_ca_works() {
    let garage = Garage::start("cache");
    // A front that answers plain HTTP with a 400 (nginx), then one that hangs up.
    let answers = TlsFront::start(&garage.endpoints[0], "answer");
    let front = TlsFront::start(&garage.endpoints[0], "close");
    for (test, f) in [("garage http 400", &answers), ("garage http closed", &front)] {
        let http = format!("http://127.0.0.1:{}", f.port);
        let https = format!("https://127.0.0.1:{}", f.port);
        let case = Case {
            endpoint: &http,
            bucket: "cache",
            env: garage.env(),
            write: false,
            says: &format!("{http} speaks HTTPS (TLS), not plain HTTP: write the endpoint as {https}"),
            check: "s3 tls",
            fix: &format!("write the endpoint as {https}"),
        };
        explained(&garage, test, case);
    }
    let https = format!("https://127.0.0.1:{}", front.port);
    // https:// without trusting the CA: the certificate is named as the thing to fix.
    let case = Case {
        endpoint: &https,
        bucket: "cache",
        env: garage.env(),
        write: false,
        says: &format!("TLS failed talking to {https}: check the server's certificate"),
        check: "s3",
        fix: "SSL_CERT_FILE",
    };
    explained(&garage, "garage untrusted", case);
    // With the CA trusted, the HTTPS front works end to end.
    for f in [&front, &answers] {
        let https = format!("https://127.0.0.1:{}", f.port);
        let mut env = garage.env();
        env.push(("SSL_CERT_FILE".into(), f.ca.display().to_string()));
        let (passed, out) = doctor(&["--s3-bucket", "cache", "--s3-endpoint", &https], &env);
        assert!(passed && out.contains("ok    s3 read/write"), "{out}");
    }
}

#[test]
fn a_read_only_key_reads_but_a_put_is_a_403_and_the_fix_is_write_access_or_read_only_mode() {
    let garage = Garage::start("cache");
    // The writer stores an object; the read-only key's mount reads it.
    let Some(w) = garage.mount("garage writer", None, 0) else { return };
    let shared = noise(100 << 10, 3);
    let key = w.put(&shared);
    wait_until(60, "the writer's upload", || stats(&w.mnt)["s3"]["uploads_pending"].as_u64() == Some(0));
    let Some(r) = garage.mount_with("garage reader", None, &garage.endpoints[1], "cache", &garage.reader_env(), &[])
    else {
        return;
    };
    assert_eq!(std::fs::read(r.path(&key.to_hex())).unwrap(), shared);
    drop(r);
    let case = Case {
        endpoint: &garage.endpoints[1],
        bucket: "cache",
        env: garage.reader_env(),
        write: true,
        says: "S3 refused to store or delete objects in bucket cache (403), though the key is valid",
        check: "s3 put",
        fix: "--s3-read-only",
    };
    explained(&garage, "garage read-only key", case);
    // Mounted read-only as advised, the same key raises no problem at all.
    let Some(ro) = garage.mount_with(
        "garage read-only mount",
        None,
        &garage.endpoints[1],
        "cache",
        &garage.reader_env(),
        &["--s3-read-only"],
    ) else {
        return;
    };
    ro.put(&noise(64 << 10, 4));
    assert_eq!(std::fs::read(ro.path(&key.to_hex())).unwrap(), shared);
    assert!(stats(&ro.mnt)["s3"]["problem"].is_null(), "{}", stats(&ro.mnt));
    let (passed, out) = doctor(
        &["--s3-bucket", "cache", "--s3-endpoint", &garage.endpoints[1], "--s3-read-only"],
        &garage.reader_env(),
    );
    assert!(passed, "{out}");
}

#[test]
fn a_missing_bucket_is_named_with_how_to_create_it() {
    let garage = Garage::start("cache");
    let case = Case {
        endpoint: &garage.endpoints[0],
        bucket: "no-such-bucket",
        env: garage.env(),
        write: false,
        says: "bucket no-such-bucket does not exist",
        check: "s3 bucket",
        fix: "garage bucket create no-such-bucket",
    };
    explained(&garage, "garage no bucket", case);
}

#[test]
fn an_unreachable_cluster_still_builds_and_says_so() {
    let _g = lock();
    let mut garage = Garage::start("cache");
    let endpoint = garage.endpoints[0].clone();
    garage.kill_all();
    let case = Case {
        endpoint: &endpoint,
        bucket: "cache",
        env: garage.env(),
        write: false,
        says: &format!("cannot reach the S3 endpoint {endpoint}"),
        check: "s3 endpoint",
        fix: "cannot connect",
    };
    explained(&garage, "garage unreachable", case);
    // And a build through such a mount passes, compiling.
    let Some(m) = garage.mount("garage unreachable build", None, 0) else { return };
    let target = "t-garage-down";
    let _ = std::fs::remove_dir_all(ws().root.join(target));
    let log = log_path(target);
    ok(cargo(Some(&m), target, &log, &["build", "-p", "probe"]));
    assert!(read_log(&log).iter().any(|l| l.krate == "probe" && l.outcome == "miss"));
}

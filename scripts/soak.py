"""cairn's soak test: one mount over a small local store and a real S3 server (s3s-fs on
127.0.0.1), under everything at once for a while:

- cargo builds of a small project with real crates (a proc-macro, a build script, a binary)
  through cairn-rustc, each into a fresh target dir, and the binary run and checked;
- a writer committing random objects (temp + rename) and a reader checking them back: an
  object that is there must hold the bytes it was committed with (its name is their SHA-256);
- `rm` of random entries, and evictions (the store is small);
- S3 faults: the server stopped (SIGSTOP) for a while, then killed and restarted.

It samples the daemon's resident memory and open files all along, and at the end (faults off,
uploads drained) checks that every object still in the local store is in the bucket. It
prints a summary and a markdown row for docs/benchmarks.md, and exits non-zero on a failed
build, a wrong byte, a lost object, a daemon panic, or memory or open files that kept growing.

Usage: scripts/soak [--secs N] [--short]   (default 1800 s; --short is 100 s, for CI)
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAIRN = ROOT / "target/release/cairn"
WRAPPER = ROOT / "target/release/cairn-rustc"
ACCESS, SECRET = "cairnsoak", "cairnsoaksecret"
LIMIT = "160MiB"

CARGO_TOML = """[package]
name = "soakprobe"
version = "0.1.0"
edition = "2021"

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
itoa = "1"
memchr = "2"
"""
BUILD_RS = 'fn main() { println!("cargo:rustc-env=SOAK_STAMP=built-by-script"); }\n'
MAIN_RS = """#[derive(serde::Serialize)]
struct Probe { n: u32, stamp: &'static str }
fn main() {
    let mut b = itoa::Buffer::new();
    let p = Probe { n: 42, stamp: env!("SOAK_STAMP") };
    let j = serde_json::to_string(&p).unwrap();
    assert!(memchr::memchr(b'4', j.as_bytes()).is_some());
    println!("{} {}", j, b.format(7u8));
}
"""
EXPECTED = '{"n":42,"stamp":"built-by-script"} 7'


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """s3s-fs on a fixed port, so a restarted server is the same endpoint."""

    def __init__(self, data):
        self.data, self.port, self.proc = data, free_port(), None
        self.endpoint = f"http://127.0.0.1:{self.port}"
        home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
        self.bin = shutil.which("s3s-fs") or str(home / "bin/s3s-fs")

    def start(self):
        self.proc = subprocess.Popen(
            [self.bin, "--host", "127.0.0.1", "--port", str(self.port), "--access-key", ACCESS,
             "--secret-key", SECRET, str(self.data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("soak: s3s-fs did not start")

    def stop_for(self, secs):
        self.proc.send_signal(signal.SIGSTOP)
        time.sleep(secs)
        self.proc.send_signal(signal.SIGCONT)

    def restart(self):
        self.proc.kill()
        self.proc.wait()
        self.start()

    def close(self):
        if self.proc:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


def proc_sample(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds
    except (OSError, StopIteration):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=int, default=int(os.environ.get("SOAK_SECS", "1800")))
    ap.add_argument("--short", action="store_true", help="100 s, one builder (the CI version)")
    a = ap.parse_args()
    secs = 100 if a.short else a.secs
    builders = 1 if a.short else 2
    fault_every = (25, 35) if a.short else (30, 90)

    work = Path(tempfile.mkdtemp(prefix="cairn-soak-"))
    data, store, mnt, proj = work / "s3", work / "store", work / "mnt", work / "proj"
    (data / "soak").mkdir(parents=True)
    mnt.mkdir()
    (proj / "src").mkdir(parents=True)
    (proj / "Cargo.toml").write_text(CARGO_TOML)
    (proj / "build.rs").write_text(BUILD_RS)
    (proj / "src/main.rs").write_text(MAIN_RS)
    subprocess.run(["cargo", "generate-lockfile", "--quiet"], cwd=proj, check=True)
    subprocess.run(["cargo", "fetch", "--quiet"], cwd=proj, check=True)

    server = Server(data)
    server.start()
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", CAIRN_LOG_LEVEL="info")
    daemon_log = open(work / "daemon.log", "w")
    daemon = subprocess.Popen(
        [str(CAIRN), "mount", "--store", str(store), "--max-size", LIMIT, "--s3-bucket", "soak",
         "--s3-endpoint", server.endpoint, str(mnt)],
        env=env, stdout=daemon_log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while str(mnt) not in Path("/proc/self/mounts").read_text():
        if daemon.poll() is not None or time.time() > deadline:
            raise SystemExit(f"soak: the daemon did not mount; see {work / 'daemon.log'}")
        time.sleep(0.05)
    log(f"mounted {mnt} over {store} (limit {LIMIT}), S3 at {server.endpoint}; running {secs} s")

    stop = threading.Event()
    lock = threading.Lock()
    n = dict(builds=0, failed_builds=0, written=0, write_errors=0, checked=0, wrong=0, absent=0, rms=0,
             stalls=0, restarts=0)
    failures = []
    samples = []
    written = []

    def count(k, by=1):
        with lock:
            n[k] += by

    build_env = dict(env, RUSTC_WRAPPER=str(WRAPPER), CAIRN_MOUNT=str(mnt), CAIRN_STORE=str(store),
                     CAIRN_AUTOSTART="0", CARGO_INCREMENTAL="0")
    build_env.pop("RUSTFLAGS", None)

    def builder(i):
        target = work / f"target-{i}"
        while not stop.is_set():
            shutil.rmtree(target, ignore_errors=True)
            r = subprocess.run(["cargo", "build", "--offline", "--quiet", "--target-dir", str(target)], cwd=proj,
                               env=build_env, capture_output=True, text=True)
            out = subprocess.run([str(target / "debug/soakprobe")], capture_output=True, text=True) \
                if r.returncode == 0 else None
            if r.returncode == 0 and out.stdout.strip() == EXPECTED:
                count("builds")
            else:
                count("failed_builds")
                with lock:
                    failures.append(f"build {i}: exit {r.returncode}: {r.stderr[-2000:]}"
                                    + (f" / ran: {out.stdout!r} {out.stderr[-500:]!r}" if out else ""))

    def writer():
        rng = random.Random(1)
        while not stop.is_set():
            data = rng.randbytes(rng.choice([1 << 10, 64 << 10, 512 << 10, 2 << 20]))
            key = hashlib.sha256(data).hexdigest()
            tmp = mnt / f".tmp.soak.{key[:16]}"
            try:
                tmp.write_bytes(data)
                os.rename(tmp, mnt / key)
                count("written")
                with lock:
                    written.append(key)
            except OSError as e:
                count("write_errors")
                try:
                    tmp.unlink()
                except OSError:
                    pass
                with lock:
                    failures.append(f"write: {e}")
            time.sleep(0.05)

    def reader():
        rng = random.Random(2)
        while not stop.is_set():
            with lock:
                key = rng.choice(written) if written else None
            if key:
                try:
                    got = (mnt / key).read_bytes()
                    count("checked")
                    if hashlib.sha256(got).hexdigest() != key:
                        count("wrong")
                        with lock:
                            failures.append(f"wrong bytes under {key}")
                except FileNotFoundError:
                    count("absent")  # evicted or removed: allowed
                except OSError as e:
                    with lock:
                        failures.append(f"read {key}: {e}")
            time.sleep(0.02)

    def remover():
        rng = random.Random(3)
        while not stop.is_set():
            time.sleep(2)
            names = [e for e in os.listdir(mnt) if len(e) == 64]
            if names:
                try:
                    os.unlink(mnt / rng.choice(names))
                    count("rms")
                except FileNotFoundError:
                    pass

    def faults():
        rng = random.Random(4)
        while not stop.wait(rng.uniform(*fault_every)):
            if n["stalls"] <= n["restarts"]:
                log("fault: S3 server stopped (SIGSTOP)")
                server.stop_for(rng.uniform(5, 15))
                count("stalls")
            else:
                log("fault: S3 server killed and restarted")
                server.restart()
                count("restarts")

    def sampler():
        while not stop.wait(5):
            s = proc_sample(daemon.pid)
            if s:
                samples.append((time.time(), *s))

    threads = [threading.Thread(target=builder, args=(i,)) for i in range(builders)]
    threads += [threading.Thread(target=f) for f in (writer, reader, remover, faults, sampler)]
    started = time.time()
    for t in threads:
        t.start()
    while time.time() - started < secs:
        time.sleep(5)
        if daemon.poll() is not None:
            failures.append("the daemon exited")
            break
    stop.set()
    for t in threads:
        t.join()
    log("stopping; waiting for uploads to drain")

    def stats():
        return json.loads((mnt / ".cairn/stats.json").read_text())

    deadline = time.time() + 180
    while stats()["s3"]["uploads_pending"] > 0 and time.time() < deadline:
        time.sleep(0.5)
    st = stats()
    local = [e for e in os.listdir(mnt) if len(e) == 64]
    lost = [k for k in local if not (data / "soak" / k).exists()]
    subprocess.run([str(CAIRN), "umount", str(mnt)], check=False)
    daemon.wait(timeout=200)
    server.close()
    daemon_log.close()
    text = (work / "daemon.log").read_text()
    panics = text.count("bug: a panic")

    warm = [s for s in samples if s[0] - started > min(60, secs / 3)]
    rss = [s[1] for s in warm] or [0]
    fds = [s[2] for s in warm] or [0]
    third = max(1, len(warm) // 3)
    rss_first, rss_last = max(rss[:third]), max(rss[-third:])
    fds_first, fds_last = max(fds[:third]), max(fds[-third:])
    grew_rss = rss_last > rss_first * 1.5 + 50_000
    grew_fds = fds_last > fds_first + 64
    summary = dict(n, secs=secs, lost=len(lost), local_objects=len(local), panics=panics,
                   evicted=st["local"]["evicted"], uploads_pending=st["s3"]["uploads_pending"],
                   uploads_failed=st["s3"]["uploads_failed"], uploads_skipped=st["s3"]["uploads_skipped"],
                   rss_kib_first=rss_first, rss_kib_last=rss_last, rss_kib_peak=max(rss),
                   fds_first=fds_first, fds_last=fds_last, fds_peak=max(fds))
    print(json.dumps(summary, indent=2))
    print(f"| {time.strftime('%Y-%m-%d')} | {secs} s | {n['builds']} ({n['failed_builds']} failed) | "
          f"{n['written']} / {n['checked']} checked, {n['wrong']} wrong | {n['rms']} | {st['local']['evicted']} | "
          f"{n['stalls']} stops, {n['restarts']} restarts | {max(rss) // 1024} MiB peak, "
          f"{rss_first // 1024} → {rss_last // 1024} MiB | {max(fds)} peak, {fds_first} → {fds_last} | "
          f"{len(lost)} |")
    bad = []
    if n["failed_builds"]:
        bad.append(f"{n['failed_builds']} builds failed")
    if n["wrong"]:
        bad.append(f"{n['wrong']} reads returned wrong bytes")
    if lost:
        bad.append(f"{len(lost)} local objects never reached the bucket: {lost[:3]}")
    if panics:
        bad.append(f"{panics} panics in the daemon log")
    if st["s3"]["uploads_pending"]:
        bad.append(f"{st['s3']['uploads_pending']} uploads still pending after the drain")
    if grew_rss:
        bad.append(f"resident memory kept growing: {rss_first} → {rss_last} KiB")
    if grew_fds:
        bad.append(f"open files kept growing: {fds_first} → {fds_last}")
    if n["builds"] == 0:
        bad.append("no build finished")
    for f in failures[:5]:
        print("failure:", f, file=sys.stderr)
    if bad:
        print(f"soak: FAILED: {'; '.join(bad)} (logs in {work})", file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    log("passed")


if __name__ == "__main__":
    main()

"""Driver for scripts/bench: see that file. Runs only on this machine's loopback and disk."""
import json, os, shutil, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench-build"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
HITS = int(os.environ.get("BENCH_HITS", "20"))
CAIRN = ROOT / "target/release/cairn"
WRAPPER = ROOT / "target/release/cairn-rustc"
BENCH_SERVER = ROOT / "scripts/s3-bench-server/target/release/s3-bench-server"
SCCACHE = shutil.which("sccache")
WORK = BENCH / "workload"
MNT, STORE, SCC = BENCH / "mnt", BENCH / "store", BENCH / "sccache"

DEPS = """serde = { version = "1", features = ["derive"] }
serde_json = "1"
clap = { version = "4", features = ["derive"] }
regex = "1"
tokio = { version = "1", features = ["rt-multi-thread", "macros", "fs", "io-util"] }
anyhow = "1"
thiserror = "2"
log = "0.4"
env_logger = "0.11"
rand = "0.9"
chrono = "0.4"
itertools = "0.14"
once_cell = "1"
bytes = "1"
futures = "0.3"
url = "2"
uuid = { version = "1", features = ["v4"] }
base64 = "0.22"
sha2 = "0.10"
hex = "0.4"
toml = "0.8"
walkdir = "2"
tempfile = "3"
indexmap = "2"
smallvec = "1"
parking_lot = "0.12"
crossbeam-channel = "0.5"
rayon = "1"
semver = "1"
humantime = "2"
"""

MAIN = """use clap::Parser;
#[derive(Parser, serde::Serialize)]
struct A { #[arg(long, default_value_t = 1)] n: u32 }
fn main() {
    let a = A::parse();
    let re = regex::Regex::new("a+").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { println!("{} {}", serde_json::to_string(&a).unwrap(), re.is_match("aa")); });
    let _ = (uuid::Uuid::new_v4(), chrono::Utc::now(), url::Url::parse("http://x").unwrap());
    let _ = (base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"x"), hex::encode([1]));
    let _ = <sha2::Sha256 as sha2::Digest>::digest(b"x");
    let _: Vec<u32> = rayon::prelude::ParallelIterator::collect(rayon::prelude::IntoParallelIterator::into_par_iter(0..3u32));
}
"""


def sh(cmd, env=None, check=True, **kw):
    return subprocess.run(cmd, env=env, check=check, **kw)


def base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARGO_", "CAIRN_", "SCCACHE_")) and k != "RUSTC_WRAPPER"}
    env.update(CARGO_INCREMENTAL="0", CARGO_TARGET_DIR=str(WORK / "target"))
    return env


def cairn_env():
    env = base_env()
    env.update(RUSTC_WRAPPER=str(WRAPPER), CAIRN_MOUNT=str(MNT), CAIRN_STORE=str(STORE), CAIRN_AUTOSTART="0",
               CAIRN_LOG=str(BENCH / "cairn-rustc.log"), XDG_CACHE_HOME=str(BENCH / "xdg"))
    return env


def sccache_env():
    env = base_env()
    env.update(RUSTC_WRAPPER=SCCACHE, SCCACHE_DIR=str(SCC), SCCACHE_CACHE_SIZE="20G", SCCACHE_SERVER_PORT="4227")
    return env


def setup():
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "src").mkdir(exist_ok=True)
    (WORK / "Cargo.toml").write_text('[package]\nname = "workload"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n' + DEPS)
    (WORK / "src/main.rs").write_text(MAIN)
    sh(["cargo", "fetch", "--quiet"], cwd=WORK, env=base_env())


def clean():
    shutil.rmtree(WORK / "target", ignore_errors=True)


def build(env, extra=()):
    clean_start = time.perf_counter()
    sh(["cargo", "build", "--quiet", *extra], cwd=WORK, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - clean_start


def cairn_reset():
    sh([str(CAIRN), "umount", str(MNT)], check=False, stderr=subprocess.DEVNULL)
    shutil.rmtree(STORE, ignore_errors=True)
    shutil.rmtree(BENCH / "xdg", ignore_errors=True)
    sh([str(CAIRN), "start", "--store", str(STORE), "--max-size", "20GiB", str(MNT)], stderr=subprocess.DEVNULL)


def sccache_reset():
    env = sccache_env()
    sh([SCCACHE, "--stop-server"], env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(SCC, ignore_errors=True)
    sh([SCCACHE, "--start-server"], env=env, stdout=subprocess.DEVNULL)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def capture_commands(crates):
    """Rebuilds with a shim wrapper that records the exact argv and env of chosen crates."""
    shim = BENCH / "capture.sh"
    out = BENCH / "captured"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    shim.write_text(f"""#!/usr/bin/env python3
import json, os, sys
argv = sys.argv[1:]
name = argv[argv.index("--crate-name") + 1] if "--crate-name" in argv else ""
if name in {crates!r}:
    json.dump({{"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}}, open("{out}/" + name + ".json", "w"))
os.execv(os.environ["REAL_WRAPPER"], [os.environ["REAL_WRAPPER"]] + argv)
""")
    shim.chmod(0o755)
    env = cairn_env()
    env.update(RUSTC_WRAPPER=str(shim), REAL_WRAPPER=str(WRAPPER))
    clean()
    sh(["cargo", "build", "--quiet"], cwd=WORK, env=env, stdout=subprocess.DEVNULL)
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def hit_overhead(cmd, wrapper, env_over):
    env = dict(cmd["env"])
    env.update(env_over)
    times = []
    for _ in range(HITS):
        t = time.perf_counter()
        sh([wrapper] + cmd["argv"], env=env, cwd=cmd["cwd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return median(times)


def compile_times():
    """Compile time per crate from the cairn log of the cold build (column 6, ms)."""
    times = {}
    for line in (BENCH / "cairn-rustc.log").read_text().splitlines():  # the cold build's log
        f = line.split("\t")
        if len(f) >= 6 and f[3] == "miss" and f[5] != "-":
            times[f[1]] = float(f[5]) / 1000
    return times


def timed_build(env, wrapper, out):
    """A build whose every wrapper call is timed by a small shim (same shim for both caches)."""
    shim = BENCH / "time-shim.sh"
    shim.write_text('#!/bin/bash\nt0=$(date +%s%N)\n"$REAL_WRAPPER" "$@"\nrc=$?\n'
                    'echo "$(( $(date +%s%N) - t0 ))" >> "$TIMES_OUT"\nexit $rc\n')
    shim.chmod(0o755)
    env = dict(env)
    env.update(RUSTC_WRAPPER=str(shim), REAL_WRAPPER=wrapper, TIMES_OUT=str(out))
    out.unlink(missing_ok=True)
    clean()
    sh(["cargo", "build", "--quiet"], cwd=WORK, env=env, stdout=subprocess.DEVNULL)
    return sum(int(x) for x in out.read_text().split()) / 1e9


def share_avoided():
    """Share of the cold build's wrapper-call time (compiles) that the warm build avoids."""
    print("\n| cache | cold: time in rustc calls | warm: time in rustc calls | share avoided |")
    print("|---|---|---|---|")
    for name, reset, env, wrapper in [
        ("sccache", sccache_reset, sccache_env, SCCACHE),
        ("cairn", cairn_reset, cairn_env, str(WRAPPER)),
    ]:
        reset()
        cold = timed_build(env(), wrapper, BENCH / f"times-{name}-cold")
        warm = timed_build(env(), wrapper, BENCH / f"times-{name}-warm")
        print(f"| {name} | {cold:.1f} s | {warm:.1f} s | {100 * (1 - warm / cold):.1f} % |")


def start_s3_server(kind, data):
    """`s3s-fs` (what the tests use), `nodelay` (scripts/s3-bench-server), or `nodelay+MS` (the
    same with MS ms added to every request, a stand-in for a distant bucket). Returns (process,
    endpoint)."""
    shutil.rmtree(data, ignore_errors=True)
    (data / "cache").mkdir(parents=True)
    if kind == "s3s-fs":
        s3s = shutil.which("s3s-fs") or str(Path.home() / ".cargo/bin/s3s-fs")
        cmd = [s3s, "--host", "127.0.0.1", "--port", "0", "--access-key", "ak", "--secret-key", "sk", str(data)]
    else:
        delay = kind.split("+")[1] if "+" in kind else "0"
        cmd = [str(BENCH_SERVER), str(data), "--delay-ms", delay]
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "RUST_LOG": "info"})
    endpoint = None
    for line in srv.stdout:
        if "server is running at " in line:
            endpoint = line.split("server is running at ")[1].strip()
            break
    import threading
    threading.Thread(target=lambda: [None for _ in srv.stdout], daemon=True).start()
    return srv, endpoint


def s3_bench():
    """Machines sharing a bucket: A builds cold, B (empty local store) builds warm from the
    bucket alone; the same for sccache, whose S3 mode has no local tier."""
    kinds = os.environ.get("BENCH_S3_SERVERS", "s3s-fs,nodelay,nodelay+25").split(",")
    jobs = os.environ.get("BENCH_S3_JOBS")  # also a warm build from S3 with `cargo build -j N`
    if any(k != "s3s-fs" for k in kinds):
        sh(["cargo", "build", "--release", "--quiet", "--manifest-path", str(ROOT / "scripts/s3-bench-server/Cargo.toml")])
    data = BENCH / "s3-data"
    creds = dict(AWS_ACCESS_KEY_ID="ak", AWS_SECRET_ACCESS_KEY="sk", AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")

    def start(store, extra):
        sh([str(CAIRN), "umount", str(MNT)], check=False, stderr=subprocess.DEVNULL)
        shutil.rmtree(store, ignore_errors=True)
        sh([str(CAIRN), "start", "--store", str(store), "--max-size", "20GiB", str(MNT)] + extra,
           env={**os.environ, **creds}, stderr=subprocess.DEVNULL)

    def pending():
        return json.loads((MNT / ".cairn/stats.json").read_text())["s3"]["uploads_pending"]

    def sccache_s3_env(endpoint):
        env = sccache_env()
        env.pop("SCCACHE_DIR")
        env.update(creds, SCCACHE_BUCKET="cache", SCCACHE_ENDPOINT=endpoint, SCCACHE_REGION="us-east-1",
                   SCCACHE_S3_USE_SSL="false", SCCACHE_S3_KEY_PREFIX="sccache/")
        return env

    def sccache_restart(env):
        sh([SCCACHE, "--stop-server"], env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sh([SCCACHE, "--start-server"], env=env, stdout=subprocess.DEVNULL)

    res = {k: [] for k in ["cold_local", "warm_local"]}
    for kind in kinds:
        for k in ["cold_s3", "warm_s3", "warm_s3_noprefetch", "sccache_cold_s3", "sccache_warm_s3"] + (["warm_s3_j"] if jobs else []):
            res[f"{kind}:{k}"] = []
    for i in range(RUNS):
        print(f"s3 run {i + 1}/{RUNS}", file=sys.stderr)
        start(STORE, []); shutil.rmtree(BENCH / "xdg", ignore_errors=True)
        clean(); res["cold_local"].append(build(cairn_env()))
        clean(); res["warm_local"].append(build(cairn_env()))
        for kind in kinds:
            srv, endpoint = start_s3_server(kind, data)
            s3flags = ["--s3-bucket", "cache", "--s3-endpoint", endpoint]
            start(BENCH / "store-a", s3flags)
            clean(); res[f"{kind}:cold_s3"].append(build(cairn_env()))
            while pending() > 0:
                time.sleep(0.05)
            start(BENCH / "store-b", s3flags)  # machine B: empty local store, same bucket
            clean(); res[f"{kind}:warm_s3"].append(build(cairn_env()))
            start(BENCH / "store-c", s3flags + ["--s3-prefetch=false"])  # machine C: the same, no prefetch
            clean(); res[f"{kind}:warm_s3_noprefetch"].append(build(cairn_env()))
            if jobs:
                start(BENCH / "store-d", s3flags)  # machine D: as B, with more cargo jobs
                clean(); res[f"{kind}:warm_s3_j"].append(build(cairn_env(), ["-j", jobs]))
            sh([str(CAIRN), "umount", str(MNT)], check=False)
            env = sccache_s3_env(endpoint)
            sccache_restart(env)
            clean(); res[f"{kind}:sccache_cold_s3"].append(build(env))
            sccache_restart(env)  # nothing local survives: sccache's S3 mode reads the bucket only
            clean(); res[f"{kind}:sccache_warm_s3"].append(build(env))
            sh([SCCACHE, "--stop-server"], env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            srv.kill()
            srv.wait()
        print({k: round(v[-1], 2) for k, v in res.items()}, file=sys.stderr)
    m = {k: median(v) for k, v in res.items()}
    print(f"\n## S3 tier (median of {RUNS} runs; servers on 127.0.0.1)\n")
    print(f"cairn, local store only: cold {m['cold_local']:.1f} s, warm {m['warm_local']:.1f} s.\n")
    print("| server | cairn cold (A) | cairn warm from S3 (B) | B / warm local | B without prefetch | sccache cold | sccache warm from S3 | cairn B / sccache warm |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        g = lambda k: m[f"{kind}:{k}"]
        print(f"| {kind} | {g('cold_s3'):.1f} s | {g('warm_s3'):.1f} s | {g('warm_s3') / m['warm_local']:.2f} | "
              f"{g('warm_s3_noprefetch'):.1f} s | {g('sccache_cold_s3'):.1f} s | {g('sccache_warm_s3'):.1f} s | "
              f"{g('warm_s3') / g('sccache_warm_s3'):.2f} |")
    if jobs:
        for kind in kinds:
            print(f"\n{kind}: cairn warm from S3 with -j {jobs}: {m[f'{kind}:warm_s3_j']:.1f} s "
                  f"({m[f'{kind}:warm_s3_j'] / m['warm_local']:.2f} × warm local)")
    print("\nraw:", json.dumps({k: [round(x, 2) for x in v] for k, v in res.items()}))


def main():
    BENCH.mkdir(parents=True, exist_ok=True)
    setup()
    if os.environ.get("BENCH_ONLY") == "share":
        share_avoided()
        return
    if os.environ.get("BENCH_ONLY") == "s3":
        s3_bench()
        return
    res = {k: [] for k in ["plain", "sccache_cold", "sccache_warm", "cairn_cold", "cairn_warm"]}
    for i in range(RUNS):
        print(f"run {i + 1}/{RUNS}", file=sys.stderr)
        clean(); res["plain"].append(build(base_env()))
        sccache_reset(); clean(); res["sccache_cold"].append(build(sccache_env()))
        clean(); res["sccache_warm"].append(build(sccache_env()))
        cairn_reset()
        (BENCH / "cairn-rustc.log").unlink(missing_ok=True)
        clean(); res["cairn_cold"].append(build(cairn_env()))
        ctimes = compile_times()
        (BENCH / "cairn-rustc.log").rename(BENCH / "cairn-rustc-cold.log")
        clean(); res["cairn_warm"].append(build(cairn_env()))
        warm = [l.split("\t") for l in (BENCH / "cairn-rustc.log").read_text().splitlines()]
        hit_ms = [float(f[4]) for f in warm if f[3].startswith("hit")]
        ran = sum(1 for f in warm if not f[3].startswith("hit"))
        warm_summary = (f"{len(hit_ms)} hits, {ran} rustc runs; hit time over all crates: median "
                        f"{median(hit_ms):.1f} ms, p90 {statistics.quantiles(hit_ms, n=10)[-1]:.1f} ms (under cargo -j2)")
        (BENCH / "cairn-rustc-cold.log").rename(BENCH / "cairn-rustc.log")
        print({k: round(v[-1], 2) for k, v in res.items()}, file=sys.stderr)
    m = {k: median(v) for k, v in res.items()}
    print(f"\n## Build cache (median of {RUNS} interleaved runs; workload: {len(DEPS.splitlines())} direct dependencies)\n")
    print("| build | plain cargo | sccache | cairn | cairn / sccache | cairn / plain |")
    print("|---|---|---|---|---|---|")
    print(f"| cold | {m['plain']:.1f} s | {m['sccache_cold']:.1f} s | {m['cairn_cold']:.1f} s | {m['cairn_cold'] / m['sccache_cold']:.2f} | {m['cairn_cold'] / m['plain']:.2f} |")
    print(f"| warm (after cargo clean) | — | {m['sccache_warm']:.1f} s | {m['cairn_warm']:.1f} s | {m['cairn_warm'] / m['sccache_warm']:.2f} | {m['cairn_warm'] / m['plain']:.2f} |")
    print(f"\ncairn, last warm build: {warm_summary}")
    # Per-crate hit overhead, both caches warm.
    crates = ["itoa", "once_cell", "memchr", "serde_json", "regex_syntax", "syn", "tokio"]
    cmds = capture_commands(crates)
    sccache_reset(); clean(); build(sccache_env())  # fill sccache for the same commands
    print("\n| crate | compile time | cairn hit (median of %d) | sccache hit (median of %d) | cairn / sccache |" % (HITS, HITS))
    print("|---|---|---|---|---|")
    ratios = []
    for c in crates:
        if c not in cmds:
            continue
        cmd = cmds[c]
        ch = hit_overhead(cmd, str(WRAPPER), {})
        sc = hit_overhead(cmd, SCCACHE, {"SCCACHE_DIR": str(SCC), "SCCACHE_SERVER_PORT": "4227"})
        ratios.append(ch)
        print(f"| {c} | {ctimes.get(c, float('nan')) * 1000:.0f} ms | {ch * 1000:.1f} ms | {sc * 1000:.1f} ms | {ch / sc:.2f} |")
    print(f"\nmedian cairn hit over these crates: {median(ratios) * 1000:.1f} ms")
    share_avoided()
    sh([str(CAIRN), "umount", str(MNT)], check=False)
    sh([SCCACHE, "--stop-server"], env=sccache_env(), check=False, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()

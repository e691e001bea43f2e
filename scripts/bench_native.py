"""Driver for scripts/bench-native: see that file. Runs only on this machine's disk; the only
network use is cargo's own fetch from crates.io before the timed builds."""
import os, resource, shutil, statistics, subprocess, sys, tarfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # the pure-Rust workload (DEPS, MAIN) and cairn's binaries

ROOT = bench.ROOT
BENCH = ROOT / ".bench-native"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WORKLOADS = os.environ.get("BENCH_WORKLOADS", "csys,ripgrep,pure").split(",")
TOOLS = os.environ.get("BENCH_TOOLS", "plain,sccache,kache,cairn,cairn-nofuse").split(",")
# BENCH_COLD_ONLY=1: cold builds only (what a miss costs against plain cargo, issue #19).
COLD_ONLY = os.environ.get("BENCH_COLD_ONLY") == "1"
SCCACHE, KACHE, MBX = shutil.which("sccache"), shutil.which("kache"), shutil.which("mbx")
MNT, STORE = BENCH / "mnt", BENCH / "store"


def binaries(tool):
    """(cairn, cairn-rustc) for a cairn tool: this tree's release build, or for `cairn-alt`
    the two binaries in the folder BENCH_CAIRN_ALT names (another commit's build, measured in
    the same interleaved runs: an A/B of a change)."""
    if tool == "cairn-alt":
        alt = Path(os.environ["BENCH_CAIRN_ALT"])
        return alt / "cairn", alt / "cairn-rustc"
    return bench.CAIRN, bench.WRAPPER

CSYS_DEPS = """zstd = "0.13"
rusqlite = { version = "0.32", features = ["bundled"] }
ring = "0.17"
flate2 = { version = "1", default-features = false, features = ["zlib"] }
libz-sys = { version = "1", features = ["static"] }
localc = { path = "localc" }
"""
CSYS_MAIN = """use std::io::Write;
fn main() {
    let z = zstd::encode_all(&b"cairn"[..], 3).unwrap();
    let db = rusqlite::Connection::open_in_memory().unwrap();
    let v: String = db.query_row("select sqlite_version()", [], |r| r.get(0)).unwrap();
    let d = ring::digest::digest(&ring::digest::SHA256, b"cairn");
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"cairn").unwrap();
    println!("{} {v} {:?} {} {}", z.len(), d.as_ref()[0], e.finish().unwrap().len(), localc::value());
}
"""


def write(p, text):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def setup_workloads():
    """Each workload is a folder with a cargo project; returns {name: (dir, extra cargo args, env)}."""
    out = {}
    base = bench.base_env()
    if "csys" in WORKLOADS:
        w = BENCH / "csys"
        write(w / "Cargo.toml", '[package]\nname = "csys"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n' + CSYS_DEPS)
        write(w / "src/main.rs", CSYS_MAIN)
        write(w / "localc/Cargo.toml", '[package]\nname = "localc"\nversion = "0.1.0"\nedition = "2021"\n\n[build-dependencies]\ncc = "1"\n')
        write(w / "localc/build.rs", 'fn main() {\n    println!("cargo:rerun-if-changed=c");\n    cc::Build::new().file("c/v.c").compile("v");\n}\n')
        write(w / "localc/c/v.c", "int localc_value(void) { return 42; }\n")
        write(w / "localc/src/lib.rs", 'extern "C" { fn localc_value() -> i32; }\npub fn value() -> i32 { unsafe { localc_value() } }\n')
        out["csys"] = (w, [], {})
    if "ripgrep" in WORKLOADS:
        # The published crate, as a new user would build it from its source: `cargo build
        # --features pcre2` with the Cargo.lock it ships.
        w = BENCH / "ripgrep-15.1.0"
        if not w.exists():
            f = BENCH / "rgfetch"
            write(f / "Cargo.toml", '[package]\nname = "rgfetch"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nripgrep = "=15.1.0"\n')
            write(f / "src/main.rs", "fn main() {}\n")
            subprocess.run(["cargo", "fetch", "--quiet"], cwd=f, env=base, check=True, stderr=subprocess.DEVNULL)
            home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
            crate = next((home / "registry/cache").glob("*/ripgrep-15.1.0.crate"))
            with tarfile.open(crate) as t:
                t.extractall(BENCH, filter="data")
        out["ripgrep"] = (w, ["--features", "pcre2"], {"PCRE2_SYS_STATIC": "1"})
    if "pure" in WORKLOADS:
        w = BENCH / "pure"
        write(w / "Cargo.toml", '[package]\nname = "workload"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n' + bench.DEPS)
        write(w / "src/main.rs", bench.MAIN)
        out["pure"] = (w, [], {})
    for w, args, extra in out.values():
        subprocess.run(["cargo", "fetch", "--quiet"], cwd=w, env={**base, **extra}, check=True)
    return out


def env_for(tool, workdir, extra):
    env = bench.base_env()
    env.update(extra, CARGO_TARGET_DIR=str(workdir / "target"))
    if tool == "sccache":
        env.update(RUSTC_WRAPPER=SCCACHE, SCCACHE_DIR=str(BENCH / "sccache"), SCCACHE_CACHE_SIZE="20G",
                   SCCACHE_SERVER_PORT="4228")
    elif tool == "kache":
        env.update(RUSTC_WRAPPER=KACHE, KACHE_CACHE_DIR=str(BENCH / "kache"))
    elif tool == "mbx":
        # mbx wraps cargo itself (`mbx build …`, see build()); a cache dir of its own, no
        # background collection, plain output, local only. It keeps CARGO_TARGET_DIR.
        env.update(MBX_CACHE_DIR=str(BENCH / "mbx"), MBX_GC_AUTO="0", MBX_DISPLAY="plain", MBX_SUMMARY="off",
                   MBX_SAVINGS="off", MBX_REMOTE_URL="")
        env.pop("CI", None)
    elif tool.startswith("cairn"):
        env.update(RUSTC_WRAPPER=str(binaries(tool)[1]), CAIRN_MOUNT=str(MNT), CAIRN_STORE=str(STORE),
                   CAIRN_AUTOSTART="0", CAIRN_LOG=str(BENCH / "cairn.log"), XDG_CACHE_HOME=str(BENCH / "xdg"))
        # cairn-noseed: no target-dir seeding (what capturing seeds costs a cold build).
        if tool == "cairn-noseed":
            env["CAIRN_SEED"] = "0"
        # BENCH_CAIRN_PROFILE=FILE: every compile's phases (docs/wrapper.md, CAIRN_PROFILE).
        if os.environ.get("BENCH_CAIRN_PROFILE"):
            env["CAIRN_PROFILE"] = os.environ["BENCH_CAIRN_PROFILE"]
    return env


def reset(tool, env, s3=None):
    """An empty cache for `tool`; with `s3=(endpoint, name)`, a fresh machine on the shared
    bucket (cairn: a store of its own, named `name`)."""
    if tool == "sccache":
        subprocess.run([SCCACHE, "--stop-server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(BENCH / "sccache", ignore_errors=True)
        subprocess.run([SCCACHE, "--start-server"], env=env, check=True, stdout=subprocess.DEVNULL)
    elif tool == "kache":
        subprocess.run([KACHE, "daemon", "stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(BENCH / "kache", ignore_errors=True)
    elif tool == "mbx":
        shutil.rmtree(BENCH / "mbx", ignore_errors=True)
    elif tool.startswith("cairn"):
        stop_cairn()
        store = BENCH / f"s3-store-{s3[1]}" if s3 else STORE
        flags = ["--s3-bucket", "cache", "--s3-endpoint", s3[0]] if s3 else []
        # cairn-nofuse: the daemon serves its socket alone, as where FUSE cannot be used (a
        # docker build); the wrapper finds no mount and takes the socket.
        if tool == "cairn-nofuse":
            flags.append("--no-fuse")
        shutil.rmtree(store, ignore_errors=True)
        # The wrapper's memos (toolchain and linker identities, probes) go too: a cold build
        # on a machine that never ran cairn. BENCH_KEEP_MEMOS=1 keeps them: a cold build of a
        # new project on a machine that has built before.
        if os.environ.get("BENCH_KEEP_MEMOS") != "1":
            shutil.rmtree(BENCH / "xdg", ignore_errors=True)
        # The filesystem's work for the removal (its journal, the freed inodes) is done now,
        # not during the timed build that follows: plain cargo's has no store to remove.
        subprocess.run(["sync"], check=False)
        subprocess.run([str(binaries(tool)[0]), "start", "--store", str(store), "--max-size", "20GiB", *flags, str(MNT)],
                       env=env if s3 else None, check=True, stderr=subprocess.DEVNULL)


def stop_cairn(store=None):
    """Unmounts cairn, or stops its socket-only daemon."""
    subprocess.run([str(bench.CAIRN), "umount", "--store", str(store or STORE), str(MNT)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def quiesce(tool, env):
    """After a tool's builds: its daemon stopped (kache's keeps compressing and indexing in
    the background, sccache's and cairn's hold memory) and the dirty pages written, so the
    next tool's build does not pay for this one's."""
    if tool == "sccache":
        subprocess.run([SCCACHE, "--stop-server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elif tool == "kache":
        subprocess.run([KACHE, "daemon", "stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elif tool.startswith("cairn"):
        stop_cairn()
    subprocess.run(["sync"], check=False)


DAEMONS = ("cairn", "sccache", "kache")
# The CPU seconds (user + system) each build took, by (workload, tool, build), beside the wall
# clock: the wrapper processes are cargo's descendants, the daemons are not, so theirs is read
# from /proc. A second measure of what a tool adds, less moved by the other tenants of a VM.
CPU = {}


def daemon_cpu():
    """{pid: CPU seconds} of the tools' daemons now running."""
    out, tick = {}, os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm in DAEMONS:
            out[d.name] = (int(rest[11]) + int(rest[12])) / tick
    return out


def build(workdir, args, env, cpu_key=None):
    shutil.rmtree(workdir / "target", ignore_errors=True)
    subprocess.run(["sync"], check=False)
    cargo = [MBX] if "MBX_CACHE_DIR" in env else ["cargo"]
    before_d, before_c = daemon_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([*cargo, "build", "--quiet", *args], cwd=workdir, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after_c, after_d = resource.getrusage(resource.RUSAGE_CHILDREN), daemon_cpu()
    if cpu_key:
        own = (after_c.ru_utime - before_c.ru_utime) + (after_c.ru_stime - before_c.ru_stime)
        CPU.setdefault(cpu_key, []).append(own + sum(v - before_d.get(p, 0.0) for p, v in after_d.items()))
    return wall


def copy_checkout(src, dest):
    """A fresh copy of a workload's sources (no target dir) at `dest`."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("target"), symlinks=True)
    return dest


def cairn_warm_counts():
    """What ran in cairn's last build: (rustc misses, build scripts run, C compiles run)."""
    lines = [l.split("\t") for l in (BENCH / "cairn.log").read_text().splitlines()]
    ran = lambda kind: sum(1 for f in lines if len(f) > 6 and f[6] == kind and not f[3].startswith("hit")
                           and not f[3].startswith("not-cacheable"))
    return ran("rustc"), ran("build-script"), ran("cc")


def main():
    BENCH.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    loads = setup_workloads()
    res = {(w, t, k): [] for w in loads for t in TOOLS for k in ("cold", "warm", "second", "rewarm")}
    counts = {}
    for i in range(RUNS):
        for w, (d, args, extra) in loads.items():
            # Every other run goes through the tools in reverse, so that no tool always builds
            # right after another one (the host's state drifts within a run).
            for tool in TOOLS if i % 2 == 0 else TOOLS[::-1]:
                env = env_for(tool, d, extra)
                if tool == "plain":
                    res[(w, tool, "cold")].append(build(d, args, env, (w, tool)))
                    quiesce(tool, env)
                    continue
                reset(tool, env)
                res[(w, tool, "cold")].append(build(d, args, env, (w, tool)))
                if COLD_ONLY:
                    quiesce(tool, env)
                    continue
                if tool.startswith("cairn"):
                    (BENCH / "cairn.log").unlink(missing_ok=True)
                res[(w, tool, "warm")].append(build(d, args, env))
                if tool.startswith("cairn"):
                    counts[(w, tool)] = cairn_warm_counts()
                    (BENCH / "cairn.log").unlink(missing_ok=True)
                # A teammate's checkout: the same sources at another path, its own target dir.
                second = copy_checkout(d, BENCH / "second-checkout" / "home" / "src" / w)
                res[(w, tool, "second")].append(build(second, args, env_for(tool, second, extra)))
                if tool.startswith("cairn"):
                    counts[(w, tool, "second")] = cairn_warm_counts()
                    (BENCH / "cairn.log").unlink(missing_ok=True)
                # The first checkout cleaned again, now that another checkout exists (kache and
                # mbx seed a target dir from another checkout's).
                res[(w, tool, "rewarm")].append(build(d, args, env))
                if tool.startswith("cairn"):
                    counts[(w, tool, "rewarm")] = cairn_warm_counts()
                quiesce(tool, env)
            print(f"run {i + 1}/{RUNS} {w}:", {f"{t}-{k}": round(v[-1], 1) for (ww, t, k), v in res.items() if ww == w and v},
                  file=sys.stderr)
    for tool in TOOLS:
        reset_env = env_for(tool, BENCH, {})
        if tool == "sccache":
            subprocess.run([SCCACHE, "--stop-server"], env=reset_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if tool.startswith("cairn"):
            stop_cairn()
    m = {k: statistics.median(v) for k, v in res.items() if v}
    if COLD_ONLY:
        cold_table(loads, res)
        return
    print(f"\n## Build scripts and C (median of {RUNS} interleaved runs; warm = after removing the target dir, cache full)\n")
    print("| workload | plain cold | sccache cold / warm | kache cold / warm | cairn cold / warm | cairn cold / plain | cairn warm / kache warm | cairn warm / sccache warm | ran in cairn's warm build (rustc, scripts, C compiles) |")
    print("|---|---|---|---|---|---|---|---|---|")
    g = lambda w, t, k: m.get((w, t, k), float("nan"))
    for w in loads:
        print(f"| {w} | {g(w, 'plain', 'cold'):.1f} s | {g(w, 'sccache', 'cold'):.1f} / {g(w, 'sccache', 'warm'):.1f} s | "
              f"{g(w, 'kache', 'cold'):.1f} / {g(w, 'kache', 'warm'):.1f} s | {g(w, 'cairn', 'cold'):.1f} / {g(w, 'cairn', 'warm'):.2f} s | "
              f"{g(w, 'cairn', 'cold') / g(w, 'plain', 'cold'):.2f} | {g(w, 'cairn', 'warm') / g(w, 'kache', 'warm'):.2f} | "
              f"{g(w, 'cairn', 'warm') / g(w, 'sccache', 'warm'):.2f} | {counts.get((w, 'cairn'))} |")
    print("\n## Without FUSE: the same daemon through its socket (`--no-fuse`), against the mount and the peers\n")
    print("| workload | cairn warm, mount | cairn warm, socket | socket / mount | socket / kache warm | socket / sccache warm | cairn cold, socket / plain | ran in the socket's warm build (rustc, scripts, C compiles) |")
    print("|---|---|---|---|---|---|---|---|")
    for w in loads:
        n = g(w, 'cairn-nofuse', 'warm')
        print(f"| {w} | {g(w, 'cairn', 'warm'):.2f} s | {n:.2f} s | {n / g(w, 'cairn', 'warm'):.2f} | "
              f"{n / g(w, 'kache', 'warm'):.2f} | {n / g(w, 'sccache', 'warm'):.2f} | "
              f"{g(w, 'cairn-nofuse', 'cold') / g(w, 'plain', 'cold'):.2f} | {counts.get((w, 'cairn-nofuse'))} |")
    print("\n## A second checkout (same sources at another path, its own target dir, cache warm from the first)\n")
    print("| workload | sccache second / warm | kache second / warm | cairn second / warm | cairn second / kache second | ran in cairn's second build (rustc, scripts, C compiles) |")
    print("|---|---|---|---|---|---|")
    for w in loads:
        r = lambda t: g(w, t, "second") / g(w, t, "warm")
        print(f"| {w} | {g(w, 'sccache', 'second'):.1f} s / {r('sccache'):.2f}× | {g(w, 'kache', 'second'):.2f} s / {r('kache'):.2f}× | "
              f"{g(w, 'cairn', 'second'):.2f} s / {r('cairn'):.2f}× | {g(w, 'cairn', 'second') / g(w, 'kache', 'second'):.2f} | "
              f"{counts.get((w, 'cairn', 'second'))} |")
    print("\n## Warm builds against the peers (target-dir seeding, issue #21)\n")
    print("warm = the only checkout after its target dir is removed (kache and mbx have no other checkout to seed from); "
          "second = a copy at another path (they seed from the first); rewarm = the first checkout removed again once the second exists.\n")
    peers = [t for t in ("kache", "mbx", "sccache") if t in TOOLS]
    print("| workload | build | cairn | " + " | ".join(peers) + " | " + " | ".join(f"cairn / {p}" for p in peers) + " | ran in cairn's build (rustc, scripts, C compiles) |")
    print("|---|---|---|" + "---|" * (2 * len(peers)) + "---|")
    for w in loads:
        for k in ("warm", "second", "rewarm"):
            c = g(w, "cairn", k)
            print(f"| {w} | {k} | {c:.2f} s | " + " | ".join(f"{g(w, p, k):.2f} s" for p in peers) + " | "
                  + " | ".join(f"{c / g(w, p, k):.2f}" for p in peers) + f" | {counts.get((w, 'cairn', k) if k != 'warm' else (w, 'cairn'))} |")
    print("\nraw:", {f"{w}/{t}/{k}": [round(x, 2) for x in v] for (w, t, k), v in res.items() if v})


def cold_table(loads, res):
    """What a miss costs: each tool's cold build against plain cargo's, by the wall clock and by
    the CPU all its processes spent (cargo, compilers, wrappers, daemon)."""
    med = statistics.median
    print(f"\n## Cold builds against plain cargo ({RUNS} interleaved runs, every other one in reverse order)\n")
    print("| workload | tool | wall, median | ratio of medians | median of per-run ratios | CPU, median | CPU ratio of medians | median of per-run CPU ratios |")
    print("|---|---|---|---|---|---|---|---|")
    for w in loads:
        pw, pc = res[(w, "plain", "cold")], CPU.get((w, "plain"), [])
        for t in TOOLS:
            if t == "plain":
                continue
            tw, tc = res[(w, t, "cold")], CPU.get((w, t), [])
            print(f"| {w} | {t} | {med(tw):.1f} s (plain {med(pw):.1f} s) | {med(tw) / med(pw):.3f} | "
                  f"{med([a / b for a, b in zip(tw, pw)]):.3f} | {med(tc):.1f} s (plain {med(pc):.1f} s) | "
                  f"{med(tc) / med(pc):.3f} | {med([a / b for a, b in zip(tc, pc)]):.3f} |")
    print("\nraw wall:", {f"{w}/{t}": [round(x, 2) for x in res[(w, t, 'cold')]] for w in loads for t in TOOLS})
    print("raw CPU:", {f"{w}/{t}": [round(x, 2) for x in v] for (w, t), v in CPU.items()})


S3_CREDS = dict(AWS_ACCESS_KEY_ID="ak", AWS_SECRET_ACCESS_KEY="sk", AWS_REGION="us-east-1",
                AWS_EC2_METADATA_DISABLED="true")


def s3_env(tool, workdir, extra, endpoint):
    """`tool`'s environment with the shared bucket at `endpoint`."""
    env = env_for(tool, workdir, extra)
    env.update(S3_CREDS)
    if tool == "sccache":
        env.pop("SCCACHE_DIR")
        env.update(SCCACHE_BUCKET="cache", SCCACHE_ENDPOINT=endpoint, SCCACHE_REGION="us-east-1",
                   SCCACHE_S3_USE_SSL="false", SCCACHE_S3_KEY_PREFIX="sccache/")
    elif tool == "kache":
        env.update(kache_s3_env(endpoint))
    return env


def kache_s3_env(endpoint):
    """kache 2.0's S3 tier. The bucket's location goes in a config file: a daemon that kache
    starts by itself drops the KACHE_S3_* location variables (kache-2.0.0 src/daemon.rs)."""
    conf = BENCH / "kache-s3.toml"
    conf.write_text(f'[cache.remote]\ntype = "s3"\nbucket = "cache"\nendpoint = "{endpoint}"\n'
                    f'region = "us-east-1"\nprefix = "kache"\n')
    return dict(KACHE_CONFIG=str(conf), KACHE_HOST_CONFIG="", KACHE_S3_ACCESS_KEY="ak", KACHE_S3_SECRET_KEY="sk")


def s3_flush(tool, env):
    """Waits until `tool` has put everything of the last build in the bucket."""
    if tool == "cairn":
        # Stopping writes the seed sets and returns once every upload is in the bucket.
        subprocess.run([str(bench.CAIRN), "umount", str(MNT)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elif tool == "sccache":
        subprocess.run([SCCACHE, "--stop-server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elif tool == "kache":
        kache_flush(env)


def kache_flush(env):
    """Saves the build manifest its planner prefetches from on a fresh machine (else written
    only after 5 idle minutes), then stops the daemon, which drains the upload queue."""
    subprocess.run([KACHE, "save-manifest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([KACHE, "daemon", "stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queue = BENCH / "kache" / "upload-queue"
    left = list(queue.iterdir()) if queue.is_dir() else []
    if left:
        print(f"kache: {len(left)} uploads still queued after daemon stop", file=sys.stderr)


def s3_main(kind):
    """A fresh CI runner on a warm bucket, per workload and tool: machine A builds cold with
    the bucket, machine B (empty local cache) then builds warm from the bucket alone."""
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                    str(ROOT / "scripts/s3-bench-server/Cargo.toml")], check=True)
    loads = setup_workloads()
    tools = [t for t in TOOLS if t not in ("plain", "cairn-nofuse")]
    res = {}
    counts = {}
    for i in range(RUNS):
        for w, (d, args, extra) in loads.items():
            # cairn's warm local build, the reference of the ratio.
            env = env_for("cairn", d, extra)
            reset("cairn", env)
            build(d, args, env)
            res.setdefault((w, "cairn", "warm_local"), []).append(build(d, args, env))
            for tool in tools:
                srv, endpoint = bench.start_s3_server(kind, BENCH / "s3-data")
                env = s3_env(tool, d, extra, endpoint)
                reset(tool, env, (endpoint, "a"))
                res.setdefault((w, tool, "cold_s3"), []).append(build(d, args, env))
                s3_flush(tool, env)
                reset(tool, env, (endpoint, "b"))
                if tool == "cairn":
                    (BENCH / "cairn.log").unlink(missing_ok=True)
                res.setdefault((w, tool, "warm_s3"), []).append(build(d, args, env))
                if tool == "cairn":
                    counts[w] = cairn_warm_counts()
                s3_flush(tool, env)
                if tool == "cairn":
                    subprocess.run([str(bench.CAIRN), "umount", str(MNT)], stderr=subprocess.DEVNULL)
                srv.kill()
                srv.wait()
            print(f"s3 run {i + 1}/{RUNS} {w}:", {f"{t}-{k}": round(v[-1], 1) for (ww, t, k), v in res.items() if ww == w},
                  file=sys.stderr)
    m = {k: statistics.median(v) for k, v in res.items() if v}
    g = lambda w, t, k: m.get((w, t, k), float("nan"))
    print(f"\n## A fresh runner on a warm bucket ({kind}; median of {RUNS} interleaved runs)\n")
    print("| workload | cairn warm local | cairn warm from S3 / ÷ warm local | sccache warm from S3 | kache warm from S3 | cairn ÷ sccache | cairn ÷ kache | ran in cairn's build from S3 (rustc, scripts, C compiles) |")
    print("|---|---|---|---|---|---|---|---|")
    for w in loads:
        c = g(w, "cairn", "warm_s3")
        print(f"| {w} | {g(w, 'cairn', 'warm_local'):.1f} s | {c:.1f} s / {c / g(w, 'cairn', 'warm_local'):.2f}× | "
              f"{g(w, 'sccache', 'warm_s3'):.1f} s | {g(w, 'kache', 'warm_s3'):.1f} s | {c / g(w, 'sccache', 'warm_s3'):.2f} | "
              f"{c / g(w, 'kache', 'warm_s3'):.2f} | {counts.get(w)} |")
    print("\nraw:", {f"{w}/{t}/{k}": [round(x, 2) for x in v] for (w, t, k), v in res.items() if v})


if __name__ == "__main__":
    if os.environ.get("BENCH_S3"):
        s3_main(os.environ["BENCH_S3"])
    else:
        main()

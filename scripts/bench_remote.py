"""Remote execution (issue #22): cold builds whose misses run on a REAPI engine's workers,
against the same cold builds without the engine (plain cargo, cairn compiling here), in
interleaved runs; and what the first upload of a toolchain costs.

    python3 scripts/bench_remote.py        # BENCH_RUNS=3 BENCH_WORKLOADS=pure,csys BENCH_WORKERS=2

Starts its own engine (scripts/reapi-engine, BuildGrid with host workers) in
.bench-native/reapi and stops it at the end. On one machine the workers share its cores, so
this shows the cost of going remote (per action), not a speed-up; docs/benchmarks.md turns
the per-action cost into what a team with remote cores should expect.
"""
import json, os, re, shutil, statistics, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCH_WORKLOADS", "pure,csys")
import bench  # noqa: E402
import bench_native as bn  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WORKERS = os.environ.get("BENCH_WORKERS", "2")
ENGINE = bn.BENCH / "reapi"
SCRIPT = bn.ROOT / "scripts" / "reapi-engine"
TOOLS = ["plain", "cairn", "cairn-remote", "cairn-remote-j4"]


def start_daemon(remote):
    bn.stop_cairn()
    shutil.rmtree(bn.STORE, ignore_errors=True)
    shutil.rmtree(bn.BENCH / "xdg", ignore_errors=True)
    flags = ["--remote-exec", remote] if remote else []
    # Every build's actions salted anew: each is cold on the engine too, not answered from
    # its action cache by the build before it (the same actions, from the same workload).
    env = {**os.environ, "CAIRN_LOG_LEVEL": "cairn=debug", "CAIRN_REMOTE_SALT": f"bench-{time.time_ns()}"}
    subprocess.run([str(bench.CAIRN), "start", "--store", str(bn.STORE), "--max-size", "20GiB", *flags, str(bn.MNT)],
                   env=env, check=True, stderr=subprocess.DEVNULL)


def misses(log):
    """Per compile: the time of its miss (ms), from the wrapper's log, by (kind, name): a
    rustc compile by its crate, a C object by its key (a crate has many)."""
    out = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        f = line.split("\t")
        if len(f) > 6 and f[6] in ("rustc", "cc") and f[3] == "miss":
            out[(f[6], f[1] if f[6] == "rustc" else f[2])] = float(f[4])
    return out


def remote_counts():
    """(compiles run on the engine, of which C objects), from the daemon's stats."""
    try:
        doc = json.loads((bn.MNT / ".cairn" / "stats.json").read_text())
        return doc.get("remote_executed", 0), doc.get("remote_executed_cc", 0)
    except (OSError, ValueError):
        return 0, 0


def main():
    bn.BENCH.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=bn.ROOT, check=True)
    out = subprocess.run(["bash", str(SCRIPT), "start", str(ENGINE), "--workers", WORKERS],
                         check=True, capture_output=True, text=True).stdout
    address = out.strip().splitlines()[-1].split("=", 1)[1]
    loads = bn.setup_workloads()
    res = {(w, t): [] for w in loads for t in TOOLS}
    per_crate = {(w, t): [] for w in loads for t in TOOLS}
    counts = {}
    first_upload = None
    try:
        for i in range(RUNS):
            for w, (d, args, extra) in loads.items():
                for tool in TOOLS:
                    env = bn.env_for("plain" if tool == "plain" else "cairn", d, extra)
                    a = list(args)
                    if tool == "cairn-remote-j4":
                        a += ["-j", "4"]
                    if tool != "plain":
                        start_daemon(address if tool.startswith("cairn-remote") else None)
                        (bn.BENCH / "cairn.log").unlink(missing_ok=True)
                    res[(w, tool)].append(bn.build(d, a, env))
                    if tool != "plain":
                        per_crate[(w, tool)].append(misses(bn.BENCH / "cairn.log"))
                        counts[(w, tool)] = remote_counts()
                        log = (bn.STORE / "daemon.log").read_text()
                        m = re.search(r"toolchain uploaded to the engine missing=(\d+) bytes=(\d+) took=([\d.]+)(m?s)", log)
                        if first_upload is None and m and int(m.group(1)) > 0:
                            secs = float(m.group(3)) / (1000 if m.group(4) == "ms" else 1)
                            first_upload = (int(m.group(2)), secs)
                print(f"run {i + 1}/{RUNS} {w}:", {t: round(res[(w, t)][-1], 1) for t in TOOLS}, file=sys.stderr)
    finally:
        bn.stop_cairn()
        subprocess.run(["bash", str(SCRIPT), "stop", str(ENGINE)], capture_output=True)
    med = {k: statistics.median(v) for k, v in res.items() if v}
    print(f"\n## Remote execution: cold builds (median of {RUNS} interleaved runs, {WORKERS} workers on this machine)\n")
    print("| workload | plain cargo | cairn, misses here | cairn, misses on the engine (-j2) | same, -j4 | engine / here | ran on the engine (of which C) | cost of going remote, median: rustc / C object |")
    print("|---|---|---|---|---|---|---|---|")
    for w in loads:
        # The same compile's miss, remote minus here, in the same run.
        diffs = {"rustc": [], "cc": []}
        for here, there in zip(per_crate[(w, "cairn")], per_crate[(w, "cairn-remote")]):
            for c in there:
                if c in here:
                    diffs[c[0]].append(there[c] - here[c])
        cost = " / ".join(f"{statistics.median(d):.0f} ms" if d else "-" for d in diffs.values())
        ran, ran_cc = counts.get((w, "cairn-remote"), (0, 0))
        print(f"| {w} | {med[(w, 'plain')]:.1f} s | {med[(w, 'cairn')]:.1f} s | {med[(w, 'cairn-remote')]:.1f} s | "
              f"{med[(w, 'cairn-remote-j4')]:.1f} s | {med[(w, 'cairn-remote')] / med[(w, 'cairn')]:.2f} | {ran} ({ran_cc}) | {cost} |")
    if first_upload:
        print(f"\nFirst upload of the toolchain: {first_upload[0] / 1e6:.0f} MB in {first_upload[1]:.1f} s.")
    print("\nraw:", {f"{w}/{t}": [round(x, 1) for x in v] for (w, t), v in res.items()})


if __name__ == "__main__":
    main()

//! End-to-end fixture: a real cargo workspace with crates.io dependencies (serde derive, clap
//! derive, serde_json, anyhow … about 35 crates, several with build scripts), plus a local
//! `probe` library whose inputs the change-detection tests edit: a source file, an
//! `include_str!` file, an `option_env!` variable, a feature, and a build script's output.
//!
//! The e2e tests share one store (so the cold build is paid once) and run one at a time under
//! [`lock`]; each mounts its own daemon over that store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::common::{mount_store, Mount, Via};

/// The fixture's folders.
pub struct Ws {
    pub root: PathBuf,
    pub store: PathBuf,
    pub xdg: PathBuf,
}

/// One line of the wrapper's log.
#[derive(Debug, Clone)]
pub struct Line {
    pub krate: String,
    pub key: String,
    pub outcome: String,
    /// `rustc`, `build-script` or `cc`.
    pub kind: String,
}

static LOCK: Mutex<()> = Mutex::new(());
static WS: OnceLock<Ws> = OnceLock::new();
static WARM: Mutex<bool> = Mutex::new(false);

/// Serializes the e2e tests (they share the store and the workspace).
pub fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The workspace, written on first use.
pub fn ws() -> &'static Ws {
    WS.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e");
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("ws");
        write_workspace(&root);
        Ws { root, store: base.join("store"), xdg: base.join("xdg") }
    })
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn write_workspace(root: &Path) {
    write(&root.join("Cargo.toml"), "[workspace]\nmembers = [\"app\", \"probe\"]\nresolver = \"2\"\n");
    write(
        &root.join("app/Cargo.toml"),
        r#"[package]
name = "app"
version = "0.1.0"
edition = "2021"

[dependencies]
probe = { path = "../probe" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
clap = { version = "4", features = ["derive"] }
anyhow = "1"
itoa = "1"
log = "0.4"
once_cell = "1"
memchr = "2"
smallvec = "1"
bitflags = "2"
cfg-if = "1"
hex = "0.4"
fnv = "1"
either = "1"
"#,
    );
    write(
        &root.join("app/src/main.rs"),
        r#"use clap::Parser;
use std::hash::Hasher;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 3)]
    n: u32,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    text: &'a str,
    var: Option<&'a str>,
    generated: &'a str,
    extra: bool,
    edited: u32,
    misc: String,
}

bitflags::bitflags! { struct F: u8 { const A = 1; } }

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut h = fnv::FnvHasher::default();
    h.write(b"x");
    let v: smallvec::SmallVec<[u32; 4]> = (0..args.n).collect();
    static ONCE: once_cell::sync::Lazy<u32> = once_cell::sync::Lazy::new(|| 7);
    let e: either::Either<u32, u32> = either::Either::Left(*ONCE);
    cfg_if::cfg_if! { if #[cfg(unix)] { let os = "unix"; } else { let os = "other"; } }
    log::info!("quiet");
    let misc = format!(
        "{} {} {} {} {} {:?} {}",
        itoa::Buffer::new().format(v.len()),
        hex::encode([h.finish() as u8]),
        memchr::memchr(b'b', b"abc").unwrap_or(9),
        F::A.bits(),
        os,
        e,
        v.iter().sum::<u32>()
    );
    let r = Report {
        text: probe::TEXT.trim(),
        var: probe::VAR,
        generated: probe::generated(),
        extra: probe::extra(),
        edited: probe::edited(),
        misc,
    };
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
"#,
    );
    write(
        &root.join("probe/Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\nbuild = \"build.rs\"\n\n[features]\nextra = []\n",
    );
    write(
        &root.join("probe/build.rs"),
        r#"fn main() {
    println!("cargo:rerun-if-env-changed=PROBE_GEN");
    let v = std::env::var("PROBE_GEN").unwrap_or_else(|_| "one".into());
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("gen.rs");
    std::fs::write(out, format!("{:?}", format!("gen-{v}"))).unwrap();
}
"#,
    );
    write(
        &root.join("probe/src/lib.rs"),
        r#"pub const TEXT: &str = include_str!("data.txt");
pub const VAR: Option<&str> = option_env!("PROBE_VAR");
pub fn generated() -> &'static str {
    include!(concat!(env!("OUT_DIR"), "/gen.rs"))
}
pub fn extra() -> bool {
    cfg!(feature = "extra")
}
pub fn edited() -> u32 {
    1
}
"#,
    );
    write(&root.join("probe/src/data.txt"), "data-one\n");
}

/// Mounts a daemon over the shared store.
pub fn mount(test: &str) -> Option<Mount> {
    mount_store(test, Some(&ws().store), "8GiB", &[])
}

/// A daemon over the shared store, reached through `via`.
pub fn mount_via(test: &str, via: Via) -> Option<Mount> {
    crate::common::mount_via(test, Some(&ws().store), "8GiB", &[], &[], via)
}

/// A cargo command in the workspace with the wrapper (when `mnt` is given) and a target dir.
pub fn cargo(mnt: Option<&Mount>, target: &str, log: &Path, args: &[&str]) -> Command {
    let w = ws();
    cargo_in(&w.root, &w.xdg, mnt, target, log, args)
}

/// A cargo command in any workspace `root`, with `xdg` as the cache home (where the wrapper
/// keeps its memos), the wrapper when `mnt` is given, and target dir `root/target`.
pub fn cargo_in(root: &Path, xdg: &Path, mnt: Option<&Mount>, target: &str, log: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("cargo");
    c.args(args).current_dir(root);
    for (k, _) in std::env::vars() {
        // The test runner's own cargo variables must not leak into the build under test.
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k.starts_with("CAIRN_") || k == "RUSTC_WRAPPER" {
            c.env_remove(k);
        }
    }
    c.env("CARGO_TARGET_DIR", root.join(target)).env("CARGO_INCREMENTAL", "0").env("XDG_CACHE_HOME", xdg);
    // These tests watch each unit go through the wrapper; target-dir seeding would let cargo
    // skip the registry units of a fresh target dir. fuse-tests/seed.rs turns it back on.
    c.env("CAIRN_SEED", "0");
    if let Some(m) = mnt {
        // Through the mount's files: a build that names no store, as these tests were
        // written for, takes the socket of the daemon behind the mount now (engine/door.rs);
        // seed.rs and nofuse.rs test that door.
        c.env("RUSTC_WRAPPER", env!("CARGO_BIN_EXE_cairn-rustc"))
            .env("CAIRN_MOUNT", &m.mnt)
            .env("CAIRN_LOG", log)
            .env("CAIRN_AUTOSTART", "0");
        if m.via == Via::Mount {
            c.env("CAIRN_DOOR", "mount");
        }
        if m.via == Via::Socket {
            // The build runs where FUSE cannot be used, as the daemon does.
            c.env("CAIRN_STORE", &m.store);
            return crate::common::without_fuse(&c);
        }
    }
    c
}

/// Compiles C `source` into the static library `<dir>/lib<lib>.a` (replacing it).
pub fn static_lib(dir: &Path, lib: &str, source: &str) {
    let c = dir.join(format!("{lib}.c"));
    std::fs::write(&c, source).unwrap();
    let o = dir.join(format!("{lib}.o"));
    let mut cc = Command::new("cc");
    cc.args(["-c", "-fPIC", "-o"]).arg(&o).arg(&c);
    ok(cc);
    let a = dir.join(format!("lib{lib}.a"));
    let _ = std::fs::remove_file(&a);
    let mut ar = Command::new("ar");
    ar.arg("crs").arg(&a).arg(&o);
    ok(ar);
}

/// Runs a command and insists it succeeds.
pub fn ok(mut c: Command) -> Output {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{:?} failed:\n{}", c, String::from_utf8_lossy(&out.stderr));
    out
}

/// The rustc lines of a wrapper log.
pub fn read_log(path: &Path) -> Vec<Line> {
    read_log_all(path).into_iter().filter(|l| l.kind == "rustc").collect()
}

/// Every line of a wrapper log: rustc compiles, build-script runs and C compiles.
pub fn read_log_all(path: &Path) -> Vec<Line> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some(Line {
                krate: f.get(1)?.to_string(),
                key: f.get(2)?.to_string(),
                outcome: f.get(3)?.to_string(),
                kind: f.get(6).unwrap_or(&"rustc").to_string(),
            })
        })
        .collect()
}

/// Lines of compiles that could be cached (hits and misses; not pass-throughs or failed probes).
pub fn cacheable(lines: &[Line]) -> Vec<&Line> {
    lines.iter().filter(|l| l.outcome == "hit" || l.outcome == "miss").collect()
}

/// A fresh log path for one build.
pub fn log_path(name: &str) -> PathBuf {
    let p = ws().root.parent().unwrap().join("logs").join(format!("{name}.log"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&p);
    p
}

/// Makes sure the shared store holds a cold build of the workspace in target dir `t-main`.
pub fn ensure_warm(m: &Mount) {
    let mut warm = WARM.lock().unwrap();
    if !*warm {
        ok(cargo(Some(m), "t-main", &log_path("cold"), &["build"]));
        *warm = true;
    }
}

/// The app's output, which reflects every probe input.
pub fn run_app(target: &str) -> String {
    let out = ok(Command::new(ws().root.join(target).join("debug/app")));
    String::from_utf8(out.stdout).unwrap()
}

/// Copies a workspace's sources to `to`: everything but target dirs (`target`, `t-*`) and the
/// names in `skip`.
pub fn copy_sources(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let text = name.to_string_lossy();
        if text.starts_with("t-") || text == "target" || skip.contains(&text.as_ref()) {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_sources(&e.path(), &to.join(&name), skip);
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

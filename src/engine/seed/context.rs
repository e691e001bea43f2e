//! The seed context: everything a unit's files depend on that cargo's own fingerprints do not
//! see, so a seed made under one context is never restored under another. Cargo stays the
//! judge of everything else (features, profile, flags it passes, dependencies): a seeded unit
//! whose fingerprint does not match what cargo computes is simply rebuilt.
//!
//! What goes in:
//! - the toolchain's identity (engine/toolchain.rs: the compiler's own files, not only its
//!   version line);
//! - the probe's arguments (the flags cargo passes every compile: `RUSTFLAGS`, config
//!   `rustflags`, `--target`), with `-C target-cpu=native` resolved to this machine's CPU;
//! - cargo's own binary (its fingerprint format), the one beside rustc;
//! - the C and C++ compilers and the linker build scripts and links would use (`CC`, `CXX`,
//!   `AR`, `CARGO_TARGET_*_LINKER` or `cc`/`c++` on `PATH`), by content, and the variables
//!   that steer them (`CFLAGS`, `CC_<target>` …);
//! - cargo's configuration files, by content (`[env]`, `[target]` settings).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::engine::{filehash, native_cpu, toolchain};

/// Variables that change what build scripts and links produce, though cargo's fingerprints
/// may not track them.
const VARS: [&str; 14] = [
    "CC",
    "CXX",
    "AR",
    "CFLAGS",
    "CXXFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "RUSTC_LINKER",
    "PKG_CONFIG_PATH",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CRATE_CC_NO_DEFAULTS",
    "TARGET_CC",
    "HOST_CC",
];
/// Prefixes of such variables (per-target C settings, as cc-rs reads them). Cargo's own
/// settings (`CARGO_PROFILE_*`, `CARGO_BUILD_*`) are left to cargo's fingerprints, and paths
/// such as `CARGO_TARGET_DIR` stay out, so another checkout has the same context.
const PREFIXES: [&str; 5] = ["CC_", "CXX_", "CFLAGS_", "CXXFLAGS_", "AR_"];

/// The context digest of a probe of `rustc` with `args`, run in `cwd`.
pub fn digest(
    rustc: &Path,
    args: &[OsString],
    cwd: &Path,
    env: &[(String, String)],
    cargo_home: Option<&Path>,
    memo: &Path,
) -> io::Result<[u8; 32]> {
    let s: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let target = s
        .iter()
        .position(|a| a == "--target")
        .and_then(|i| s.get(i + 1))
        .cloned()
        .or_else(|| s.iter().find_map(|a| a.strip_prefix("--target=").map(str::to_string)));
    let tc = toolchain::identify(rustc, target.as_deref(), memo)?;
    let mut h = blake3::Hasher::new();
    h.update(b"cairn-seed-context-v1\0");
    h.update(&tc.digest);
    for a in &s {
        h.update(a.as_bytes());
        h.update(b"\0");
    }
    if s.iter().any(|a| a.contains("native")) {
        let cpu = native_cpu::resolve(rustc, target.as_deref(), &tc.digest, memo)?;
        h.update(b"native\0");
        h.update(cpu.as_bytes());
    }
    let cargo = rustc.parent().map(|d| d.join("cargo")).filter(|p| p.is_file());
    file(&mut h, "cargo", cargo.as_deref());
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let linker = |k: &str| k.starts_with("CARGO_TARGET_") && k.ends_with("_LINKER");
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| VARS.contains(&k.as_str()) || PREFIXES.iter().any(|p| k.starts_with(p)) || linker(k))
        .collect();
    vars.sort();
    for (k, v) in vars {
        h.update(format!("{k}={v}\0").as_bytes());
    }
    let path = get("PATH");
    for (var, default) in [("CC", "cc"), ("CXX", "c++"), ("AR", "ar"), ("RUSTC_LINKER", "cc")] {
        let prog = get(var).and_then(|v| v.split_whitespace().next().map(str::to_string));
        let prog = prog.unwrap_or_else(|| default.to_string());
        file(&mut h, var, which(&prog, path.as_deref()).as_deref());
    }
    for (k, v) in env.iter().filter(|(k, _)| k.starts_with("CARGO_TARGET_") && k.ends_with("_LINKER")) {
        file(&mut h, k, which(v, path.as_deref()).as_deref());
    }
    let mut configs: Vec<PathBuf> =
        cwd.ancestors().flat_map(|d| [d.join(".cargo/config.toml"), d.join(".cargo/config")]).collect();
    if let Some(home) = cargo_home {
        configs.extend([home.join("config.toml"), home.join("config")]);
    }
    // By content only: the same settings in a checkout at another path are the same context.
    for c in configs.iter().filter(|c| c.is_file()) {
        h.update(b"config\0");
        h.update(&std::fs::read(c)?);
    }
    Ok(*h.finalize().as_bytes())
}

/// Adds a file's content digest (or that there is none).
fn file(h: &mut blake3::Hasher, what: &str, path: Option<&Path>) {
    h.update(what.as_bytes());
    match path.map(filehash::hash_file) {
        Some(Ok(d)) => h.update(&d),
        _ => h.update(b"\0none"),
    };
}

/// A program as the shell would find it.
fn which(prog: &str, path: Option<&str>) -> Option<PathBuf> {
    if prog.contains('/') {
        return Some(PathBuf::from(prog)).filter(|p| p.is_file());
    }
    path?.split(':').map(|d| Path::new(d).join(prog)).find(|p| p.is_file())
}

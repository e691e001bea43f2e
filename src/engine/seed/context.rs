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
//!   `RUSTC_LINKER`, `CARGO_TARGET_*_LINKER`, or `cc`/`c++` on `PATH`) by the identity
//!   cairn's own keys give them (the program, the `ld` it drives, its version:
//!   engine/linker.rs), the archiver by content, and the variables that steer them (`CFLAGS`,
//!   `CC_<target>`, `LIBRARY_PATH` …);
//! - cargo's configuration files, by content (`[env]`, `[target]` settings).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::engine::{filehash, linker, native_cpu, toolchain};

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

/// The context digest of a probe of `rustc` with `args`, run in `cwd`, and the toolchain's
/// identity (engine/toolchain.rs) it includes.
pub fn digest(
    rustc: &Path,
    args: &[OsString],
    cwd: &Path,
    env: &[(String, String)],
    cargo_home: Option<&Path>,
    memo: &Path,
) -> io::Result<([u8; 32], [u8; 32])> {
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
    let is_linker_var = |k: &str| k.starts_with("CARGO_TARGET_") && k.ends_with("_LINKER");
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| VARS.contains(&k.as_str()) || PREFIXES.iter().any(|p| k.starts_with(p)) || is_linker_var(k))
        .collect();
    vars.sort();
    for (k, v) in vars {
        h.update(format!("{k}={v}\0").as_bytes());
    }
    // The compilers and linkers by the identity cairn's own keys give them (engine/linker.rs:
    // the program, the `ld` it drives, its version); the archiver by content.
    let path = get("PATH");
    let mut programs: Vec<(String, String)> = [("CC", "cc"), ("CXX", "c++"), ("RUSTC_LINKER", "cc")]
        .iter()
        .map(|(var, default)| {
            let prog = get(var).and_then(|v| linker::program(&v).map(str::to_string));
            (var.to_string(), prog.unwrap_or_else(|| default.to_string()))
        })
        .collect();
    programs.extend(env.iter().filter(|(k, _)| is_linker_var(k)).map(|(k, v)| (k.clone(), v.clone())));
    for (var, prog) in programs {
        h.update(var.as_bytes());
        match linker::linker_identity(Path::new(&prog), memo) {
            Ok(d) => h.update(&d),
            Err(_) => h.update(b"\0none"),
        };
    }
    let ar = get("AR").and_then(|v| v.split_whitespace().next().map(str::to_string)).unwrap_or_else(|| "ar".into());
    file(&mut h, "AR", which(&ar, path.as_deref()).as_deref());
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
    Ok((*h.finalize().as_bytes(), tc.digest))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cargo_cannot_see_changes_the_context_and_paths_do_not() {
        let memo = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let rustc = toolchain::resolve_program(Path::new("rustc")).unwrap();
        let args: Vec<OsString> =
            ["-", "--crate-name", "___", "--print=file-names"].iter().map(OsString::from).collect();
        let env = vec![("PATH".to_string(), std::env::var("PATH").unwrap())];
        let d = |args: &[OsString], extra: &[(&str, &str)]| {
            let mut e = env.clone();
            e.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            digest(&rustc, args, cwd.path(), &e, None, memo.path()).unwrap().0
        };
        let base = d(&args, &[]);
        assert_eq!(d(&args, &[("CARGO_TARGET_DIR", "/elsewhere/target")]), base, "a path is not the context");
        assert_eq!(d(&args, &[("CARGO_BUILD_JOBS", "1")]), base);
        assert_ne!(d(&args, &[("CC", "/bin/true")]), base, "another C compiler");
        assert_ne!(d(&args, &[("CFLAGS", "-O3")]), base);
        assert_ne!(d(&args, &[("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER", "/bin/true")]), base);
        let mut native = args.clone();
        native.extend(["-C", "target-cpu=native"].iter().map(OsString::from));
        assert_ne!(d(&native, &[]), base, "flags cargo passes every compile");
        std::fs::create_dir_all(cwd.path().join(".cargo")).unwrap();
        std::fs::write(cwd.path().join(".cargo/config.toml"), "[env]\nX = \"1\"\n").unwrap();
        assert_ne!(d(&args, &[]), base, "a cargo config file");
    }
}

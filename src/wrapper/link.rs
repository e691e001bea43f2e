//! What a link can see, for crates that link (bin, proc-macro, dylib, cdylib): the linker's
//! identity, the native libraries `-l` names, files passed with `-C link-arg(s)`, the program
//! `-fuse-ld=` picks, and the variables the driver and linker read (`LIBRARY_PATH`,
//! `COMPILER_PATH`, `GCC_EXEC_PREFIX`, `LD_RUN_PATH`). Each enters the key by
//! content. The rlibs of the whole crate graph are added by graph.rs.
//!
//! The linker's identity is the contents of the linker program (`-C linker` or the default
//! `cc`), the contents of the `ld` it drives (`-print-prog-name=ld`, for gcc and clang
//! drivers), and its `--version` output. Spawning those on every rustc call would cost
//! milliseconds, so the digest is memoized in `<cache>/toolchains/linker-*.bin` with both
//! programs' (path, size, mtime, inode), like the toolchain (toolchain.rs). What a link can
//! still depend on that the key does not see is in docs/cache-key.md.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::args::Invocation;
use super::filehash::hash_file;
use super::memo::{self, stamp, Stamp};
use super::toolchain::resolve_program;

/// Labelled content hashes of the link's inputs, in a fixed order.
pub fn link_inputs(inv: &Invocation, memo_dir: &Path) -> io::Result<Vec<(String, Option<[u8; 32]>)>> {
    let linker = inv.linker.clone().unwrap_or_else(|| "cc".into());
    let mut out = vec![("linker".to_string(), Some(linker_identity(Path::new(&linker), memo_dir)?))];
    for name in &inv.libs {
        for file in [format!("lib{name}.a"), format!("lib{name}.so")] {
            let found = inv.native_paths.iter().map(|d| Path::new(d).join(&file)).find(|p| p.is_file());
            out.push((format!("lib:{file}"), found.map(|p| hash_file(&p)).transpose()?));
        }
    }
    for arg in &inv.link_args {
        for tok in arg.split_whitespace() {
            let p = Path::new(tok);
            if p.is_file() {
                out.push((format!("link-arg-file:{tok}"), Some(hash_file(p)?)));
            }
            // `-fuse-ld=lld` / `=mold` / a path: the linker the driver will really run.
            if let Some(ld) = tok.strip_prefix("-fuse-ld=").or_else(|| tok.strip_prefix("-Wl,-fuse-ld=")) {
                let found = fuse_ld(ld);
                out.push((format!("fuse-ld:{ld}"), found.map(|p| hash_file(&p)).transpose()?));
            }
        }
    }
    // What the driver and the linker read from the environment: search paths for libraries,
    // for the driver's own programs (collect2, ld), and the run path written into the binary.
    for var in LINK_ENV {
        let v = std::env::var(var).ok().map(|v| *blake3::hash(v.as_bytes()).as_bytes());
        out.push((format!("env:{var}"), v));
    }
    Ok(out)
}

/// Variables the C driver or the linker read that change what gets linked. Not
/// `LD_LIBRARY_PATH`: cargo sets it for every rustc call to paths inside the target dir, and
/// ld only uses it to check the dependencies of shared libraries, not to pick what it links.
const LINK_ENV: [&str; 4] = ["LIBRARY_PATH", "GCC_EXEC_PREFIX", "COMPILER_PATH", "LD_RUN_PATH"];

/// The program `-fuse-ld=NAME` selects: a path as it is, else `ld.NAME` on PATH (what gcc and
/// clang look for), else `NAME` itself.
fn fuse_ld(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|p| p.is_file());
    }
    resolve_program(Path::new(&format!("ld.{name}"))).or_else(|_| resolve_program(Path::new(name))).ok()
}

#[derive(Serialize, Deserialize)]
struct Memo {
    stamps: Vec<Stamp>,
    digest: [u8; 32],
}

/// The programs whose contents make up the linker's identity.
fn programs(linker: &Path) -> io::Result<Vec<PathBuf>> {
    let main = fs::canonicalize(resolve_program(linker)?)?;
    let mut v = vec![main.clone()];
    if let Ok(out) = Command::new(&main).arg("-print-prog-name=ld").output() {
        let ld = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !ld.is_empty() {
            if let Ok(p) = resolve_program(Path::new(&ld)).and_then(fs::canonicalize) {
                v.push(p);
            }
        }
    }
    Ok(v)
}

/// Digest of the linker, memoized by the stamps of the programs involved.
pub fn linker_identity(linker: &Path, memo_dir: &Path) -> io::Result<[u8; 32]> {
    let memo_path =
        memo_dir.join(format!("linker-{}.bin", &blake3::hash(linker.as_os_str().as_encoded_bytes()).to_hex()[..32]));
    if let Some(memo) = memo::load::<Memo>(&memo_path) {
        let current: io::Result<Vec<Stamp>> = memo.stamps.iter().map(|s| stamp(Path::new(&s.path))).collect();
        // The memo also records which programs the linker name resolved to; resolving again
        // costs a PATH walk, which is cheap, and catches a changed PATH.
        let main_now = resolve_program(linker).and_then(fs::canonicalize).ok();
        if current.ok().as_ref() == Some(&memo.stamps)
            && main_now.map(|p| p.display().to_string()) == memo.stamps.first().map(|s| s.path.clone())
        {
            return Ok(memo.digest);
        }
    }
    let progs = programs(linker)?;
    let version = Command::new(&progs[0]).arg("--version").output().map(|o| o.stdout).unwrap_or_default();
    let mut h = blake3::Hasher::new();
    h.update(b"cairn-linker-v1\0");
    h.update(&version);
    let mut stamps = Vec::new();
    for p in &progs {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update(&hash_file(p)?);
        stamps.push(stamp(p)?);
    }
    let digest = *h.finalize().as_bytes();
    memo::save(&memo_path, &Memo { stamps, digest });
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(p: &Path, version: &str) {
        fs::write(p, format!("#!/bin/sh\n[ \"$1\" = --version ] && echo '{version}'\nexec cc \"$@\"\n")).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_linker_whose_version_or_contents_change_has_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        let memo = dir.path().join("memo");
        let l = dir.path().join("mylinker");
        script(&l, "mylinker 1.0");
        let a = linker_identity(&l, &memo).unwrap();
        assert_eq!(linker_identity(&l, &memo).unwrap(), a, "stable");
        script(&l, "mylinker 2.0");
        assert_ne!(linker_identity(&l, &memo).unwrap(), a, "a new version is a new linker");
    }
}

//! A C compiler's or linker's identity: the contents of the program (`-C linker`, `CC`, or the
//! default `cc`), the contents of the `ld` it drives (`-print-prog-name=ld`, for gcc and clang
//! drivers), and its `--version` output. Spawning those on every call would cost milliseconds,
//! so the digest is memoized in `<cache>/toolchains/linker-*.bin` with both programs' (path,
//! size, mtime, inode), like the toolchain (toolchain.rs). Used by the rustc front end for
//! links, and by the build-script and C front ends for the compilers they run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::filehash::hash_file;
use super::memo::{self, stamp, Stamp};
use super::toolchain::resolve_program;

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

/// The program of a compiler command that makes up its identity: the first word, or the
/// second when the first is a known compiler wrapper (`ccache gcc`).
pub fn program(command: &str) -> Option<&str> {
    let mut words = command.split_whitespace();
    let first = words.next()?;
    let stem = Path::new(first).file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if ["ccache", "sccache", "distcc", "icecc", "cachepot", "buildcache"].contains(&stem) {
        return words.next().or(Some(first));
    }
    Some(first)
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
    fn a_compiler_command_is_named_by_its_program_past_known_wrappers() {
        assert_eq!(program("ccache gcc -m32"), Some("gcc"));
        assert_eq!(program("clang -m32"), Some("clang"));
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

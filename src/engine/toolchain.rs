//! The toolchain's identity: a digest of the compiler's own files, remembered by file identity.
//!
//! What goes in: the rustc binary as cargo names it, every file in `<sysroot>/lib` (librustc_driver,
//! libLLVM, libstd …), every file under `<sysroot>/lib/rustlib/<target>/` and `…/<host>/`,
//! recursively (std's rlibs, the self-contained linker rust-lld and `gcc-ld/`, crt objects,
//! codegen backends), and the output of `rustc -vV`. `rustup update` or a toolchain switch replaces those
//! files, so the key changes and nothing stale is ever served.
//!
//! Hashing ~300 MB per rustc call would be absurd, so the digest is memoized in
//! `<cache>/toolchains/<hash of rustc path and target>.bin` together with every file's
//! (path, size, mtime, inode). A call re-lists those folders and stats each file (about a
//! hundred); if all match
//! the memo, the digest is reused (no rustc spawn, no hashing). Otherwise it is recomputed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::memo::{self, stamp, Stamp};

/// Identity of one toolchain for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// Digest of the files and `-vV` output.
    pub digest: [u8; 32],
    /// First line of `rustc -vV` (for entry metadata).
    pub version: String,
    /// The target triple compiled for.
    pub target: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Memo {
    sysroot: String,
    stamps: Vec<Stamp>,
    digest: [u8; 32],
    vv: String,
    target: String,
    host: String,
}

/// Computes (or recalls) the identity of `rustc` compiling for `target` (`None`: the host).
///
/// Fast path: cargo names the toolchain's own binary (`<toolchain>/bin/rustc`), so the sysroot
/// is its parent folder and no process is spawned. Any other rustc (a rustup proxy, a script)
/// is asked for its sysroot on every call, because what it runs can change without any file
/// at its path changing (`rustup default …`); the memo is then keyed by that sysroot too.
pub fn identify(rustc: &Path, target: Option<&str>, memo_dir: &Path) -> io::Result<Toolchain> {
    let rustc = &resolve_program(rustc)?;
    let sysroot = match toolchain_layout(rustc) {
        Some(root) => root,
        None => PathBuf::from(run(rustc, &["--print", "sysroot"])?.trim()),
    };
    let memo_path = memo_dir.join(format!(
        "{}.bin",
        &blake3::hash(format!("v3\0{}\0{}\0{}", rustc.display(), target.unwrap_or(""), sysroot.display()).as_bytes())
            .to_hex()[..32]
    ));
    if let Some(memo) = memo::load::<Memo>(&memo_path) {
        if memo.sysroot == sysroot.display().to_string() {
            if let Ok(stamps) = stamp_all(rustc, &sysroot, &memo.target, &memo.host) {
                if stamps == memo.stamps {
                    return Ok(Toolchain { digest: memo.digest, version: first_line(&memo.vv), target: memo.target });
                }
            }
        }
    }
    let vv = run(rustc, &["-vV"])?;
    let host = vv.lines().find_map(|l| l.strip_prefix("host: ")).unwrap_or("unknown").trim().to_string();
    let target = target.map(str::to_string).unwrap_or_else(|| host.clone());
    let stamps = stamp_all(rustc, &sysroot, &target, &host)?;
    let mut h = blake3::Hasher::new();
    h.update(b"cairn-toolchain-v3\0");
    h.update(vv.as_bytes());
    for s in &stamps {
        // Named inside the sysroot, so the same toolchain under another RUSTUP_HOME is the same;
        // contents decide.
        let p = Path::new(&s.path);
        let name = p.strip_prefix(&sysroot).ok().or_else(|| p.file_name().map(Path::new)).unwrap_or(p);
        h.update(name.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        h.update(&super::filehash::hash_file(Path::new(&s.path))?);
    }
    let digest = *h.finalize().as_bytes();
    let memo =
        Memo { sysroot: sysroot.display().to_string(), stamps, digest, vv: vv.clone(), target: target.clone(), host };
    memo::save(&memo_path, &memo);
    Ok(Toolchain { digest, version: first_line(&vv), target })
}

/// A bare program name (`rustc`) looked up on `PATH`, as the shell would.
pub fn resolve_program(p: &Path) -> io::Result<PathBuf> {
    if p.components().count() > 1 {
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| c.is_file())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{} not found on PATH", p.display())))
}

/// `<dir>/..` when `rustc` is a regular file named rustc in a toolchain's `bin/` (not a
/// symlink to rustup), next to a `lib/rustlib`.
fn toolchain_layout(rustc: &Path) -> Option<PathBuf> {
    let meta = fs::symlink_metadata(rustc).ok()?;
    let bin = rustc.parent()?;
    let root = bin.parent()?;
    (meta.file_type().is_file() && bin.file_name()? == "bin" && root.join("lib/rustlib").is_dir())
        .then(|| root.to_path_buf())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn run(rustc: &Path, args: &[&str]) -> io::Result<String> {
    let out = Command::new(rustc).args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("{} {} failed", rustc.display(), args.join(" "))));
    }
    String::from_utf8(out.stdout).map_err(io::Error::other)
}

/// The files that make up the toolchain for `target`, in a fixed order: the rustc binary, the
/// top level of `<sysroot>/lib` (the compiler's own libraries), and everything under
/// `lib/rustlib/<target>/` and `lib/rustlib/<host>/`, recursively: std's rlibs, the
/// self-contained linker and crt objects, `bin/` with rust-lld and gcc-ld, codegen backends.
/// Not `rustlib/src` (sources: they reach a key through dep-info when a build uses them) nor
/// `rustlib/etc` (debugger scripts).
fn stamp_all(rustc: &Path, sysroot: &Path, target: &str, host: &str) -> io::Result<Vec<Stamp>> {
    let mut out = vec![stamp(rustc)?];
    let mut files = Vec::new();
    list(&sysroot.join("lib"), false, &mut files)?;
    let rustlib = sysroot.join("lib/rustlib");
    // A `--target` spec file's sysroot folder is named after the file.
    let target = match target.strip_suffix(".json") {
        Some(t) => Path::new(t).file_name().and_then(|n| n.to_str()).unwrap_or(t),
        None => target,
    };
    list(&rustlib.join(target), true, &mut files)?;
    if host != target {
        list(&rustlib.join(host), true, &mut files)?;
    }
    for p in files {
        out.push(stamp(&p)?);
    }
    Ok(out)
}

/// Appends the files of `dir` (sorted; into subfolders too when `deep`, never through a
/// symlinked folder). A missing folder has no files.
fn list(dir: &Path, deep: bool, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut names: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    names.sort();
    for p in names {
        let meta = fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            if deep {
                list(&p, true, out)?;
            }
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A rustc script that runs the real compiler but reports its own `-vV`.
    fn fake(dir: &Path, release: &str) -> PathBuf {
        let p = dir.join(release).join("rustc");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let script = format!(
            "#!/bin/sh\nif [ \"$1\" = -vV ]; then rustc -vV | sed 's/^release: .*/release: {release}/'; else exec rustc \"$@\"; fi\n"
        );
        fs::write(&p, script).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn a_different_version_output_is_a_different_toolchain() {
        let dir = tempfile::tempdir().unwrap();
        let memo = dir.path().join("memo");
        let pa = fake(dir.path(), "1.0.0-a");
        let a = identify(&pa, None, &memo).unwrap();
        let b = identify(&fake(dir.path(), "1.0.0-b"), None, &memo).unwrap();
        assert_ne!(a.digest, b.digest);
        assert!(a.version.starts_with("rustc "));
        assert_eq!(fs::read_dir(&memo).unwrap().count(), 2, "one memo per toolchain");
        assert_eq!(identify(&pa, None, &memo).unwrap(), a, "stable");
    }

    #[test]
    fn a_changed_self_contained_linker_is_a_different_toolchain() {
        let dir = tempfile::tempdir().unwrap();
        let memo = dir.path().join("memo");
        let host = run(Path::new("rustc"), &["-vV"]).unwrap();
        let host = host.lines().find_map(|l| l.strip_prefix("host: ")).unwrap().trim().to_string();
        // A toolchain folder: bin/rustc (running the real one) next to lib/rustlib, with a
        // gcc-ld/ld.lld deep under rustlib/<host>/bin.
        let root = dir.path().join("tc");
        let ld = root.join(format!("lib/rustlib/{host}/bin/gcc-ld/ld.lld"));
        fs::create_dir_all(ld.parent().unwrap()).unwrap();
        fs::create_dir_all(root.join("bin")).unwrap();
        let rustc = root.join("bin/rustc");
        fs::write(&rustc, "#!/bin/sh\nexec rustc \"$@\"\n").unwrap();
        fs::set_permissions(&rustc, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(&ld, "lld one").unwrap();
        let a = identify(&rustc, None, &memo).unwrap();
        fs::write(&ld, "lld number two").unwrap();
        assert_ne!(identify(&rustc, None, &memo).unwrap().digest, a.digest);
    }

    #[test]
    fn bare_names_are_found_on_path() {
        let p = resolve_program(Path::new("sh")).unwrap();
        assert!(p.is_absolute() && p.ends_with("sh"));
        assert!(resolve_program(Path::new("surely-not-a-program-cairn")).is_err());
    }
}

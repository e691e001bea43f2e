//! What a build-script run read: the files of its package, the paths it declared with
//! `rerun-if-changed` (directories walked), and the sources and headers of the C compiles it
//! ran; each hashed by content.
//!
//! Entries of a dependency set are tagged strings, so one list can mix the kinds:
//! `f:<path>` a file, `d:<path>` a directory walked in full (as cargo does for a declared
//! directory). Paths are absolute (checkout-relative under `CAIRN_BASEDIR`, made absolute
//! again by the caller).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::engine::filehash::hash_file;
use crate::engine::inputs::{changed_since, HashedFiles, NotNow};

/// What the script printed that tells cargo (and cairn) when to run it again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Declared {
    /// `rerun-if-changed` paths, as printed.
    pub paths: Vec<String>,
    /// `rerun-if-env-changed` variable names.
    pub env: Vec<String>,
}

/// Reads `cargo:` and `cargo::` directives from a script's stdout.
pub fn declared(stdout: &[u8]) -> Declared {
    let mut d = Declared::default();
    for line in String::from_utf8_lossy(stdout).lines() {
        let Some(rest) = line.strip_prefix("cargo::").or_else(|| line.strip_prefix("cargo:")) else {
            continue;
        };
        if let Some(p) = rest.strip_prefix("rerun-if-changed=") {
            if !d.paths.iter().any(|x| x == p) {
                d.paths.push(p.to_string());
            }
        } else if let Some(v) = rest.strip_prefix("rerun-if-env-changed=") {
            if !d.env.iter().any(|x| x == v) {
                d.env.push(v.to_string());
            }
        }
    }
    d
}

/// The tagged entry for a declared path (relative paths are relative to the package).
pub fn entry_for(package: &Path, declared: &str) -> String {
    let p = package.join(declared);
    if p.is_dir() {
        format!("d:{}", p.display())
    } else {
        format!("f:{}", p.display())
    }
}

/// Every file under `dir`, sorted; `package` walks skip what cargo does not count as the
/// package's: the `.git` folder, nested packages (folders with their own `Cargo.toml`), the
/// `target` folder at the package's root (as cargo does) and any other target folder (marked
/// by cargo's `CACHEDIR.TAG`).
pub fn walk(dir: &Path, package: bool) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let p = e.path();
            let t = e.file_type()?;
            if t.is_dir() {
                if package
                    && (e.file_name() == ".git"
                        || (d == dir && e.file_name() == "target")
                        || p.join("Cargo.toml").exists()
                        || p.join("CACHEDIR.TAG").exists())
                {
                    continue;
                }
                stack.push(p);
            } else {
                // Files and symlinks (a symlink's target is hashed; a dangling one as missing).
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Hashes of a list of tagged entries, as `(label, hash or None when missing)`, in order:
/// what the result key is made of. `newer_than`: the run's start; a file changed since then
/// (the engine's rule, `engine::inputs::changed_since`) fails the whole list, so an input
/// edited while the script ran is never recorded.
pub fn hash_entries(entries: &[String], newer_than: Option<SystemTime>) -> Result<HashedFiles, NotNow> {
    let mut out = Vec::new();
    for e in entries {
        if let Some(p) = e.strip_prefix("d:") {
            let files = walk(Path::new(p), false).map_err(|_| NotNow::Gone(p.to_string()))?;
            out.push((e.clone(), None));
            for f in files {
                out.push((format!("f:{}", f.display()), hash_one(&f, newer_than)?));
            }
        } else {
            let p = e.strip_prefix("f:").unwrap_or(e);
            out.push((e.clone(), hash_one(Path::new(p), newer_than)?));
        }
    }
    Ok(out)
}

/// `Ok(None)`: missing (a declared path may name nothing).
fn hash_one(p: &Path, newer_than: Option<SystemTime>) -> Result<Option<[u8; 32]>, NotNow> {
    let gone = || NotNow::Gone(p.display().to_string());
    let meta = match fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err(gone()),
    };
    // mtime, not ctime: remembering a hash in an xattr (filehash.rs) changes ctime, and the
    // C compiles of the run remember the hashes of the headers they read.
    if newer_than.is_some_and(|t| changed_since(&meta, t)) {
        return Err(NotNow::Changed(p.display().to_string()));
    }
    if meta.is_dir() {
        return Ok(Some(*blake3::hash(b"directory").as_bytes()));
    }
    hash_file(p).map(Some).map_err(|_| gone())
}

/// The digest of a package's files (paths relative to the package, and contents).
///
/// Every package is walked, a registry one too: an edit made by hand inside
/// `$CARGO_HOME/registry/src` is seen. The walk costs two calls per file whose hash is
/// remembered (engine/filehash.rs): libc's 453 files, 2 ms.
pub fn package_digest(package: &Path) -> io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    for f in walk(package, true)? {
        let rel = f.strip_prefix(package).unwrap_or(&f);
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        match hash_file(&f) {
            Ok(x) => h.update(&x),
            Err(e) if e.kind() == io::ErrorKind::NotFound => h.update(b"missing"),
            Err(e) => return Err(e),
        };
    }
    Ok(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_directive_syntaxes() {
        let out = b"cargo:rerun-if-changed=build.rs\ncargo::rerun-if-changed=src/c\ncargo:rustc-link-lib=z\n\
cargo:rerun-if-env-changed=CC\ncargo::rerun-if-env-changed=ZSTD_SYS_USE_PKG_CONFIG\ncargo:rerun-if-changed=build.rs\n";
        let d = declared(out);
        assert_eq!(d.paths, vec!["build.rs", "src/c"]);
        assert_eq!(d.env, vec!["CC", "ZSTD_SYS_USE_PKG_CONFIG"]);
    }

    #[test]
    fn a_package_walk_skips_git_nested_packages_and_target_dirs() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str| {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "x").unwrap();
        };
        // `target/` has no tag, as in a target dir seeded before cargo made it: cargo skips the
        // root's `target` by its name all the same. A `target` folder deeper down is sources.
        for p in [
            "Cargo.toml",
            "src/lib.rs",
            "c/a.c",
            ".git/HEAD",
            "sub/Cargo.toml",
            "sub/x.rs",
            "t/CACHEDIR.TAG",
            "target/debug/.fingerprint/x",
            "src/target/y.rs",
        ] {
            w(p);
        }
        let names: Vec<String> = walk(d.path(), true)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(d.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["Cargo.toml", "c/a.c", "src/lib.rs", "src/target/y.rs"]);
        let before = package_digest(d.path()).unwrap();
        w("sub/x.rs");
        assert_eq!(package_digest(d.path()).unwrap(), before, "a nested package is not ours");
        fs::write(d.path().join("c/a.c"), "y").unwrap();
        assert_ne!(package_digest(d.path()).unwrap(), before, "a C file of ours is");
    }

    #[test]
    fn entries_hash_files_and_whole_directories_and_refuse_late_edits() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("dir/deep")).unwrap();
        fs::write(d.path().join("dir/deep/x.h"), "1").unwrap();
        fs::write(d.path().join("f.c"), "1").unwrap();
        let entries = vec![entry_for(d.path(), "dir"), entry_for(d.path(), "f.c"), entry_for(d.path(), "gone")];
        assert!(entries[0].starts_with("d:") && entries[1].starts_with("f:"));
        let a = hash_entries(&entries, None).unwrap();
        assert_eq!(a.last().unwrap().1, None, "missing");
        fs::write(d.path().join("dir/deep/x.h"), "2").unwrap();
        assert_ne!(hash_entries(&entries, None).unwrap(), a, "a file deep in a declared directory");
        let past = SystemTime::now() - std::time::Duration::from_secs(60);
        assert!(matches!(hash_entries(&entries, Some(past)), Err(NotNow::Changed(_))), "edited after the run started");
    }

    #[test]
    fn a_registry_package_is_walked_like_any_other() {
        let d = tempfile::tempdir().unwrap();
        let pkg = d.path().join("registry/src/index.crates.io-1/foo-1.0.0");
        fs::create_dir_all(pkg.join("src")).unwrap();
        fs::write(pkg.join("src/lib.rs"), "1").unwrap();
        fs::write(pkg.join(".cargo-ok"), r#"{"v":1}"#).unwrap();
        let before = package_digest(&pkg).unwrap();
        fs::write(pkg.join("src/lib.rs"), "2").unwrap();
        assert_ne!(package_digest(&pkg).unwrap(), before, "an edit by hand is seen");
    }
}

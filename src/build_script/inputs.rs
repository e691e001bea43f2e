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
use std::path::Path;
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

/// Hashes of a list of tagged entries, as `(label, hash or None when missing)`, in order:
/// what the result key is made of. `newer_than`: the run's start; a file changed since then
/// (the engine's rule, `engine::inputs::changed_since`) fails the whole list, so an input
/// edited while the script ran is never recorded.
pub fn hash_entries(entries: &[String], newer_than: Option<SystemTime>) -> Result<HashedFiles, NotNow> {
    let mut out = Vec::new();
    for e in entries {
        if let Some(p) = e.strip_prefix("d:") {
            let files = crate::engine::tree::walk(Path::new(p), false).map_err(|_| NotNow::Gone(p.to_string()))?;
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
}

//! Folders as inputs: the files of a package or of a declared folder, walked as cargo counts
//! them, and one digest of their names and contents.
//!
//! A build-script run's key takes its package's digest (build_script/key.rs), and a seeded
//! run is checked against the same digest, and against that of each folder it declared with
//! `rerun-if-changed`, before it is restored (engine/seed/restore.rs).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::filehash::hash_file;

/// Every file under `dir`, sorted; `package` walks skip what cargo does not count as the
/// package's: the `.git` folder, nested packages (folders with their own `Cargo.toml`), the
/// `target` folder at the package's root (as cargo does) and any other target folder (marked
/// by cargo's `CACHEDIR.TAG`).
pub fn walk(dir: &Path, package: bool) -> io::Result<Vec<PathBuf>> {
    Ok(walk_both(dir, package)?.0)
}

/// [`walk`]'s files, and the folders walked (`dir` first; none when it does not exist).
fn walk_both(dir: &Path, package: bool) -> io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut out = Vec::new();
    let mut dirs = Vec::new();
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
        dirs.push(d);
    }
    out.sort();
    Ok((out, dirs))
}

/// The digest of a package's files (paths relative to the package, and contents).
///
/// Every package is walked, a registry one too: an edit made by hand inside
/// `$CARGO_HOME/registry/src` is seen. The walk costs two calls per file whose hash is
/// remembered (engine/filehash.rs): libc's 453 files, 2 ms.
pub fn package_digest(package: &Path) -> io::Result<[u8; 32]> {
    Ok(digest_walk(package, true, false)?.0)
}

/// A folder as it is now: the digest of its files (a package's as [`package_digest`] counts
/// them when `package`, else every file under it) and the newest modification time of
/// those files (and of its folders, unless `package`; ns since the epoch, 0 for none).
pub fn folder_now(dir: &Path, package: bool) -> io::Result<([u8; 32], u64)> {
    digest_walk(dir, package, true)
}

/// The digest [`folder_now`] gives, of a folder's files as recorded: each path relative to
/// the folder with its BLAKE3 (`None`: a file that could not be read, a dangling link), in
/// the walk's (sorted) order.
pub fn listing_digest<'a>(files: impl IntoIterator<Item = (&'a Path, Option<[u8; 32]>)>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for (rel, hash) in files {
        add(&mut h, rel, hash);
    }
    *h.finalize().as_bytes()
}

fn add(h: &mut blake3::Hasher, rel: &Path, hash: Option<[u8; 32]>) {
    h.update(rel.as_os_str().as_encoded_bytes());
    h.update(b"\0");
    match hash {
        Some(x) => h.update(&x),
        None => h.update(b"missing"),
    };
}

/// The digest, and with `times` the newest modification time of the files, and of the
/// folders walked unless `package`: cargo's scan of a folder a run declared takes the
/// folders' own times too, its newest file of a package only files (the package's own folder
/// is touched when a target dir is made in it).
fn digest_walk(dir: &Path, package: bool, times: bool) -> io::Result<([u8; 32], u64)> {
    let mut h = blake3::Hasher::new();
    let mut newest = 0u64;
    let (files, dirs) = walk_both(dir, package)?;
    let mut time = |p: &Path| {
        if let Ok(t) = fs::metadata(p).and_then(|m| m.modified()) {
            newest = newest.max(t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0));
        }
    };
    if times && !package {
        dirs.iter().for_each(|d| time(d));
    }
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        if times {
            time(&f);
        }
        match hash_file(&f) {
            Ok(x) => add(&mut h, rel, Some(x)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => add(&mut h, rel, None),
            Err(e) => return Err(e),
        }
    }
    Ok((*h.finalize().as_bytes(), newest))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_folder_recorded_file_by_file_has_the_digest_of_its_walk() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("c/deep")).unwrap();
        fs::write(d.path().join("c/v.c"), "int v;").unwrap();
        fs::write(d.path().join("c/deep/v.h"), "#define V 1").unwrap();
        let c = d.path().join("c");
        let recorded: Vec<(PathBuf, Option<[u8; 32]>)> = walk(&c, false)
            .unwrap()
            .into_iter()
            .map(|f| (f.strip_prefix(&c).unwrap().into(), hash_file(&f).ok()))
            .collect();
        let (now, newest) = folder_now(&c, false).unwrap();
        assert_eq!(listing_digest(recorded.iter().map(|(p, h)| (p.as_path(), *h))), now);
        assert!(newest > 0);
        fs::write(d.path().join("c/new.h"), "").unwrap();
        assert_ne!(folder_now(&c, false).unwrap().0, now, "a file added to the folder");
    }
}

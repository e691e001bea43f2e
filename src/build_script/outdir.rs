//! A build script's `OUT_DIR` as the files of a result object, and back.
//!
//! Names are paths relative to `OUT_DIR` (`include/zstd.h`); a name ending in `/` is a
//! directory (kept so an empty one comes back too). Restored files are written under a
//! temporary name and renamed into place, so they carry fresh mtimes and a reader never sees a
//! half-written file; their hashes are remembered (filehash.rs), so dependents that hash them
//! (`DEP_*` folders, C headers) do not read them again.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

use crate::engine::basedir::{Rel, RootScan};
use crate::engine::filehash;
use crate::protocol::object::{Body, FileStamp, FileView, OutputFile};

/// Why an `OUT_DIR` cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("OUT_DIR holds a symlink or special file: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What [`snapshot`] found.
#[derive(Debug)]
pub struct Snapshot {
    /// Every file and directory, in name order.
    pub files: Vec<OutputFile>,
    /// The placeholders of the roots whose paths the binary files name, file by file in name
    /// order, repeats and all (text is moved to the next build's folders when restored, so it
    /// binds nothing).
    pub bound: Vec<&'static str>,
}

/// A binary file at least this large stays in its file until the object is written: its
/// descriptor goes to the daemon, and it is read once here, a chunk at a time, to hash it
/// and look for the roots (a `-sys` crate's archive and objects: zstd-sys's 6 MB). Text
/// (moved to the next build's folders when restored) and small files are read into memory.
const IN_FILE_FROM: u64 = 256 << 10;

/// How much of a large file is read at once.
const CHUNK: usize = 64 << 10;

/// Every file and directory under `out_dir`, in name order.
pub fn snapshot(out_dir: &Path, rel: &Rel) -> Result<Snapshot, SnapshotError> {
    let mut out = Vec::new();
    let mut scan = rel.scan();
    let mut stack = vec![out_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let p = e.path();
            let rel_name = p.strip_prefix(out_dir).unwrap_or(&p).display().to_string();
            let meta = fs::symlink_metadata(&p)?;
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                let dir =
                    OutputFile { name: format!("{rel_name}/"), mode, hash: [0; 32], body: Body::Bytes(Vec::new()) };
                out.push((dir, Vec::new()));
                stack.push(p);
            } else if meta.is_file() {
                out.push(match meta.len() >= IN_FILE_FROM {
                    true => read_large(&p, rel_name, mode, rel, &mut scan)?,
                    false => in_memory(fs::read(&p)?, rel_name, mode, rel),
                });
            } else {
                return Err(SnapshotError::Unsupported(rel_name));
            }
        }
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let (files, found): (Vec<_>, Vec<_>) = out.into_iter().unzip();
    Ok(Snapshot { files, bound: found.into_iter().flatten().collect() })
}

/// A file read whole, and the roots it names if it is not text.
fn in_memory(bytes: Vec<u8>, name: String, mode: u32, rel: &Rel) -> (OutputFile, Vec<&'static str>) {
    let found = match std::str::from_utf8(&bytes) {
        Ok(_) => Vec::new(),
        Err(_) => rel.found_in(&bytes),
    };
    let hash = *blake3::hash(&bytes).as_bytes();
    (OutputFile { name, mode, hash, body: Body::Bytes(bytes) }, found)
}

/// A large file: one that starts as text is read whole ([`in_memory`]); any other is hashed
/// and searched a chunk at a time and left in its file, as it was when read (its stamp).
fn read_large(
    path: &Path,
    name: String,
    mode: u32,
    rel: &Rel,
    scan: &mut RootScan<'_>,
) -> io::Result<(OutputFile, Vec<&'static str>)> {
    let mut f = fs::File::open(path)?;
    let stamp = FileStamp::of(&f.metadata()?);
    let mut buf = vec![0u8; CHUNK];
    let Some(r) = scan.read_file(&mut f, &mut buf, |head| !filehash::starts_as_text(head))? else {
        // Rare (a large generated source): read whole, as small files are.
        return Ok(in_memory(fs::read(path)?, name, mode, rel));
    };
    if r.len != stamp.len {
        return Err(io::Error::other(format!("{name} changed while it was read")));
    }
    Ok((OutputFile { name, mode, hash: r.hash, body: Body::File { path: path.to_path_buf(), stamp } }, r.found))
}

/// Writes stored files back under `out_dir`. Names that would leave it are refused. `fix`
/// gives a file's bytes as they must be written here, when they differ from the stored ones
/// (text naming the folders the run was made in: see `build_script::run`).
pub fn restore(out_dir: &Path, files: &[FileView<'_>], fix: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> io::Result<()> {
    fs::create_dir_all(out_dir)?;
    for f in files {
        let rel = Path::new(f.name.trim_end_matches('/'));
        if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(io::Error::other(format!("refusing odd OUT_DIR name {:?}", f.name)));
        }
        let dest = out_dir.join(rel);
        if f.name.ends_with('/') {
            fs::create_dir_all(&dest)?;
            continue;
        }
        let dir = dest.parent().unwrap_or(out_dir);
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            ".cairn-{}-{}",
            std::process::id(),
            rel.file_name().unwrap_or_default().to_string_lossy()
        ));
        let mode = crate::engine::process::safe_mode(f.mode);
        let fixed = fix(f.bytes);
        let bytes = fixed.as_deref().unwrap_or(f.bytes);
        let written = (|| {
            let mut w = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
            w.write_all(bytes)?;
            w.set_permissions(fs::Permissions::from_mode(mode))?;
            drop(w);
            fs::rename(&tmp, &dest)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        match &fixed {
            Some(b) => filehash::remember(&dest, blake3::hash(b).as_bytes()),
            None => filehash::remember(&dest, &f.hash),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(files: &[OutputFile]) -> Vec<FileView<'_>> {
        files
            .iter()
            .map(|f| FileView {
                name: f.name.clone(),
                mode: f.mode,
                hash: f.hash,
                bytes: f.body.in_memory().unwrap(),
                at: None,
            })
            .collect()
    }

    /// The roots of a build whose OUT_DIR is `out`.
    fn rel_for(out: &Path) -> Rel {
        Rel::for_package(out, out, None)
    }

    #[test]
    fn a_large_binary_file_stays_in_its_file_and_binds_the_roots_it_names() {
        let a = tempfile::tempdir().unwrap();
        let rel = rel_for(a.path());
        let root = rel.stored().into_iter().next().expect("a root").1;
        // An archive that names the root past its first chunk, then a large text file and a
        // small binary one that names it too.
        let mut ar = b"!<arch>\n\xff\xfe".to_vec();
        ar.resize(200 << 10, 0);
        ar.extend_from_slice(root.as_bytes());
        ar.resize(300 << 10, 7);
        fs::write(a.path().join("libz.a"), &ar).unwrap();
        let text = format!("// {root}\n").repeat(30_000);
        fs::write(a.path().join("bindings.rs"), &text).unwrap();
        let snap = snapshot(a.path(), &rel).unwrap();
        let by = |n: &str| snap.files.iter().find(|f| f.name == n).unwrap();
        assert!(matches!(by("libz.a").body, Body::File { .. }), "left in its file");
        assert_eq!(by("libz.a").hash, *blake3::hash(&ar).as_bytes());
        assert_eq!(by("bindings.rs").body.in_memory(), Some(text.as_bytes()), "text is read whole");
        assert_eq!(snap.bound.len(), 1, "the archive binds the root, the text does not");

        fs::remove_file(a.path().join("libz.a")).unwrap();
        fs::write(a.path().join("small.o"), [&b"\xff"[..], root.as_bytes()].concat()).unwrap();
        assert_eq!(snapshot(a.path(), &rel).unwrap().bound.len(), 1, "a small binary file binds it too");
        fs::remove_file(a.path().join("small.o")).unwrap();
        assert!(snapshot(a.path(), &rel).unwrap().bound.is_empty());
    }

    #[test]
    fn a_tree_round_trips_with_empty_dirs_dot_files_and_modes() {
        let a = tempfile::tempdir().unwrap();
        fs::create_dir_all(a.path().join("include/sub")).unwrap();
        fs::create_dir_all(a.path().join("empty")).unwrap();
        fs::write(a.path().join("include/sub/z.h"), "h").unwrap();
        fs::write(a.path().join(".libs"), "dot").unwrap();
        fs::write(a.path().join("libz.a"), "ar").unwrap();
        fs::set_permissions(a.path().join("libz.a"), fs::Permissions::from_mode(0o755)).unwrap();
        let snap = snapshot(a.path(), &rel_for(a.path())).unwrap().files;
        let b = tempfile::tempdir().unwrap();
        restore(b.path(), &views(&snap), &|_| None).unwrap();
        let again = snapshot(b.path(), &rel_for(b.path())).unwrap().files;
        assert_eq!(again, snap);
        assert!(b.path().join("empty").is_dir());
    }

    #[test]
    fn names_that_leave_out_dir_are_refused_and_symlinks_are_not_stored() {
        let b = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/x", "a/../../x", ""] {
            let f = OutputFile { name: bad.into(), mode: 0o644, hash: [0; 32], body: Body::Bytes(vec![]) };
            assert!(restore(b.path(), &views(&[f]), &|_| None).is_err(), "{bad}");
        }
        std::os::unix::fs::symlink("/etc/passwd", b.path().join("link")).unwrap();
        assert!(matches!(snapshot(b.path(), &rel_for(b.path())), Err(SnapshotError::Unsupported(_))));
    }

    #[test]
    fn a_file_the_fix_changes_is_written_changed() {
        let files = vec![
            OutputFile {
                name: "z.pc".into(),
                mode: 0o644,
                hash: [0; 32],
                body: Body::Bytes(b"prefix=/a/out\n".to_vec()),
            },
            OutputFile { name: "libz.a".into(), mode: 0o644, hash: [0; 32], body: Body::Bytes(b"ar".to_vec()) },
        ];
        let b = tempfile::tempdir().unwrap();
        let fix = |bytes: &[u8]| (bytes.starts_with(b"prefix=")).then(|| b"prefix=/b/out\n".to_vec());
        restore(b.path(), &views(&files), &fix).unwrap();
        assert_eq!(fs::read(b.path().join("z.pc")).unwrap(), b"prefix=/b/out\n");
        assert_eq!(fs::read(b.path().join("libz.a")).unwrap(), b"ar");
    }

    #[test]
    fn restored_modes_are_made_safe() {
        let files =
            vec![OutputFile { name: "tool".into(), mode: 0o4777, hash: [0; 32], body: Body::Bytes(b"x".to_vec()) }];
        let b = tempfile::tempdir().unwrap();
        restore(b.path(), &views(&files), &|_| None).unwrap();
        assert_eq!(fs::metadata(b.path().join("tool")).unwrap().permissions().mode() & 0o7777, 0o755);
    }
}

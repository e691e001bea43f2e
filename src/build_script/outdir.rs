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

use crate::engine::filehash;
use crate::protocol::object::{Body, FileView, OutputFile};

/// Why an `OUT_DIR` cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("OUT_DIR holds a symlink or special file: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Every file and directory under `out_dir`, in name order.
pub fn snapshot(out_dir: &Path) -> Result<Vec<OutputFile>, SnapshotError> {
    let mut out = Vec::new();
    let mut stack = vec![out_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let p = e.path();
            let rel = p.strip_prefix(out_dir).unwrap_or(&p).display().to_string();
            let meta = fs::symlink_metadata(&p)?;
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.push(OutputFile { name: format!("{rel}/"), mode, hash: [0; 32], body: Body::Bytes(Vec::new()) });
                stack.push(p);
            } else if meta.is_file() {
                let bytes = fs::read(&p)?;
                let hash = *blake3::hash(&bytes).as_bytes();
                out.push(OutputFile { name: rel, mode, hash, body: Body::Bytes(bytes) });
            } else {
                return Err(SnapshotError::Unsupported(rel));
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
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

    #[test]
    fn a_tree_round_trips_with_empty_dirs_dot_files_and_modes() {
        let a = tempfile::tempdir().unwrap();
        fs::create_dir_all(a.path().join("include/sub")).unwrap();
        fs::create_dir_all(a.path().join("empty")).unwrap();
        fs::write(a.path().join("include/sub/z.h"), "h").unwrap();
        fs::write(a.path().join(".libs"), "dot").unwrap();
        fs::write(a.path().join("libz.a"), "ar").unwrap();
        fs::set_permissions(a.path().join("libz.a"), fs::Permissions::from_mode(0o755)).unwrap();
        let snap = snapshot(a.path()).unwrap();
        let b = tempfile::tempdir().unwrap();
        restore(b.path(), &views(&snap), &|_| None).unwrap();
        let again = snapshot(b.path()).unwrap();
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
        assert!(matches!(snapshot(b.path()), Err(SnapshotError::Unsupported(_))));
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

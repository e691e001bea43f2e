//! BLAKE3 of a file's contents, remembered on the file itself.
//!
//! Hashing every `--extern` rlib on every rustc call would cost tens of milliseconds for a
//! crate with many dependencies. So the hash is stored in an extended attribute of the file
//! (`user.cairn.b3`) together with the size and mtime it was taken at; a later call that finds
//! the same inode with the same size and mtime (to the nanosecond) reuses it. Extended
//! attributes belong to the inode: a rewritten file (rustc writes new files, cargo copies) has
//! none, or one whose size/mtime no longer match. Where xattrs are unsupported or read-only,
//! the file is simply hashed every time.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const XATTR: &[u8] = b"user.cairn.b3v1\0";
const RECORD_LEN: usize = 32 + 8 + 8 + 8;

/// The BLAKE3 of `path`'s contents.
pub fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut f = File::open(path)?;
    let meta = f.metadata()?;
    let stamp = (meta.len(), meta.mtime(), meta.mtime_nsec());
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    if let Some(h) = read_memo(&cpath, stamp) {
        return Ok(h);
    }
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hash = *hasher.finalize().as_bytes();
    // Only remember it if the file did not change while we read it.
    let after = f.metadata()?;
    if (after.len(), after.mtime(), after.mtime_nsec()) == stamp {
        write_memo(&cpath, &hash, stamp);
    }
    Ok(hash)
}

/// Records a hash we already know (we just wrote or restored the file).
pub fn remember(path: &Path, hash: &[u8; 32]) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) {
        write_memo(&cpath, hash, (meta.len(), meta.mtime(), meta.mtime_nsec()));
    }
}

fn read_memo(cpath: &CString, stamp: (u64, i64, i64)) -> Option<[u8; 32]> {
    let mut buf = [0u8; RECORD_LEN];
    // SAFETY: both pointers are valid for the lengths given; the kernel writes at most
    // buf.len() bytes.
    let n = unsafe { libc::getxattr(cpath.as_ptr(), XATTR.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
    if n != RECORD_LEN as isize {
        return None;
    }
    let size = u64::from_le_bytes(buf[32..40].try_into().ok()?);
    let sec = i64::from_le_bytes(buf[40..48].try_into().ok()?);
    let nsec = i64::from_le_bytes(buf[48..56].try_into().ok()?);
    if (size, sec, nsec) != stamp {
        return None;
    }
    buf[..32].try_into().ok()
}

fn write_memo(cpath: &CString, hash: &[u8; 32], stamp: (u64, i64, i64)) {
    let mut buf = [0u8; RECORD_LEN];
    buf[..32].copy_from_slice(hash);
    buf[32..40].copy_from_slice(&stamp.0.to_le_bytes());
    buf[40..48].copy_from_slice(&stamp.1.to_le_bytes());
    buf[48..56].copy_from_slice(&stamp.2.to_le_bytes());
    // SAFETY: valid pointers and lengths. Failure (EPERM, ENOTSUP, read-only) is fine: the
    // memo is an optimisation only.
    unsafe {
        libc::setxattr(cpath.as_ptr(), XATTR.as_ptr().cast(), buf.as_ptr().cast(), buf.len(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"one").unwrap();
        assert_eq!(hash_file(&p).unwrap(), *blake3::hash(b"one").as_bytes());
        assert_eq!(hash_file(&p).unwrap(), *blake3::hash(b"one").as_bytes(), "memo hit");
        // Same size, new content, new mtime.
        std::fs::write(&p, b"two").unwrap();
        assert_eq!(hash_file(&p).unwrap(), *blake3::hash(b"two").as_bytes());
    }

    #[test]
    fn a_memo_taken_at_another_size_or_mtime_is_ignored() {
        // (A memo forged with the right stamp would be trusted: the memo assumes nobody forges
        // xattrs on files in the target dir; docs/cache-key.md.)
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"data").unwrap();
        let cpath = CString::new(p.as_os_str().as_bytes()).unwrap();
        write_memo(&cpath, &[9; 32], (999, 0, 0));
        assert_eq!(hash_file(&p).unwrap(), *blake3::hash(b"data").as_bytes());
    }
}

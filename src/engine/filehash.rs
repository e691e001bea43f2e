//! BLAKE3 of a file's contents, remembered on the file itself.
//!
//! Hashing every `--extern` rlib on every rustc call would cost tens of milliseconds for a
//! crate with many dependencies. So the hash is stored in an extended attribute of the file
//! (`user.cairn.b3v2`) together with the size and mtime it was taken at, and the window its
//! ctime fell in. A later call reuses it only if size and mtime are the same to the nanosecond
//! *and* the ctime is still inside that window.
//!
//! The ctime is what makes this safe: tools put mtimes back (`cp -p`, `rsync -t`, editors'
//! safe-save, `touch -r`), but any write, rename over or attribute change sets the ctime to now,
//! and nothing but the kernel sets it. The window is needed because writing the memo is itself
//! an attribute change: it moves the ctime to the moment of the write. So the memo records
//! [ctime when hashed, a moment just after the write]; a rewrite later than that is seen. What
//! is left is a rewrite within that fraction of a second after cairn hashed the file — an edit
//! racing the build, which docs/cache-key.md lists.
//!
//! A file of another user's (the C library, a toolchain installed by root), for a user other
//! than root, takes no attribute from us: its memo is a small file in `<cache>/filehashes/`
//! instead, holding the same record, and holds only while the ctime is the very one it was
//! taken at (writing it changes nothing of the file). Where xattrs are unsupported or
//! read-only on the user's own files, the file is simply hashed every time.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::basedir::Rel;

const XATTR: &[u8] = b"user.cairn.b3v2\0";
const RECORD_LEN: usize = 32 + 8 * 7;
/// How long after the memo is written its own ctime change may land.
const WRITE_SLACK: Duration = Duration::from_millis(50);

/// Nanoseconds since the epoch.
type Ns = i128;

/// What a memo is checked against: size, mtime and ctime; and where the memo is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: Ns,
    ctime: Ns,
    /// The file is another user's, and this one is not root: it takes no attribute from us,
    /// so its memo is kept beside ([`side_dir`]).
    beside: bool,
}

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    static EUID: OnceLock<u32> = OnceLock::new();
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    let euid = *EUID.get_or_init(|| unsafe { libc::geteuid() });
    let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
    Stamp {
        size: meta.len(),
        mtime: ns(meta.mtime(), meta.mtime_nsec()),
        ctime: ns(meta.ctime(), meta.ctime_nsec()),
        beside: euid != 0 && meta.uid() != euid,
    }
}

/// Where the memos of files this user cannot write are kept: `<cache>/filehashes/`, one small
/// file per path holding the record the attribute would. The C library, a linker's start
/// files, a toolchain or headers installed by root: without it, every compile that links read
/// the C library's 2 MB again to hash it, for a user other than root.
fn side_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| crate::protocol::config::cache_base().ok().map(|b| b.join("filehashes"))).as_deref()
}

fn side_file(dir: &Path, cpath: &CString) -> PathBuf {
    dir.join(&blake3::hash(cpath.as_bytes()).to_hex()[..32])
}

/// The BLAKE3 of `path`'s contents.
pub fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // A memo that holds costs two calls by path and no open: a package's thousand files and
    // a compile's headers are mostly that. (The file could be replaced between the two; the
    // memo read is then the other file's, taken at its own size, mtime and ctime.)
    if let Some(h) = read_memo(&cpath, stamp_of(&std::fs::metadata(path)?)) {
        return Ok(h);
    }
    let mut f = File::open(path)?;
    let before = stamp_of(&f.metadata()?);
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
    if stamp_of(&f.metadata()?) == before {
        write_memo(&cpath, &hash, before);
    }
    Ok(hash)
}

/// Records a hash we already know (we just wrote or restored the file).
pub fn remember(path: &Path, hash: &[u8; 32]) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) {
        write_memo(&cpath, hash, stamp_of(&meta));
    }
}

/// A memo read from a file that is about to be renamed ([`Carried::onto`]).
pub struct Carried {
    file: File,
    hash: [u8; 32],
    before: Stamp,
}

/// The hash remembered on `path`, if its memo holds, to be carried over a rename of it.
///
/// A rename moves the file's ctime, which voids the memo (the ctime is what shows a rewrite),
/// though not a byte changed: a build script's binary, hashed as a compile's output and then
/// moved aside for cairn's launcher, was hashed again in full (6 MB for ring's) before every
/// run of it.
pub fn carry(path: &Path) -> Option<Carried> {
    let file = File::open(path).ok()?;
    let before = stamp_of(&file.metadata().ok()?);
    let cpath = CString::new(path.as_os_str().as_bytes()).ok()?;
    let hash = read_memo(&cpath, before)?;
    Some(Carried { file, hash, before })
}

impl Carried {
    /// Remembers the hash on `to`, the name the file was renamed to, if it is the same file
    /// (the one opened before the rename) with the same size and mtime: a write in between
    /// moves the mtime.
    pub fn onto(self, to: &Path) {
        let (Ok(now), Ok(there)) = (self.file.metadata(), std::fs::metadata(to)) else { return };
        if (now.dev(), now.ino()) != (there.dev(), there.ino()) {
            return;
        }
        let now = stamp_of(&now);
        if now.size == self.before.size && now.mtime == self.before.mtime {
            if let Ok(cpath) = CString::new(to.as_os_str().as_bytes()) {
                write_memo(&cpath, &self.hash, now);
            }
        }
    }
}

fn read_memo(cpath: &CString, now: Stamp) -> Option<[u8; 32]> {
    let mut buf = [0u8; RECORD_LEN];
    if now.beside {
        let bytes = std::fs::read(side_file(side_dir()?, cpath)).ok()?;
        buf = bytes.try_into().ok()?;
        return check(&buf, now);
    }
    // SAFETY: both pointers are valid for the lengths given; the kernel writes at most
    // buf.len() bytes.
    let n = unsafe { libc::getxattr(cpath.as_ptr(), XATTR.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
    if n != RECORD_LEN as isize {
        return None;
    }
    check(&buf, now)
}

/// The hash a record holds, if it was taken at `now`'s size and mtime and `now`'s ctime is in
/// its window.
fn check(buf: &[u8; RECORD_LEN], now: Stamp) -> Option<[u8; 32]> {
    let word = |i: usize| i64::from_le_bytes(buf[32 + 8 * i..40 + 8 * i].try_into().unwrap());
    let ns = |i: usize| word(i) as i128 * 1_000_000_000 + word(i + 1) as i128;
    let (size, mtime, ctime_from, ctime_to) = (word(0) as u64, ns(1), ns(3), ns(5));
    if size != now.size || mtime != now.mtime || now.ctime < ctime_from || now.ctime > ctime_to {
        return None;
    }
    buf[..32].try_into().ok()
}

fn write_memo(cpath: &CString, hash: &[u8; 32], at: Stamp) {
    if at.beside {
        // Nothing of the file changes: its ctime must be the very one it was hashed at.
        if let Some(dir) = side_dir() {
            write_side(dir, cpath, &record(hash, at, at.ctime));
        }
        return;
    }
    let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else { return };
    let buf = record(hash, at, (now + WRITE_SLACK).as_nanos() as i128);
    // SAFETY: valid pointers and lengths. Failure (EPERM, ENOTSUP, read-only) is fine: the
    // memo is an optimisation only.
    unsafe {
        libc::setxattr(cpath.as_ptr(), XATTR.as_ptr().cast(), buf.as_ptr().cast(), buf.len(), 0);
    }
}

/// A memo: the hash, the size and mtime it was taken at, and the window of ctimes it holds for.
fn record(hash: &[u8; 32], at: Stamp, until: Ns) -> [u8; RECORD_LEN] {
    let mut buf = [0u8; RECORD_LEN];
    buf[..32].copy_from_slice(hash);
    let mut put = |i: usize, v: i64| buf[32 + 8 * i..40 + 8 * i].copy_from_slice(&v.to_le_bytes());
    put(0, at.size as i64);
    for (i, t) in [(1, at.mtime), (3, at.ctime), (5, until)] {
        put(i, t.div_euclid(1_000_000_000) as i64);
        put(i + 1, t.rem_euclid(1_000_000_000) as i64);
    }
    buf
}

/// Writes a memo kept beside (temp file, then rename; best effort).
fn write_side(dir: &Path, cpath: &CString, buf: &[u8; RECORD_LEN]) {
    let path = side_file(dir, cpath);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::create_dir_all(dir).is_ok()
        && std::fs::write(&tmp, buf).is_ok()
        && std::fs::rename(&tmp, &path).is_err()
    {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// A file's hash as every checkout computes it: a text file that names the roots (restored
/// moved to this build's folders: build_script/outdir.rs `restore`, a seed's text) is hashed with them as placeholders.
///
/// A file whose first bytes are not UTF-8 is not text, so its hash is its contents' own, and
/// remembered on it: the objects and archives of a `-sys` crate's
/// `OUT_DIR` (zstd-sys's, 6 MB) are read once, not before each run of every script that
/// depends on it.
pub fn portable_hash(path: &Path, rel: &Rel) -> io::Result<[u8; 32]> {
    if !file_starts_as_text(path)? {
        return hash_file(path);
    }
    let bytes = std::fs::read(path)?;
    match std::str::from_utf8(&bytes) {
        Ok(text) if !rel.found_in(&bytes).is_empty() => Ok(*blake3::hash(rel.rel(text).as_bytes()).as_bytes()),
        _ => Ok(*blake3::hash(&bytes).as_bytes()),
    }
}

/// Whether the file's first 8 KiB are UTF-8 ([`starts_as_text`]); when not, the whole file
/// is not.
fn file_starts_as_text(path: &Path) -> io::Result<bool> {
    let mut head = Vec::with_capacity(8192);
    File::open(path)?.take(8192).read_to_end(&mut head)?;
    Ok(starts_as_text(&head))
}

/// Whether the bytes are UTF-8, a character cut at their end allowed: a file whose first
/// bytes are not is not text.
pub fn starts_as_text(head: &[u8]) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
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
        write_memo(&cpath, &[9; 32], Stamp { size: 999, mtime: 0, ctime: 0, beside: false });
        assert_eq!(hash_file(&p).unwrap(), *blake3::hash(b"data").as_bytes());
    }

    #[test]
    fn a_same_size_rewrite_with_the_mtime_put_back_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"old!").unwrap();
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(hash_file(&p).unwrap(), *blake3::hash(b"old!").as_bytes());
        // Past the window in which the memo's own write may still move the ctime.
        std::thread::sleep(WRITE_SLACK * 2);
        std::fs::write(&p, b"new!").unwrap();
        File::options().write(true).open(&p).unwrap().set_modified(mtime).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), mtime, "mtime put back");
        assert_eq!(hash_file(&p).unwrap(), *blake3::hash(b"new!").as_bytes());
    }

    #[test]
    fn a_memo_is_carried_over_a_rename_and_not_over_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"script").unwrap();
        hash_file(&a).unwrap();
        assert_eq!(carry(&a).map(|c| c.hash), Some(*blake3::hash(b"script").as_bytes()));
        // A memo carried is trusted as it is: one that says [7; 32] shows it was carried.
        let carried = |p: &Path| Carried {
            file: File::open(p).unwrap(),
            hash: [7; 32],
            before: stamp_of(&std::fs::metadata(p).unwrap()),
        };
        let c = carried(&a);
        std::fs::rename(&a, &b).unwrap();
        c.onto(&b);
        assert_eq!(hash_file(&b).unwrap(), [7; 32], "carried to the new name");

        // Rewritten between the two (another mtime): nothing is carried.
        let c = carried(&b);
        std::fs::rename(&b, &a).unwrap();
        let f = File::options().write(true).open(&a).unwrap();
        std::io::Write::write_all(&mut &f, b"SCRIPT").unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5)).unwrap();
        c.onto(&a);
        assert_eq!(hash_file(&a).unwrap(), *blake3::hash(b"SCRIPT").as_bytes());

        // Another file renamed over the new name: nothing is carried to it.
        std::fs::write(&b, b"other").unwrap();
        let c = carried(&b);
        std::fs::write(dir.path().join("n"), b"newer").unwrap();
        std::fs::rename(dir.path().join("n"), &b).unwrap();
        c.onto(&b);
        assert_eq!(hash_file(&b).unwrap(), *blake3::hash(b"newer").as_bytes());
    }

    #[test]
    fn a_memo_kept_beside_holds_only_for_the_very_stamp_it_was_taken_at() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("libc.so.6");
        std::fs::write(&p, b"library").unwrap();
        let cpath = CString::new(p.as_os_str().as_bytes()).unwrap();
        let at = Stamp { beside: true, ..stamp_of(&std::fs::metadata(&p).unwrap()) };
        let side = dir.path().join("side");
        write_side(&side, &cpath, &record(&[7; 32], at, at.ctime));
        let read = |now: Stamp| {
            let buf: [u8; RECORD_LEN] = std::fs::read(side_file(&side, &cpath)).unwrap().try_into().unwrap();
            check(&buf, now)
        };
        assert_eq!(read(at), Some([7; 32]));
        assert_eq!(read(Stamp { ctime: at.ctime + 1, ..at }), None, "any later ctime: a write, a chmod");
        assert_eq!(read(Stamp { mtime: at.mtime + 1, ..at }), None);
        assert_eq!(read(Stamp { size: at.size + 1, ..at }), None);
        // Another path has its own memo.
        let other = CString::new(dir.path().join("other").as_os_str().as_bytes()).unwrap();
        assert!(!side_file(&side, &other).exists());
    }

    #[test]
    fn a_memo_survives_its_own_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"data").unwrap();
        let cpath = CString::new(p.as_os_str().as_bytes()).unwrap();
        hash_file(&p).unwrap();
        let before = stamp_of(&std::fs::metadata(&p).unwrap());
        assert!(read_memo(&cpath, before).is_some(), "the memo's ctime change is inside its window");
    }

    #[test]
    fn a_binary_file_is_hashed_as_it_is_and_text_with_the_roots_as_placeholders() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("t");
        std::fs::create_dir_all(&root).unwrap();
        let rel = Rel::for_package(&root, &root.join("debug/build/x-1/out"), None);
        let named = format!("prefix={}/debug/build/x-1/out\n", root.display());
        // Text that names the target dir hashes as it would under any other target dir.
        let text = d.path().join("x.pc");
        std::fs::write(&text, &named).unwrap();
        assert_ne!(portable_hash(&text, &rel).unwrap(), *blake3::hash(named.as_bytes()).as_bytes());
        // A binary file hashes as its bytes, names or not, whatever its length: one that turns
        // out not to be UTF-8 only after the first 8 KiB too.
        for head in [vec![0x7f, b'E', b'L', b'F', 0xff], vec![b'a'; 9000]] {
            let mut bytes = head;
            bytes.extend_from_slice(named.as_bytes());
            bytes.push(0xff);
            let bin = d.path().join("x.o");
            std::fs::write(&bin, &bytes).unwrap();
            assert_eq!(portable_hash(&bin, &rel).unwrap(), *blake3::hash(&bytes).as_bytes());
        }
        // A character cut by the 8 KiB mark is still text.
        let mut cut = vec![b'a'; 8191];
        cut.extend_from_slice("é".as_bytes());
        std::fs::write(&text, &cut).unwrap();
        assert!(file_starts_as_text(&text).unwrap());
    }
}

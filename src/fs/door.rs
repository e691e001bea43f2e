//! The filesystem's operations by path, for the daemon's socket (`daemon::socket`): what a
//! program does through the mount — read a file, append to a report, write a temporary and
//! rename it onto a key, `rm`, `ls`, `getfattr` — done with the very `CacheFs` calls a FUSE
//! request makes, so the two doors share every rule (names, checksums, the commit protocol,
//! who may change what, S3 read-through and removal, build-set prefetch). Nothing here knows
//! about sockets; the unit tests drive it over a memory store.

use std::ffi::OsStr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{CacheFs, FsError, Kind, OpenMode, ROOT_INO};
use crate::key::Key;
use crate::protocol::names::temp_name_for;
use crate::protocol::wire::Listed;
use crate::store::Store;

/// What [`CacheFs::open_path`] hands over.
pub enum Content {
    File(std::fs::File),
    Bytes(Vec<u8>),
}

/// How much one `read` or `write` call moves.
const CHUNK: u32 = 1 << 20;

impl<S: Store> CacheFs<S> {
    /// The inode at `rel`, a path relative to the root with no `.`/`..` parts.
    fn walk(&self, rel: &str) -> Result<u64, FsError> {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        if parts.iter().any(|p| *p == "." || *p == "..") {
            return Err(FsError::InvalidName);
        }
        let mut ino = ROOT_INO;
        for part in parts {
            ino = self.lookup(ino, OsStr::new(part))?.ino;
        }
        Ok(ino)
    }

    /// The parent folder's inode and the last name of `rel`.
    fn walk_parent<'a>(&self, rel: &'a str) -> Result<(u64, &'a str), FsError> {
        let rel = rel.trim_end_matches('/');
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if name.is_empty() {
            return Err(FsError::InvalidName);
        }
        Ok((self.walk(dir)?, name))
    }

    /// The whole file at `rel`. An object is checked against its checksum at open, as for a
    /// read through the mount; a damaged one is removed and this is `Corrupt`.
    pub fn read_path(&self, rel: &str) -> Result<Vec<u8>, FsError> {
        let opened = self.open(self.walk(rel)?, OpenMode::default())?;
        self.read_to_end_and_release(opened.fh)
    }

    /// The file at `rel` to hand to a client: an object's stored file, opened read-only after
    /// its checksum is checked, exactly as for a read through the mount; a file the store has
    /// no descriptor for (a generated one, or a memory store's), its bytes.
    pub fn open_path(&self, rel: &str) -> Result<Content, FsError> {
        let opened = self.open(self.walk(rel)?, OpenMode::default())?;
        match opened.backing {
            Some(file) => {
                // The descriptor keeps the bytes readable even if the object is evicted now;
                // objects never change in place.
                self.release(opened.fh);
                Ok(Content::File(file))
            }
            None => self.read_to_end_and_release(opened.fh).map(Content::Bytes),
        }
    }

    /// Everything an open handle reads, then the handle closed.
    fn read_to_end_and_release(&self, fh: u64) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        let result = loop {
            match self.read(fh, out.len() as u64, CHUNK) {
                Ok(b) if b.is_empty() => break Ok(()),
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => break Err(e),
            }
        };
        self.release(fh);
        result.map(|()| out)
    }

    /// Appends to a write-only special file (`.cairn/report`, `.cairn/control`), as `caller`.
    pub fn append_path(&self, caller: u32, rel: &str, data: &[u8]) -> Result<(), FsError> {
        let ino = self.walk(rel)?;
        self.may_change(caller, Some(ino))?;
        let opened = self.open(ino, OpenMode { write: true, append: true, ..OpenMode::default() })?;
        let result = self.write(opened.fh, 0, data);
        self.release(opened.fh);
        result.map(drop)
    }

    /// Commits `data` under `key` as `caller`: a temporary named as the wrapper names its own,
    /// written, closed and renamed onto the key — the mount's commit protocol, step for step.
    /// With `replace`, an existing object with other bytes is removed first (manifests);
    /// without, the first writer's bytes stay and this is `Ok` (a result is never replaced).
    pub fn put_bytes(
        &self,
        caller: u32,
        key: &Key,
        data: &mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<bool>,
        replace: bool,
    ) -> Result<(), FsError> {
        self.put_with(caller, key, data, replace, false)
    }

    /// [`put_bytes`](Self::put_bytes) of an object that ends with the BLAKE3 of the bytes
    /// before it (a result, as `PUT_PARTS` sends it): `data` gives the bytes, and their hash
    /// is appended here, taken in the same pass as the store's own checksum.
    pub fn put_summed(
        &self,
        caller: u32,
        key: &Key,
        data: &mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<bool>,
        replace: bool,
    ) -> Result<(), FsError> {
        self.put_with(caller, key, data, replace, true)
    }

    fn put_with(
        &self,
        caller: u32,
        key: &Key,
        data: &mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<bool>,
        replace: bool,
        summed: bool,
    ) -> Result<(), FsError> {
        self.may_change(caller, None)?;
        // One daemon names every socket commit: a counter keeps two PUTs of one key (two
        // wrappers racing) on two temporaries.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let temp = temp_name_for(key, std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let temp = OsStr::new(&temp);
        let (_, opened) =
            self.create(ROOT_INO, temp, OpenMode { write: true, exclusive: true, ..OpenMode::default() })?;
        let mut written = 0u64;
        let mut buf = Vec::with_capacity(CHUNK as usize);
        // Hashed as written, so the store need not read the temporary back to hash it.
        let mut sum = blake3::Hasher::new();
        let wrote = loop {
            buf.clear();
            let more = match data(&mut buf) {
                Ok(more) => more,
                Err(e) => break Err(FsError::from(e)),
            };
            if !buf.is_empty() {
                if let Err(e) = self.write(opened.fh, written, &buf) {
                    break Err(e);
                }
                sum.update(&buf);
                written += buf.len() as u64;
            }
            if !more && summed {
                // The hash so far is the bytes' own: it ends the object, and goes into the
                // store's checksum like any other bytes.
                let own = sum.clone().finalize();
                if let Err(e) = self.write(opened.fh, written, own.as_bytes()) {
                    break Err(e);
                }
                sum.update(own.as_bytes());
            }
            if !more {
                break Ok(());
            }
        };
        self.release(opened.fh);
        if wrote.is_ok() {
            self.note_temp_sum(temp, *sum.finalize().as_bytes());
        }
        let hex = key.to_hex();
        let result = wrote.and_then(|()| match self.rename(ROOT_INO, temp, ROOT_INO, OsStr::new(&hex), true) {
            Err(FsError::Exists) if replace => {
                // Another dependency set was recorded first; ours is newer. A reader that looks
                // in between sees no manifest: a miss, never a wrong hit. Should yet another
                // writer commit in between (wrappers racing on one key), theirs stands.
                let _ = self.remove_path(caller, &hex);
                match self.rename(ROOT_INO, temp, ROOT_INO, OsStr::new(&hex), true) {
                    Err(FsError::Exists) => Ok(()),
                    other => other,
                }
            }
            Err(FsError::Exists) => Ok(()),
            other => other,
        });
        let _ = self.unlink(ROOT_INO, temp);
        result
    }

    /// Removes the file at `rel` as `caller`, as `rm` through the mount does (an object goes
    /// from every tier).
    pub fn remove_path(&self, caller: u32, rel: &str) -> Result<(), FsError> {
        let (parent, name) = self.walk_parent(rel)?;
        self.may_change(caller, None)?;
        self.unlink(parent, OsStr::new(name))?;
        // The mount's kernel may hold the name; it must not answer from that cache.
        if let Some(key) = Key::parse(name) {
            self.invalidate(&key);
        }
        Ok(())
    }

    /// The entries of the folder at `rel`, without `.` and `..`: names, sizes and times, as
    /// `ls -l` shows them.
    pub fn list_path(&self, rel: &str) -> Result<Vec<Listed>, FsError> {
        let ino = self.walk(rel)?;
        let fh = self.opendir(ino)?;
        let mut out = Vec::new();
        let mut offset = 0;
        let result = loop {
            let batch = match self.readdir(fh, offset, 4096) {
                Ok(b) => b,
                Err(e) => break Err(e),
            };
            let Some((last, _)) = batch.last() else { break Ok(()) };
            offset = *last;
            for (_, e) in batch {
                let name = e.name.to_string_lossy().into_owned();
                if name == "." || name == ".." {
                    continue;
                }
                // An object evicted since the listing was taken is simply not listed.
                let Ok(attr) = self.getattr(e.ino) else { continue };
                let size = if e.kind == Kind::File { attr.size } else { 0 };
                out.push(Listed { name, size, mtime_ns: attr.mtime_ns });
            }
        };
        self.release_dir(fh);
        result.map(|()| out)
    }

    /// One extended attribute of the file at `rel` (`user.cairn.crate`).
    pub fn xattr_path(&self, rel: &str, name: &str) -> Result<Option<Vec<u8>>, FsError> {
        let ino = self.walk(rel)?;
        self.xattr(ino, OsStr::new(name))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fs::FsOptions;
    use crate::store::memory::MemoryStore;

    const OWNER: u32 = 1000;

    fn fs() -> CacheFs<MemoryStore> {
        CacheFs::new(Arc::new(MemoryStore::new(1 << 30)), FsOptions { uid: OWNER, gid: OWNER, want_backing: false })
    }

    fn once(bytes: &[u8]) -> impl FnMut(&mut Vec<u8>) -> std::io::Result<bool> + '_ {
        let mut sent = false;
        move |buf| {
            if !sent {
                buf.extend_from_slice(bytes);
                sent = true;
            }
            Ok(false)
        }
    }

    #[test]
    fn put_then_read_list_and_remove_by_path() {
        let fs = fs();
        let key = Key::of_bytes(b"k");
        fs.put_bytes(OWNER, &key, &mut once(b"hello"), false).unwrap();
        assert_eq!(fs.read_path(&key.to_hex()).unwrap(), b"hello");
        let listed = fs.list_path("").unwrap();
        let me = listed.iter().find(|l| l.name == key.to_hex()).expect("listed");
        assert_eq!(me.size, 5);
        assert!(listed.iter().any(|l| l.name == ".cairn"), "{listed:?}");
        assert!(fs.names().temps.is_empty(), "no temporary left");
        fs.remove_path(OWNER, &key.to_hex()).unwrap();
        assert!(matches!(fs.read_path(&key.to_hex()), Err(FsError::NotFound)));
        assert!(matches!(fs.remove_path(OWNER, &key.to_hex()), Err(FsError::NotFound)));
    }

    #[test]
    fn a_result_keeps_its_first_bytes_and_a_manifest_is_replaced() {
        let fs = fs();
        let key = Key::of_bytes(b"k");
        fs.put_bytes(OWNER, &key, &mut once(b"first"), false).unwrap();
        fs.put_bytes(OWNER, &key, &mut once(b"second"), false).unwrap();
        assert_eq!(fs.read_path(&key.to_hex()).unwrap(), b"first");
        fs.put_bytes(OWNER, &key, &mut once(b"third"), true).unwrap();
        assert_eq!(fs.read_path(&key.to_hex()).unwrap(), b"third");
        assert!(fs.names().temps.is_empty(), "no temporary left");
    }

    /// Wrappers racing to store one key: results keep the first bytes, manifests are replaced
    /// (and a replacement that loses the race to a third writer lets theirs stand); none fails.
    #[test]
    fn racing_puts_of_one_key_all_succeed_and_one_object_stays() {
        for replace in [false, true] {
            for round in 0..20 {
                let fs = Arc::new(fs());
                let key = Key::of_bytes(format!("k{round}").as_bytes());
                let threads: Vec<_> = (0..8)
                    .map(|i| {
                        let fs = Arc::clone(&fs);
                        std::thread::spawn(move || {
                            fs.put_bytes(OWNER, &key, &mut once(format!("writer {i}").as_bytes()), replace)
                        })
                    })
                    .collect();
                for t in threads {
                    t.join().unwrap().unwrap();
                }
                let bytes = fs.read_path(&key.to_hex()).unwrap();
                assert!(bytes.starts_with(b"writer "), "one writer's bytes, whole");
                assert!(fs.names().temps.is_empty(), "no temporary left");
            }
        }
    }

    #[test]
    fn another_user_may_read_and_report_but_not_change() {
        let fs = fs();
        let key = Key::of_bytes(b"k");
        fs.put_bytes(OWNER, &key, &mut once(b"x"), false).unwrap();
        assert!(matches!(fs.put_bytes(4242, &Key::of_bytes(b"j"), &mut once(b"y"), false), Err(FsError::Denied)));
        assert!(matches!(fs.remove_path(4242, &key.to_hex()), Err(FsError::Denied)));
        assert!(matches!(fs.append_path(4242, ".cairn/control", b"zero\n"), Err(FsError::Denied)));
        assert_eq!(fs.read_path(&key.to_hex()).unwrap(), b"x");
        fs.append_path(4242, ".cairn/report", b"v1 hit 5 serde\n").unwrap();
        fs.remove_path(0, &key.to_hex()).unwrap();
    }

    #[test]
    fn bad_paths_and_bad_names_are_refused_like_the_mount_refuses_them() {
        let fs = fs();
        for bad in ["..", "a/../b", "./x"] {
            assert!(matches!(fs.read_path(bad), Err(FsError::InvalidName)), "{bad}");
        }
        assert!(fs.read_path("not-a-key").is_err());
        assert!(matches!(fs.remove_path(OWNER, ".cairn/stats.json"), Err(FsError::ReadOnly)));
        assert!(matches!(fs.remove_path(OWNER, ""), Err(FsError::InvalidName)));
        let stats = fs.read_path(".cairn/stats.json").unwrap();
        assert!(String::from_utf8(stats).unwrap().contains("\"hits\""));
    }

    /// The daemon hashes what it writes as it writes it, and the store takes that checksum
    /// instead of reading the bytes back; but a temporary that someone else opened meanwhile
    /// (its name is in the mount) may hold other bytes, so its store hashes it.
    #[test]
    fn a_temporary_someone_else_opened_while_it_was_put_is_hashed_by_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let open_store = || Arc::new(crate::store::disk::DiskStore::open(dir.path(), 1 << 30).unwrap());
        let key = Key::of_bytes(b"k");
        let clean = Key::of_bytes(b"clean");
        {
            let fs = CacheFs::new(open_store(), FsOptions { uid: OWNER, gid: OWNER, want_backing: false });
            fs.put_bytes(OWNER, &clean, &mut once(b"nobody else looked"), false).unwrap();
            let mut calls = 0;
            let mut meddled = |buf: &mut Vec<u8>| -> std::io::Result<bool> {
                calls += 1;
                if calls == 2 {
                    // Someone opens the temporary by its name and overwrites the first chunk.
                    let name = fs.names().temps.keys().next().cloned().expect("the temporary");
                    let ino = fs.lookup(ROOT_INO, &name).unwrap().ino;
                    let h = fs.open(ino, OpenMode { write: true, ..OpenMode::default() }).unwrap();
                    fs.write(h.fh, 0, b"XXXXX").unwrap();
                    fs.release(h.fh);
                }
                buf.extend_from_slice(b"chunk");
                Ok(calls < 3)
            };
            fs.put_bytes(OWNER, &key, &mut meddled, false).unwrap();
            assert_eq!(fs.read_path(&key.to_hex()).unwrap(), b"XXXXXchunkchunk", "what the file holds");
            fs.store.persist().unwrap();
        }
        // A restarted daemon checks each object against the checksum recorded at commit.
        let fs = CacheFs::new(open_store(), FsOptions { uid: OWNER, gid: OWNER, want_backing: false });
        assert_eq!(fs.read_path(&key.to_hex()).unwrap(), b"XXXXXchunkchunk", "its checksum is the file's");
        assert_eq!(fs.read_path(&clean.to_hex()).unwrap(), b"nobody else looked");
    }

    #[test]
    fn a_damaged_object_is_not_read_and_is_removed() {
        let store = Arc::new(MemoryStore::new(1 << 30));
        let fs = CacheFs::new(Arc::clone(&store), FsOptions { uid: OWNER, gid: OWNER, want_backing: false });
        let key = Key::of_bytes(b"k");
        fs.put_bytes(OWNER, &key, &mut once(b"good bytes"), false).unwrap();
        store.corrupt(&key, 3);
        assert!(matches!(fs.read_path(&key.to_hex()), Err(FsError::Corrupt)));
        assert!(matches!(fs.read_path(&key.to_hex()), Err(FsError::NotFound)));
    }
}

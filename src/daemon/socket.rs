//! The daemon's socket: the door for wrappers where FUSE cannot be used (a `docker build`, a CI
//! container), and for a container given the host's cache folder. It listens at
//! `<store>/cairn.sock` whether or not the daemon is mounted, and turns each request
//! (`protocol::wire`) into the `CacheFs` calls of `fs::door` — the mount's own rules.
//!
//! Trust is the mount's: the socket file is the owner's alone (mode 0600) unless the daemon
//! runs with `--allow-other` (0666), and whatever the mode, the peer's credentials are read
//! from the kernel (`SO_PEERCRED`), never taken from the request: only the owner and root may
//! change the cache, other users may read and report (and reach it at all only under
//! `--allow-other`). One thread per connection; a wrapper holds one connection for its life.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::seeder::Seeder;
use crate::fs::door::Content;
use crate::fs::{CacheFs, FsError};
use crate::key::Key;
use crate::protocol::object::FileStamp;
use crate::protocol::remote::NOT_CONFIGURED;
use crate::protocol::remote::{ExecReply, ExecRequest};
use crate::protocol::seed::Capture;
use crate::protocol::wire::{self, Op, PartRef};
use crate::reapi::exec::Executor;
use crate::store::Store;

/// Who may use the socket.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// The daemon's user: the store's owner.
    pub owner: u32,
    /// Other users may connect (to read and report), as `--allow-other` lets them use the mount.
    pub allow_other: bool,
}

/// A bound socket, removed from the folder when dropped.
pub struct Bound {
    pub listener: UnixListener,
    pub path: PathBuf,
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `<store>/cairn.sock`. The caller holds the store's lock, so a socket file already
/// there is a dead daemon's and is replaced.
pub fn bind(store: &Path, allow_other: bool) -> io::Result<Bound> {
    let path = wire::socket_path(store);
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(socket = %path.display(), "replaced the socket of a daemon that did not stop cleanly"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let (addr, _dir) = wire::addressable(&path)?;
    let listener = UnixListener::bind(addr)?;
    let mode = if allow_other { 0o666 } else { 0o600 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(Bound { listener, path })
}

/// Accepts connections until the process ends, each served on its own thread.
pub fn serve<S: Store + 'static>(
    fs: Arc<CacheFs<S>>,
    seeder: Arc<Seeder<S>>,
    exec: Option<Arc<Executor>>,
    listener: UnixListener,
    access: Access,
) -> io::Result<()> {
    std::thread::Builder::new().name("socket".into()).spawn(move || {
        for conn in listener.incoming() {
            let stream = match conn {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("socket accept failed: {e}");
                    continue;
                }
            };
            let fs = Arc::clone(&fs);
            let seeder = Arc::clone(&seeder);
            let exec = exec.clone();
            let spawned = std::thread::Builder::new().name("socket-conn".into()).spawn(move || {
                if let Err(e) = connection(&fs, &seeder, exec.as_deref(), &stream, access) {
                    tracing::debug!("socket connection ended: {e}");
                }
            });
            if let Err(e) = spawned {
                tracing::warn!("no thread for a socket connection: {e}");
            }
        }
    })?;
    Ok(())
}

/// The peer's user, from the kernel.
fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid socket, and an out-buffer of the length given.
    let r = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

fn connection<S: Store + 'static>(
    fs: &CacheFs<S>,
    seeder: &Seeder<S>,
    exec: Option<&Executor>,
    stream: &UnixStream,
    access: Access,
) -> io::Result<()> {
    let uid = peer_uid(stream)?;
    let welcome = uid == access.owner || uid == 0 || access.allow_other;
    if !welcome {
        tracing::warn!(uid, "refused a socket connection from another user (the daemon runs without --allow-other)");
    }
    let mut r = stream;
    while let Some((lead, len, mut fds)) = wire::read_head_with_fds(stream)? {
        let op = Op::from_u8(lead);
        let fd = if op == Some(Op::PutParts) || fds.is_empty() { None } else { Some(fds.swap_remove(0)) };
        let reply = match (welcome, op) {
            (false, _) => {
                drain(&mut r, len)?;
                Err(FsError::Denied)
            }
            (true, None) => {
                drain(&mut r, len)?;
                Err(FsError::Io(libc::ENOSYS))
            }
            (true, Some(Op::Put)) => put(fs, uid, &mut r, len),
            (true, Some(Op::PutParts)) if len > wire::MAX_PARTS_BODY => {
                drain(&mut r, len)?;
                Err(FsError::Io(libc::E2BIG))
            }
            (true, Some(Op::PutParts)) => {
                let body = wire::read_body(&mut r, len)?;
                put_parts(fs, uid, &body, fds)
            }
            (true, Some(Op::Capture)) => {
                let body = wire::read_body(&mut r, len)?;
                match (Capture::decode(&body), fd) {
                    (Some(c), Some(dir)) => seeder.capture(uid, c, dir).map(|()| Vec::new()),
                    _ => Err(FsError::InvalidName),
                }
            }
            (true, Some(Op::Execute)) => {
                let body = wire::read_body(&mut r, len)?;
                // Only the owner (and root) may have the daemon read files and send them to
                // the engine: what comes back is stored as theirs.
                match (fs.may_change(uid, None), ExecRequest::decode(&body), exec) {
                    (Err(e), _, _) => Err(e),
                    (Ok(()), None, _) => Err(FsError::InvalidName),
                    (Ok(()), Some(_), None) => {
                        Ok(ExecReply::Local { word: NOT_CONFIGURED.into(), message: "no engine configured".into() }
                            .encode())
                    }
                    (Ok(()), Some(req), Some(x)) => Ok(x.execute(&req).encode()),
                }
            }
            (true, Some(Op::Seed)) => {
                let body = wire::read_body(&mut r, len)?;
                match (Key::parse_bytes(body.get(..32)), Key::parse_bytes(body.get(32..64))) {
                    (Some(exact), Some(latest)) => seeder.set(exact, latest),
                    _ => Err(FsError::InvalidName),
                }
            }
            (true, Some(Op::Settle)) => {
                let body = wire::read_body(&mut r, len)?;
                match Key::parse_bytes(body.get(..32)) {
                    Some(exact) => {
                        seeder.settle_set(exact);
                        Ok(Vec::new())
                    }
                    None => Err(FsError::InvalidName),
                }
            }
            (true, Some(Op::Open)) => {
                let body = wire::read_body(&mut r, len)?;
                let path = std::str::from_utf8(&body).map_err(|_| FsError::InvalidName);
                match path.and_then(|p| fs.open_path(p)) {
                    Ok(Content::File(file)) => {
                        wire::write_frame_with_fd(stream, 0, &[], std::os::fd::AsFd::as_fd(&file))?;
                        continue;
                    }
                    Ok(Content::Bytes(b)) => Ok(b),
                    Err(e) => Err(e),
                }
            }
            (true, Some(op)) => {
                let body = wire::read_body(&mut r, len)?;
                request(fs, uid, op, &body)
            }
        };
        let mut w = stream;
        match reply {
            Ok(bytes) => wire::write_frame(&mut w, 0, &[&bytes])?,
            Err(e) => wire::write_frame(&mut w, 1, &[&wire::error_body(e.errno(), &e.to_string())])?,
        }
        if welcome && op == Some(Op::Stop) {
            tracing::info!(uid, "stopping: asked through the socket");
            // The same path as `kill -TERM`: the signal thread unmounts (or ends the
            // socket-only wait), then the index is saved and uploads drain.
            // SAFETY: raising a signal at our own process.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
        }
    }
    Ok(())
}

fn drain(r: &mut &UnixStream, len: u64) -> io::Result<()> {
    io::copy(&mut r.take(len), &mut io::sink())?;
    Ok(())
}

fn request<S: Store>(fs: &CacheFs<S>, uid: u32, op: Op, body: &[u8]) -> Result<Vec<u8>, FsError> {
    let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_string).map_err(|_| FsError::InvalidName);
    match op {
        Op::Read => fs.read_path(&text(body)?),
        Op::Append => {
            let (path, data) = wire::split_path(body).map_err(|_| FsError::InvalidName)?;
            fs.append_path(uid, path, data).map(|()| Vec::new())
        }
        Op::Remove => fs.remove_path(uid, &text(body)?).map(|()| Vec::new()),
        Op::List => fs.list_path(&text(body)?).map(|l| wire::encode_list(&l)),
        Op::Xattr => {
            let (path, name) = wire::split_path(body).map_err(|_| FsError::InvalidName)?;
            fs.xattr_path(path, &text(name)?)?.ok_or(FsError::Io(libc::ENODATA))
        }
        Op::Stop => fs.may_change(uid, None).map(|()| Vec::new()),
        Op::Put | Op::PutParts | Op::Open | Op::Capture | Op::Seed | Op::Settle | Op::Execute => {
            unreachable!("served in connection()")
        }
    }
}

/// A `PUT`: the object's bytes go from the socket to the temporary a megabyte at a time, never
/// whole in memory.
fn put<S: Store>(fs: &CacheFs<S>, uid: u32, r: &mut &UnixStream, len: u64) -> Result<Vec<u8>, FsError> {
    if len < 33 {
        drain(r, len)?;
        return Err(FsError::InvalidName);
    }
    let mut head = [0u8; 33];
    r.read_exact(&mut head)?;
    let key = Key(head[..32].try_into().expect("32 bytes"));
    let replace = head[32] != 0;
    let mut left = len - 33;
    let result = {
        let mut next = |buf: &mut Vec<u8>| -> io::Result<bool> {
            let n = left.min(1 << 20);
            r.take(n).read_to_end(buf)?;
            if (buf.len() as u64) < n {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= n;
            Ok(left > 0)
        };
        fs.put_bytes(uid, &key, &mut next, replace)
    };
    // A refusal comes before the bytes are read: read them anyway, so the next request
    // starts where it should.
    drain(r, left)?;
    result.map(|()| Vec::new())
}

/// A `PUT_PARTS`: the object is put together here from the bytes sent and the files whose
/// descriptors came along, a megabyte at a time, then its BLAKE3 appended (`put_summed`).
/// Each file is read only while it is what the sender stamped (same file, length and
/// modification time, before and after): anything else fails the put (ESTALE; EINVAL for a
/// descriptor that was not sent or is not a regular file) and commits nothing. The object
/// that may follow (a result's manifest) is committed only once the result is.
fn put_parts<S: Store>(fs: &CacheFs<S>, uid: u32, body: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<u8>, FsError> {
    let wire::Parts { key, replace, parts, then } = wire::parse_parts(body).map_err(|_| FsError::InvalidName)?;
    let mut files: Vec<Option<File>> = fds.into_iter().map(|fd| Some(File::from(fd))).collect();
    let mut part = 0usize;
    let mut offset = 0u64;
    let mut refused: Option<(i32, &str)> = None;
    let mut next = |buf: &mut Vec<u8>| -> io::Result<bool> {
        const CHUNK: usize = 1 << 20;
        let mut refuse = |errno, why| {
            refused = Some((errno, why));
            Err(io::Error::from_raw_os_error(errno))
        };
        while buf.len() < CHUNK && part < parts.len() {
            match &parts[part] {
                PartRef::Bytes(r) => {
                    let b = &body[r.start + offset as usize..r.end];
                    let n = b.len().min(CHUNK - buf.len());
                    buf.extend_from_slice(&b[..n]);
                    offset += n as u64;
                    if offset as usize == r.len() {
                        (part, offset) = (part + 1, 0);
                    }
                }
                PartRef::File { fd, stamp } => {
                    let Some(file) = files.get(*fd).and_then(Option::as_ref) else {
                        return refuse(libc::EINVAL, "names a descriptor that was not sent");
                    };
                    let meta = file.metadata()?;
                    if !meta.is_file() {
                        return refuse(libc::EINVAL, "sent a descriptor that is not a regular file");
                    }
                    if FileStamp::of(&meta) != *stamp {
                        return refuse(libc::ESTALE, "sent a file that changed after it was hashed");
                    }
                    let start = buf.len();
                    let want = ((stamp.len - offset) as usize).min(CHUNK - start);
                    buf.resize(start + want, 0);
                    if file.read_exact_at(&mut buf[start..], offset).is_err() {
                        return refuse(libc::ESTALE, "sent a file that shrank while it was read");
                    }
                    offset += want as u64;
                    if offset == stamp.len {
                        if FileStamp::of(&file.metadata()?) != *stamp {
                            return refuse(libc::ESTALE, "sent a file that changed while it was read");
                        }
                        // Each descriptor serves one part: closed as soon as it is read.
                        files[*fd] = None;
                        (part, offset) = (part + 1, 0);
                    }
                }
            }
        }
        Ok(part < parts.len())
    };
    let put = fs.put_summed(uid, &key, &mut next, replace);
    match (put, refused) {
        (Err(_), Some((errno, why))) => {
            tracing::warn!(%key, "refused a PUT_PARTS that {why}; nothing stored");
            Err(FsError::Io(errno))
        }
        (Err(e), None) => Err(e),
        (Ok(()), _) => match then {
            // The manifest naming the result, only once the result is in.
            Some((k, at)) => {
                let mut sent = false;
                let mut once = |buf: &mut Vec<u8>| {
                    if !std::mem::replace(&mut sent, true) {
                        buf.extend_from_slice(&body[at.clone()]);
                    }
                    Ok(false)
                };
                fs.put_bytes(uid, &k, &mut once, true).map(|()| Vec::new())
            }
            None => Ok(Vec::new()),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::engine::cache::Cache;
    use crate::engine::door::Door;
    use crate::fs::FsOptions;
    use crate::store::memory::MemoryStore;

    /// A daemon's socket over a memory store in a temporary folder, as `owner`.
    fn serving(owner: u32, allow_other: bool) -> (tempfile::TempDir, Bound) {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(CacheFs::new(
            Arc::new(MemoryStore::new(1 << 30)),
            FsOptions { uid: owner, gid: owner, want_backing: false },
        ));
        let bound = bind(dir.path(), allow_other).unwrap();
        serve(
            Arc::clone(&fs),
            Seeder::start(fs).unwrap(),
            None,
            bound.listener.try_clone().unwrap(),
            Access { owner, allow_other },
        )
        .unwrap();
        (dir, bound)
    }

    fn door(dir: &Path) -> Door {
        Door::at(None, Some(dir)).expect("the socket answers")
    }

    #[test]
    fn a_wrapper_stores_reads_lists_and_removes_through_the_socket() {
        let (dir, bound) = serving(nix::unistd::getuid().as_raw(), false);
        let mode = std::fs::metadata(&bound.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the owner's alone");
        let d = door(dir.path());
        let key = Key::of_bytes(b"object");
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        d.put(&key, &big, false).unwrap();
        assert_eq!(d.get(&key).as_deref(), Some(&big[..]), "several chunks each way");
        assert_eq!(Cache::get(&d, &Key::of_bytes(b"absent")), None, "a miss");
        let listed = d.list("").unwrap();
        assert!(listed.iter().any(|l| l.name == key.to_hex() && l.size == big.len() as u64), "{listed:?}");
        d.report(&[crate::protocol::report::Event::NotCacheable("incremental".into())]);
        let stats = String::from_utf8(d.read(".cairn/stats.json").unwrap()).unwrap();
        assert!(stats.contains("\"incremental\": 1"), "the report was counted: {stats}");
        d.remove(&key.to_hex()).unwrap();
        let e = d.remove(&key.to_hex()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        assert!(d.read("../etc/passwd").is_err());
    }

    /// A result goes out as parts, its outputs read by the daemon from their descriptors:
    /// what is stored is the object as it would be encoded in memory. An output that changed
    /// since it was hashed is refused before a byte is sent, and the connection goes on.
    #[test]
    fn a_result_is_put_together_from_its_output_files() {
        use crate::protocol::object::{Body, CompileResult, EntryMeta, FileStamp, OutputFile};
        let (dir, _bound) = serving(nix::unistd::getuid().as_raw(), false);
        let d = door(dir.path());
        let out = tempfile::tempdir().unwrap();
        let rlib = out.path().join("libx.rlib");
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&rlib, &big).unwrap();
        let stamp = FileStamp::of(&std::fs::metadata(&rlib).unwrap());
        let r = CompileResult {
            meta: EntryMeta { crate_name: "x".into(), ..EntryMeta::default() },
            files: vec![
                OutputFile { name: "x.d".into(), mode: 0o644, hash: [1; 32], body: Body::Bytes(b"x.d:\n".to_vec()) },
                OutputFile {
                    name: "libx.rlib".into(),
                    mode: 0o644,
                    hash: *blake3::hash(&big).as_bytes(),
                    body: Body::File { path: rlib.clone(), stamp },
                },
            ],
            stdout: b"out".to_vec(),
            stderr: b"err".to_vec(),
        };
        let key = Key::of_bytes(b"result");
        let manifest = Key::of_bytes(b"manifest");
        let expected = r.encode().unwrap();
        assert_eq!(d.put_result(&key, &r, Some((&manifest, b"names the result"))).unwrap(), expected.len() as u64);
        assert_eq!(d.get(&key), Some(expected), "the object in memory, byte for byte");
        assert_eq!(d.get(&manifest).as_deref(), Some(&b"names the result"[..]), "and the manifest after it");
        std::fs::write(&rlib, b"rewritten").unwrap();
        let other = Key::of_bytes(b"changed");
        let e = d.put_result(&other, &r, None).unwrap_err();
        assert!(e.to_string().contains("changed after it was hashed"), "{e}");
        assert_eq!(Cache::get(&d, &other), None, "nothing stored");
        assert!(d.read(".cairn/stats.json").is_ok(), "the connection goes on");
    }

    /// A result with more output files than a request carries descriptors (a build script's
    /// `OUT_DIR`) is streamed instead; the object is the same either way.
    #[test]
    fn a_result_with_more_files_than_descriptors_is_streamed() {
        use crate::protocol::object::{Body, CompileResult, EntryMeta, FileStamp, OutputFile};
        let (dir, _bound) = serving_disk();
        let d = door(dir.path());
        let out = tempfile::tempdir().unwrap();
        let files: Vec<OutputFile> = (0..wire::MAX_FDS + 1)
            .map(|i| {
                let path = out.path().join(format!("f{i}.o"));
                let bytes = vec![i as u8; 70_000 + i];
                std::fs::write(&path, &bytes).unwrap();
                let stamp = FileStamp::of(&std::fs::metadata(&path).unwrap());
                let hash = *blake3::hash(&bytes).as_bytes();
                OutputFile { name: format!("f{i}.o"), mode: 0o644, hash, body: Body::File { path, stamp } }
            })
            .collect();
        let r = CompileResult { meta: EntryMeta::default(), files, stdout: vec![], stderr: vec![] };
        assert!(r.writer().unwrap().parts(&Key::of_bytes(b"k"), false, None).is_none(), "too many for one request");
        let key = Key::of_bytes(b"many");
        let expected = r.encode().unwrap();
        assert_eq!(d.put_result(&key, &r, None).unwrap(), expected.len() as u64);
        assert_eq!(d.get(&key), Some(expected));
        let mut fewer = r.clone();
        fewer.files.truncate(wire::MAX_FDS);
        let key = Key::of_bytes(b"fewer");
        assert!(fewer.writer().unwrap().parts(&key, false, None).is_some());
        d.put_result(&key, &fewer, None).unwrap();
        assert_eq!(d.get(&key), Some(fewer.encode().unwrap()));
    }

    /// The daemon reads a `PUT_PARTS` file only while it is what the sender stamped: a file
    /// rewritten after the sender checked it, a descriptor that was not sent, or one that is
    /// not a regular file fails the put, stores nothing, and the connection goes on.
    #[test]
    fn the_daemon_refuses_parts_that_are_not_what_the_sender_stamped() {
        use std::os::fd::AsFd;
        let (dir, _bound) = serving_disk();
        let s = wire::connect(dir.path()).unwrap();
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("libx.rlib");
        std::fs::write(&path, b"the bytes that were hashed").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let stamp = FileStamp::of(&file.metadata().unwrap());
        let manifest = Key::of_bytes(b"manifest");
        let put = |key: &Key, fd: u8, fds: &[std::os::fd::BorrowedFd<'_>]| {
            let mut body = wire::PartsBody::new(key, false);
            body.bytes(b"head");
            body.file(fd, &stamp);
            let body = body.finish(Some((&manifest, format!("names {key}").as_bytes())));
            wire::write_frame_with_fds(&s, Op::PutParts as u8, &body, fds).unwrap();
            let (status, len) = wire::read_head(&mut &s).unwrap().unwrap();
            (status, wire::read_body(&mut &s, len).unwrap())
        };
        let good = Key::of_bytes(b"good");
        assert_eq!(put(&good, 0, &[file.as_fd()]).0, 0, "as stamped: stored");
        let stored = door(dir.path()).get(&good).unwrap();
        let mut expected = b"headthe bytes that were hashed".to_vec();
        expected.extend_from_slice(blake3::hash(&expected.clone()).as_bytes());
        assert_eq!(stored, expected, "the parts in order, then their BLAKE3");
        let (r, w) = nix::unistd::pipe().unwrap();
        let (status, body) = put(&Key::of_bytes(b"pipe"), 0, &[r.as_fd()]);
        assert_eq!((status, wire::errno_of(&wire::parse_error(&body))), (1, Some(libc::EINVAL)), "not a regular file");
        drop(w);
        assert_eq!(put(&Key::of_bytes(b"index"), 1, &[file.as_fd()]).0, 1, "no descriptor 1");
        // Rewritten in place after the sender's check: same length, another modification time
        // (set, so that a coarse clock cannot hide the rewrite).
        std::fs::write(&path, b"THE BYTES THAT WERE HASHED").unwrap();
        let rewritten = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        rewritten.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1)).unwrap();
        let changed = Key::of_bytes(b"changed");
        let (status, body) = put(&changed, 0, &[file.as_fd()]);
        assert_eq!(status, 1);
        assert_eq!(wire::errno_of(&wire::parse_error(&body)), Some(libc::ESTALE), "a stale file");
        let d = door(dir.path());
        for k in [b"pipe".as_slice(), b"index", b"changed"] {
            assert_eq!(Cache::get(&d, &Key::of_bytes(k)), None, "nothing stored");
        }
        let m = String::from_utf8(d.get(&manifest).unwrap()).unwrap();
        assert_eq!(m, format!("names {good}"), "the manifest of the one result stored, none of the others");
        assert!(!std::fs::read_dir(dir.path().join("store/v1/tmp")).unwrap().any(|_| true), "no temporary left");
    }

    /// A daemon older than `PUT_PARTS` answers it ENOSYS: the wrapper streams the result
    /// instead (`PUT`), so an upgrade that finds the old daemon running loses nothing.
    #[test]
    fn against_a_daemon_without_put_parts_a_result_is_streamed() {
        use crate::protocol::object::{Body, CompileResult, EntryMeta, FileStamp, OutputFile};
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(wire::socket_path(dir.path())).unwrap();
        let old = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let (op, len, _fds) = wire::read_head_with_fds(&s).unwrap().unwrap();
            assert_eq!(op, Op::PutParts as u8);
            drain(&mut &s, len).unwrap();
            wire::write_frame(&mut &s, 1, &[&wire::error_body(libc::ENOSYS, "unknown op")]).unwrap();
            let (op, len) = wire::read_head(&mut &s).unwrap().unwrap();
            let body = wire::read_body(&mut &s, len).unwrap();
            wire::write_frame(&mut &s, 0, &[b""]).unwrap();
            (op, body)
        });
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("libx.rlib");
        std::fs::write(&path, b"rlib bytes").unwrap();
        let stamp = FileStamp::of(&std::fs::metadata(&path).unwrap());
        let r = CompileResult {
            meta: EntryMeta::default(),
            files: vec![OutputFile {
                name: "libx.rlib".into(),
                mode: 0o644,
                hash: [0; 32],
                body: Body::File { path, stamp },
            }],
            stdout: vec![],
            stderr: vec![],
        };
        let key = Key::of_bytes(b"r");
        let d = Door::at(None, Some(dir.path())).unwrap();
        assert_eq!(d.put_result(&key, &r, None).unwrap(), r.encode().unwrap().len() as u64);
        let (op, body) = old.join().unwrap();
        assert_eq!(op, Op::Put as u8, "then a stream");
        assert_eq!(&body[..33], &wire::put_head(&key, false));
        assert_eq!(body[33..], r.encode().unwrap()[..]);
    }

    #[test]
    fn bad_requests_get_an_error_and_the_connection_goes_on() {
        let (dir, _bound) = serving(nix::unistd::getuid().as_raw(), false);
        let mut s = wire::connect(dir.path()).unwrap();
        // An unknown op, a PUT too short to hold a key, then a good request on the same stream.
        wire::write_frame(&mut s, 99, &[b"whatever"]).unwrap();
        wire::write_frame(&mut s, Op::Put as u8, &[b"short"]).unwrap();
        wire::write_frame(&mut s, Op::Read as u8, &[b".cairn/stats.json"]).unwrap();
        let mut replies = Vec::new();
        for _ in 0..3 {
            let (status, len) = wire::read_head(&mut s).unwrap().unwrap();
            replies.push((status, wire::read_body(&mut s, len).unwrap()));
        }
        assert_eq!(replies[0].0, 1);
        assert_eq!(wire::errno_of(&wire::parse_error(&replies[0].1)), Some(libc::ENOSYS));
        assert_eq!(replies[1].0, 1);
        assert_eq!(replies[2].0, 0, "the stream is still in step");
        // A frame cut off mid-body: the server drops that connection, and serves the next.
        s.write_all(&100u64.to_le_bytes()).unwrap();
        s.write_all(&[Op::Put as u8, 1, 2]).unwrap();
        drop(s);
        let d = door(dir.path());
        assert!(d.read(".cairn/stats.json").is_ok());
    }

    /// A client that dies in the middle of a PUT's bytes: nothing is committed under the key,
    /// and no temporary is left behind.
    #[test]
    fn a_put_cut_off_mid_body_commits_nothing_and_leaves_no_temporary() {
        let (dir, _bound) = serving_disk();
        let key = Key::of_bytes(b"whole object");
        let s = wire::connect(dir.path()).unwrap();
        let mut head = (1 + 33 + 1000u64).to_le_bytes().to_vec();
        head.push(Op::Put as u8);
        head.extend_from_slice(&wire::put_head(&key, false));
        head.extend_from_slice(&[7u8; 10]);
        (&s).write_all(&head).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        // The daemon answers once it has given up on the body: the event to wait for.
        let (status, len) = wire::read_head(&mut &s).unwrap().expect("a reply");
        let body = wire::read_body(&mut &s, len).unwrap();
        assert_eq!(status, 1, "an error: {}", wire::parse_error(&body));
        let d = door(dir.path());
        assert_eq!(Cache::get(&d, &key), None, "nothing committed");
        let temps: Vec<_> = std::fs::read_dir(dir.path().join("store/v1/tmp")).unwrap().collect();
        assert!(temps.is_empty(), "the temporary was discarded: {temps:?}");
    }

    #[test]
    fn a_peer_that_is_not_the_owner_may_not_change_the_cache() {
        // The daemon's owner is someone else: this process is "another user" to it (unless
        // it runs as root, who may change everything, as through the mount).
        if nix::unistd::getuid().is_root() {
            // As root, prove the refusal with an owner check instead: root is always let in.
            let (dir, _b) = serving(4242, false);
            let d = door(dir.path());
            d.put(&Key::of_bytes(b"x"), b"x", false).unwrap();
            return;
        }
        let (dir, _b) = serving(4242, true);
        let d = door(dir.path());
        let e = d.put(&Key::of_bytes(b"x"), b"x", false).unwrap_err();
        assert_eq!(wire::errno_of(&e), Some(libc::EACCES), "{e}");
        assert!(d.read(".cairn/stats.json").is_ok(), "reading is allowed under --allow-other");
        let (dir, _b) = serving(4242, false);
        let d = door(dir.path());
        assert_eq!(wire::errno_of(&d.read(".cairn/stats.json").unwrap_err()), Some(libc::EACCES));
    }

    /// A daemon's socket over a disk store in a temporary folder (its store in `store/`).
    fn serving_disk() -> (tempfile::TempDir, Bound) {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::getuid().as_raw();
        let store = Arc::new(crate::store::disk::DiskStore::open(&dir.path().join("store"), 1 << 30).unwrap());
        let fs = Arc::new(CacheFs::new(store, FsOptions { uid: me, gid: me, want_backing: true }));
        let bound = bind(dir.path(), false).unwrap();
        serve(
            Arc::clone(&fs),
            Seeder::start(fs).unwrap(),
            None,
            bound.listener.try_clone().unwrap(),
            Access { owner: me, allow_other: false },
        )
        .unwrap();
        (dir, bound)
    }

    /// Over the disk store, objects travel as descriptors (`OPEN`): the bytes read are the
    /// object's, and a damaged object is refused before any descriptor is handed out.
    #[test]
    fn objects_are_handed_over_as_checked_descriptors() {
        let (dir, _bound) = serving_disk();
        let d = door(dir.path());
        let key = Key::of_bytes(b"object");
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        d.put(&key, &big, false).unwrap();
        // The raw exchange: a descriptor and an empty body.
        let s = wire::connect(dir.path()).unwrap();
        wire::write_frame(&mut &s, Op::Open as u8, &[key.to_hex().as_bytes()]).unwrap();
        let (status, len, fd) = wire::read_head_with_fd(&s).unwrap().unwrap();
        assert_eq!((status, len), (0, 0));
        let mut via_fd = Vec::new();
        std::fs::File::from(fd.expect("a descriptor")).read_to_end(&mut via_fd).unwrap();
        assert!(via_fd == big, "the descriptor reads the object's bytes");
        assert_eq!(d.get(&key).as_deref(), Some(&big[..]));
        // A generated file has no descriptor: its bytes come in the body.
        assert!(String::from_utf8(d.read(".cairn/stats.json").unwrap()).unwrap().contains("\"doors\""));
        // Damage the stored file: the next open checks it and refuses.
        let hex = key.to_hex();
        let path = dir.path().join("store/v1/objects").join(&hex[..2]).join(&hex);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[1000] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(d.get(&key), None, "a damaged object is a miss");
        assert!(!path.exists(), "and it is removed");
    }

    #[test]
    fn a_dead_daemons_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let stale = std::os::unix::net::UnixListener::bind(wire::socket_path(dir.path())).unwrap();
        drop(stale);
        assert!(wire::connect(dir.path()).is_err(), "a socket file with no one behind it");
        let bound = bind(dir.path(), false).unwrap();
        let _c = wire::connect(dir.path()).unwrap();
        drop(bound);
        assert!(!wire::socket_path(dir.path()).exists(), "removed when the daemon stops");
    }
}

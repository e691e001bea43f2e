//! The two doors into the daemon, as the wrapper and the admin commands see them: the FUSE
//! mount, where there is one, and the daemon's socket in the store folder, where there is not
//! (`protocol::wire`). Both reach the same daemon and the same rules; a [`Door`] offers the
//! file operations every caller needs, whichever door it is, and is the engine's [`Cache`].
//!
//! Which door: the socket first (one `connect`), then a live mount (one `statfs`); with
//! neither, the daemon is started (`cairn start`, which mounts where FUSE works and serves the
//! socket alone where it does not) and both are tried again. The socket comes first because
//! it is the cheaper door for the same daemon and the same rules: a stored result is one
//! streamed request instead of a create, many writes and a rename through the kernel, and a
//! read is one handed-over descriptor (measured in docs/benchmarks.md, "Which door the wrapper
//! takes"). `CAIRN_DOOR=mount` puts the mount first; the mount stays what people look at.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use super::cache::{Cache, Fetched};
use super::mount;
use crate::key::Key;
use crate::protocol::names::temp_name_for;
use crate::protocol::object::CompileResult;
use crate::protocol::report::{self, Event};
use crate::protocol::wire::{self, Listed, Op};

/// What [`Door::open`] gives.
pub enum Opened {
    File(fs::File),
    Bytes(Vec<u8>),
}

/// A way into the daemon.
pub enum Door {
    /// The FUSE mount at this path.
    Mount(PathBuf),
    /// The daemon's socket, connected, and the store folder it is in.
    Socket { stream: UnixStream, store: PathBuf },
}

impl Door {
    /// The mount if it is live, else the socket of the store if a daemon answers there; never
    /// starts a daemon.
    pub fn live() -> Option<Door> {
        Door::at(mount::mountpoint().as_deref(), mount::store_dir().as_deref())
    }

    /// Like [`live`](Self::live) for a given mount point and store folder: the socket, else
    /// the mount (the other way round with `CAIRN_DOOR=mount`).
    pub fn at(mountpoint: Option<&Path>, store: Option<&Path>) -> Option<Door> {
        let by_mount = || {
            let mp = mountpoint.filter(|m| mount::probe(m) == mount::Probe::Live)?;
            Some(Door::Mount(mp.to_path_buf()))
        };
        let by_socket = || {
            let store = store?;
            let stream = wire::connect(store).ok()?;
            Some(Door::Socket { stream, store: store.to_path_buf() })
        };
        if std::env::var_os("CAIRN_DOOR").is_some_and(|v| v == "mount") {
            by_mount().or_else(by_socket)
        } else {
            by_socket().or_else(by_mount)
        }
    }

    /// A live door, starting the daemon when there is none (unless `CAIRN_AUTOSTART=0`).
    /// Concurrent wrappers serialize on a lock so that only one starts it.
    pub fn find_or_start() -> Result<Door, String> {
        let mp = crate::protocol::config::mountpoint().map_err(|e| e.to_string())?;
        // The store named, else that of the daemon behind a named mount (mount.rs
        // `store_dir`): never the default store's daemon when the build named another mount.
        let store = match mount::store_dir() {
            Some(s) => s,
            None => crate::protocol::config::store().map_err(|e| e.to_string())?,
        };
        if let Some(d) = Door::at(Some(&mp), Some(&store)) {
            return Ok(d);
        }
        if std::env::var("CAIRN_AUTOSTART").as_deref() == Ok("0") {
            return Err(format!(
                "no cairn mount at {} nor daemon socket at {}, and CAIRN_AUTOSTART=0",
                mp.display(),
                wire::socket_path(&store).display()
            ));
        }
        let base = mount::cache_base().ok_or("no HOME: set CAIRN_MOUNT and CAIRN_STORE")?;
        fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(base.join("autostart.lock"))
            .map_err(|e| format!("autostart lock: {e}"))?;
        mount::flock(&lock);
        // Someone else may have started it while we waited.
        if let Some(d) = Door::at(Some(&mp), Some(&store)) {
            return Ok(d);
        }
        let cairn = mount::daemon_binary();
        let mut child = Command::new(&cairn)
            .arg("start")
            .arg(&mp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {} start: {e}", cairn.display()))?;
        // `cairn start` returns once the daemon is ready (it waits on the daemon's readiness
        // pipe): mounted, or serving its socket where FUSE cannot be used.
        let status = child.wait().map_err(|e| e.to_string())?;
        if let (true, Some(d)) = (status.success(), Door::at(Some(&mp), Some(&store))) {
            return Ok(d);
        }
        let mut err = String::new();
        if let Some(mut s) = child.stderr.take() {
            let _ = io::Read::read_to_string(&mut s, &mut err);
        }
        Err(format!("could not start the cairn daemon ({}): {}", status, err.trim()))
    }

    /// Where this door is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Door::Mount(mp) => format!("mount {}", mp.display()),
            Door::Socket { store, .. } => format!("socket {}", wire::socket_path(store).display()),
        }
    }

    /// One request through the socket; the reply's body, or its error.
    fn call(stream: &UnixStream, op: Op, parts: &[&[u8]]) -> io::Result<Vec<u8>> {
        let mut s = stream;
        wire::write_frame(&mut s, op as u8, parts)?;
        Door::reply(stream)
    }

    /// The daemon's answer to the request just sent.
    fn reply(stream: &UnixStream) -> io::Result<Vec<u8>> {
        let mut s = stream;
        let (status, len) = wire::read_head(&mut s)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let body = wire::read_body(&mut s, len)?;
        match status {
            0 => Ok(body),
            _ => Err(wire::parse_error(&body)),
        }
    }

    /// The bytes of the file at `rel` (relative to the mount root: `<key>`, `.cairn/stats.json`).
    /// Through the socket, the daemon hands over the stored file itself (`OPEN`), checked,
    /// and it is read here once.
    pub fn read(&self, rel: &str) -> io::Result<Vec<u8>> {
        match self.open(rel)? {
            Opened::File(mut f) => {
                let mut bytes = Vec::new();
                io::Read::read_to_end(&mut f, &mut bytes)?;
                Ok(bytes)
            }
            Opened::Bytes(b) => Ok(b),
        }
    }

    /// The file at `rel`, opened read-only after the daemon checked it against its checksum
    /// (the mount's open, or the socket's `OPEN`), so its bytes can be copied file to file;
    /// or its bytes, for a file with no descriptor to give (a generated one).
    pub fn open(&self, rel: &str) -> io::Result<Opened> {
        match self {
            Door::Mount(mp) => fs::File::open(mp.join(rel)).map(Opened::File),
            Door::Socket { stream, .. } => {
                let mut s = stream;
                wire::write_frame(&mut s, Op::Open as u8, &[rel.as_bytes()])?;
                let (status, len, fd) = wire::read_head_with_fd(stream)?.ok_or(io::ErrorKind::UnexpectedEof)?;
                let body = wire::read_body(&mut s, len)?;
                match (status, fd) {
                    (0, Some(fd)) => Ok(Opened::File(fs::File::from(fd))),
                    (0, None) => Ok(Opened::Bytes(body)),
                    _ => Err(wire::parse_error(&body)),
                }
            }
        }
    }

    /// Appends to a write-only special file (`.cairn/report`, `.cairn/control`).
    pub fn append(&self, rel: &str, bytes: &[u8]) -> io::Result<()> {
        match self {
            Door::Mount(mp) => OpenOptions::new().append(true).open(mp.join(rel))?.write_all(bytes),
            Door::Socket { stream, .. } => {
                Door::call(stream, Op::Append, &[&wire::path_prefix(rel)?, rel.as_bytes(), bytes]).map(drop)
            }
        }
    }

    /// Commits bytes under a key. `replace` swaps out an existing object with different bytes
    /// (manifests); otherwise the first writer's bytes stay and this is not an error.
    pub fn put(&self, key: &Key, bytes: &[u8], replace: bool) -> io::Result<()> {
        match self {
            Door::Mount(mp) => put_file(mp, key, bytes, replace),
            Door::Socket { stream, .. } => {
                Door::call(stream, Op::Put, &[&wire::put_head(key, replace), bytes]).map(drop)
            }
        }
    }

    /// Commits a result (protocol/result_writer.rs), then `then` (its manifest): through the
    /// socket, one `PUT_PARTS` whose outputs the daemon reads from the descriptors sent with
    /// it, and which carries the manifest to commit once the result is (or, for a result with
    /// more output files than a request carries, one `PUT` whose body goes out as the outputs
    /// are read, then the manifest's own `PUT`); through the mount, a temporary written as
    /// that stream, then the manifest. Says how many bytes the result's object has.
    pub fn put_result(&self, key: &Key, result: &CompileResult, then: Option<(&Key, &[u8])>) -> io::Result<u64> {
        let mut w = result.writer()?;
        let len = w.len();
        match self {
            Door::Mount(mp) => put_file_with(mp, key, false, &mut |f| w.write_to(f))?,
            Door::Socket { stream, .. } => {
                if let Some((body, fds)) = w.parts(key, false, then) {
                    // The daemon reads the outputs from their descriptors; a daemon older than
                    // PUT_PARTS says ENOSYS, and gets the stream below.
                    let sent = match fds.is_empty() {
                        true => wire::write_frame(&mut &*stream, Op::PutParts as u8, &[&body]),
                        false => wire::write_frame_with_fds(stream, Op::PutParts as u8, &body, &fds),
                    };
                    match sent.and_then(|()| Door::reply(stream)) {
                        Err(e) if wire::errno_of(&e) == Some(libc::ENOSYS) => {}
                        other => return other.map(|_| len),
                    }
                }
                let mut s = stream;
                wire::write_frame_head(&mut s, Op::Put as u8, 33 + len)?;
                s.write_all(&wire::put_head(key, false))?;
                let mut out = io::BufWriter::with_capacity(64 << 10, s);
                if let Err(e) = w.write_to(&mut out).and_then(|()| out.flush()) {
                    // The daemon waits for the rest of the body: ending the connection has it
                    // drop the temporary. Later requests of this wrapper go unanswered.
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return Err(e);
                }
                drop(out);
                Door::reply(stream)?;
            }
        }
        if let Some((k, b)) = then {
            self.put(k, b, true)?;
        }
        Ok(len)
    }

    /// Removes a file: an object by its key (locally and in the bucket, as `rm` does).
    pub fn remove(&self, rel: &str) -> io::Result<()> {
        match self {
            Door::Mount(mp) => fs::remove_file(mp.join(rel)),
            Door::Socket { stream, .. } => Door::call(stream, Op::Remove, &[rel.as_bytes()]).map(drop),
        }
    }

    /// The entries of a folder (`""` for the root), without `.` and `..`.
    pub fn list(&self, rel: &str) -> io::Result<Vec<Listed>> {
        match self {
            Door::Mount(mp) => {
                let mut out = Vec::new();
                for e in fs::read_dir(mp.join(rel))? {
                    let e = e?;
                    let m = e.metadata()?;
                    let mtime_ns = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(0);
                    out.push(Listed { name: e.file_name().to_string_lossy().into_owned(), size: m.len(), mtime_ns });
                }
                Ok(out)
            }
            Door::Socket { stream, .. } => wire::decode_list(&Door::call(stream, Op::List, &[rel.as_bytes()])?),
        }
    }

    /// An extended attribute of a file (`user.cairn.crate`), when it has it.
    pub fn xattr(&self, rel: &str, name: &str) -> Option<Vec<u8>> {
        match self {
            Door::Mount(mp) => getxattr(&mp.join(rel), name),
            Door::Socket { stream, .. } => {
                Door::call(stream, Op::Xattr, &[&wire::path_prefix(rel).ok()?, rel.as_bytes(), name.as_bytes()]).ok()
            }
        }
    }

    /// Asks a daemon without a mount to stop (as SIGTERM does); it drains its uploads first.
    pub fn stop(&self) -> io::Result<()> {
        match self {
            Door::Mount(mp) => Err(io::Error::other(format!("{} is a mount: unmount it", mp.display()))),
            Door::Socket { stream, .. } => Door::call(stream, Op::Stop, &[]).map(drop),
        }
    }

    fn warn_gone(&self, e: &io::Error) {
        let gone = match self {
            Door::Mount(_) => e.raw_os_error() == Some(libc::ENOTCONN),
            Door::Socket { .. } => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
            ),
        };
        if gone {
            mount::warn_once("the cairn daemon stopped answering (killed?)");
        }
    }
}

impl Cache for Door {
    fn get(&self, key: &Key) -> Option<Vec<u8>> {
        match self.read(&key.to_hex()) {
            Ok(b) => Some(b),
            Err(e) => {
                self.warn_gone(&e);
                None
            }
        }
    }

    fn open(&self, key: &Key) -> Option<Fetched> {
        match Door::open(self, &key.to_hex()) {
            Ok(Opened::File(f)) => Some(Fetched::File(f)),
            Ok(Opened::Bytes(b)) => Some(Fetched::Bytes(b)),
            Err(e) => {
                self.warn_gone(&e);
                None
            }
        }
    }

    fn put(&self, key: &Key, bytes: &[u8], replace: bool) -> io::Result<()> {
        Door::put(self, key, bytes, replace).inspect_err(|e| self.warn_gone(e))
    }

    fn put_result(&self, key: &Key, result: &CompileResult, then: Option<(&Key, &[u8])>) -> io::Result<u64> {
        Door::put_result(self, key, result, then).inspect_err(|e| self.warn_gone(e))
    }

    fn remove(&self, key: &Key) {
        let _ = Door::remove(self, &key.to_hex());
    }

    fn report(&self, events: &[Event]) {
        let _ = self.append(".cairn/report", report::encode(events).as_bytes());
    }
}

/// Commits bytes under a key in a folder that speaks the mount's protocol: write a temporary,
/// rename it onto the key.
fn put_file(dir: &Path, key: &Key, bytes: &[u8], replace: bool) -> io::Result<()> {
    put_file_with(dir, key, replace, &mut |f| f.write_all(bytes))
}

/// [`put_file`] with the temporary's bytes written by `write`.
fn put_file_with(
    dir: &Path,
    key: &Key,
    replace: bool,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let tmp = dir.join(temp_name_for(key, std::process::id(), nanos));
    let dest = dir.join(key.to_hex());
    let result = (|| {
        {
            let mut f = io::BufWriter::with_capacity(64 << 10, fs::File::create(&tmp)?);
            write(&mut f)?;
            f.flush()?;
        }
        match fs::rename(&tmp, &dest) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && replace => {
                // Another dependency set was recorded first; ours is newer. A reader that looks
                // in between sees no manifest: a miss, never a wrong hit. Should yet another
                // writer commit in between (wrappers racing on one key), theirs stands.
                let _ = fs::remove_file(&dest);
                match fs::rename(&tmp, &dest) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                    other => other,
                }
            }
            // Someone stored different bytes for the same result key (a compile that is not
            // bit-for-bit reproducible): theirs stays, ours is dropped.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    })();
    let _ = fs::remove_file(&tmp);
    result
}

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the length given.
    let len = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(buf)
}

//! The daemon's second door: a Unix socket in the store folder, for machines where FUSE cannot
//! be used (a `docker build`, a CI container). This is the format both ends speak; the client
//! is `engine::door`, the server `daemon::socket`, and the rules behind every request are the
//! mount's own (`fs::door` calls the same `CacheFs` methods a FUSE request does).
//!
//! The requests are the file operations the wrapper and the admin commands make through a
//! mount, named by a path relative to the mount root (`<key>`, `.cairn/report`,
//! `by-crate/<crate>`):
//!
//! ```text
//! request:  u64 length | u8 op | body                 (little-endian; length counts op + body)
//! reply:    u64 length | u8 status | body             (status 0: ok; 1: error, body = i32 errno | text)
//! ```
//!
//! | op | body | ok reply |
//! |---|---|---|
//! | `READ` | path | the file's bytes |
//! | `APPEND` | u16 path length, path, bytes | empty |
//! | `PUT` | 32-byte key, u8 replace, bytes | empty |
//! | `PUT_PARTS` | 32-byte key, u8 replace, u32 count, parts: u8 0, u64 length, bytes; or u8 1, u8 descriptor index, u64 dev, u64 inode, u64 length, i128 mtime (ns) — with the files' descriptors passed with the request's head; then u8 0, or u8 1, a 32-byte key, u64 length, bytes: an object to commit, replacing, once the first is (a result's manifest) | empty: the object is the parts in order and their BLAKE3 |
//! | `REMOVE` | path | empty |
//! | `LIST` | path | entries: u16 name length, name, u64 size, u64 mtime (ns) |
//! | `XATTR` | u16 path length, path, name | the value |
//! | `STOP` | — | empty (the daemon then stops as on SIGTERM) |
//! | `OPEN` | path | the file itself, as a read-only descriptor passed with the reply's head (`SCM_RIGHTS`), and an empty body; or, for a file with no descriptor to give (a generated one), its bytes as with `READ` |
//! | `CAPTURE` | a unit's report (`protocol::seed::Capture`, bincode), with its target dir's descriptor passed with the request's head | empty (docs/seeding.md) |
//! | `SEED` | the exact and the latest set key, 32 bytes each | u8 which (0 exact, 1 latest), then the set (`protocol::seed::SeedSet`), once the copies feeding it are written |
//!
//! `CAPTURE` and `SEED` are not file operations: they are target-dir seeding's (docs/seeding.md).
//! `OPEN` is how the wrapper reads objects: the daemon opens the object as for a read through
//! the mount (checked against its checksum first) and hands over the descriptor, so the bytes
//! are read once, from the page cache, as FUSE passthrough reads them, instead of being copied
//! through the socket. One connection carries any number of requests, one at a time.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::key::Key;
use crate::protocol::object::FileStamp;

/// The socket's file name in the store folder.
pub const SOCKET_NAME: &str = "cairn.sock";

/// Longest request or reply body; far above any object (the store's limit bounds those), and
/// a guard against a length that is not one.
pub const MAX_FRAME: u64 = 1 << 40;

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    Read = 1,
    Append = 2,
    Put = 3,
    Remove = 4,
    List = 5,
    Xattr = 6,
    Stop = 7,
    Open = 8,
    Capture = 9,
    Seed = 10,
    /// Run a compile on the remote execution engine (`protocol::remote`).
    Execute = 11,
    /// Wait until the units reported in the target dirs of a seed set are copied (a
    /// workspace compile's end: engine/seed `settle`).
    Settle = 12,
    /// Commit an object made of parts: bytes sent along, and spans of files whose
    /// descriptors come with the request (`PutParts`).
    PutParts = 13,
}

impl Op {
    pub fn from_u8(b: u8) -> Option<Op> {
        Some(match b {
            1 => Op::Read,
            2 => Op::Append,
            3 => Op::Put,
            4 => Op::Remove,
            5 => Op::List,
            6 => Op::Xattr,
            7 => Op::Stop,
            8 => Op::Open,
            9 => Op::Capture,
            10 => Op::Seed,
            11 => Op::Execute,
            12 => Op::Settle,
            13 => Op::PutParts,
            _ => return None,
        })
    }
}

/// The socket of the store at `store`.
pub fn socket_path(store: &Path) -> PathBuf {
    store.join(SOCKET_NAME)
}

/// A path the kernel takes as a socket address: `sun_path` holds 107 bytes, so a longer one
/// is reached through the folder's descriptor (`/proc/self/fd/N/cairn.sock`). The descriptor
/// must stay open while the address is used; it is returned with the address.
pub fn addressable(path: &Path) -> io::Result<(PathBuf, Option<std::fs::File>)> {
    if path.as_os_str().len() < 100 {
        return Ok((path.to_path_buf(), None));
    }
    let dir = path.parent().ok_or_else(|| io::Error::other("a socket path needs a folder"))?;
    let name = path.file_name().ok_or_else(|| io::Error::other("a socket path needs a name"))?;
    let fd = std::fs::File::open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))).join(name);
    Ok((short, Some(fd)))
}

/// Connects to the daemon serving `store`.
pub fn connect(store: &Path) -> io::Result<UnixStream> {
    let (addr, _dir) = addressable(&socket_path(store))?;
    UnixStream::connect(addr)
}

/// Writes one frame: its length, a leading byte, then the parts.
pub fn write_frame(w: &mut impl Write, lead: u8, parts: &[&[u8]]) -> io::Result<()> {
    write_frame_head(w, lead, parts.iter().map(|p| p.len() as u64).sum())?;
    for p in parts {
        w.write_all(p)?;
    }
    w.flush()
}

/// The head of a frame whose `body_len` bytes the caller writes next, as a stream.
pub fn write_frame_head(w: &mut impl Write, lead: u8, body_len: u64) -> io::Result<()> {
    let mut head = [0u8; 9];
    head[..8].copy_from_slice(&(1 + body_len).to_le_bytes());
    head[8] = lead;
    w.write_all(&head)
}

/// Longest `PUT_PARTS` body: the bytes sent along (a result's header, dep-info, stdout and
/// stderr) are read into memory whole, so a larger object is streamed (`PUT`).
pub const MAX_PARTS_BODY: u64 = 64 << 20;

/// Most descriptors one frame carries (a `PUT_PARTS` of a result with more output files is
/// sent as a `PUT` stream instead).
pub const MAX_FDS: usize = 64;

/// Room for the control message of `n` descriptors.
fn fd_space(n: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((n * std::mem::size_of::<libc::c_int>()) as u32) as usize }
}

/// A message header over one buffer and a control buffer. The header points into both: they
/// must outlive its use.
fn fd_msg(iov: &mut libc::iovec, cbuf: &mut [u8]) -> libc::msghdr {
    // SAFETY: msghdr is plain data, for which all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.len() as _;
    msg
}

/// A frame's head: its leading byte and how many body bytes follow, its length checked.
fn parse_head(head: &[u8; 9]) -> io::Result<(u8, u64)> {
    let len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    if len == 0 || len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad frame length {len}")));
    }
    Ok((head[8], len - 1))
}

/// Writes one frame whose head carries a file descriptor (`SCM_RIGHTS`), then its body.
pub fn write_frame_with_fd(
    stream: &std::os::unix::net::UnixStream,
    lead: u8,
    body: &[u8],
    fd: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    write_frame_with_fds(stream, lead, body, &[fd])
}

/// Writes one frame whose head carries up to [`MAX_FDS`] file descriptors (`SCM_RIGHTS`, in
/// this order), then its body.
pub fn write_frame_with_fds(
    stream: &std::os::unix::net::UnixStream,
    lead: u8,
    body: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    if fds.is_empty() || fds.len() > MAX_FDS {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} descriptors in one frame", fds.len())));
    }
    let mut head = [0u8; 9];
    head[..8].copy_from_slice(&(1 + body.len() as u64).to_le_bytes());
    head[8] = lead;
    let mut iov = libc::iovec { iov_base: head.as_mut_ptr().cast(), iov_len: head.len() };
    let mut cbuf = vec![0u8; fd_space(fds.len())];
    let msg = fd_msg(&mut iov, &mut cbuf);
    // SAFETY: `msg` points at `head` and `cbuf`, which outlive the call; the control buffer is
    // CMSG_SPACE bytes for these descriptors, as CMSG_FIRSTHDR/CMSG_DATA expect.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN((fds.len() * std::mem::size_of::<libc::c_int>()) as u32) as _;
        let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
        for (i, fd) in fds.iter().enumerate() {
            std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
        }
        libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut w = stream;
    w.write_all(&head[sent as usize..])?;
    w.write_all(body)?;
    w.flush()
}

/// Reads one frame's head like [`read_head`], and the descriptor passed with it, if any.
#[allow(clippy::type_complexity)]
pub fn read_head_with_fd(
    stream: &std::os::unix::net::UnixStream,
) -> io::Result<Option<(u8, u64, Option<std::os::fd::OwnedFd>)>> {
    Ok(read_head_with_fds(stream)?.map(|(lead, len, fds)| (lead, len, fds.into_iter().next())))
}

/// Reads one frame's head like [`read_head`], and the descriptors passed with it (none, or up
/// to [`MAX_FDS`], in the order sent). Every descriptor received is owned, so none leaks.
#[allow(clippy::type_complexity)]
pub fn read_head_with_fds(
    stream: &std::os::unix::net::UnixStream,
) -> io::Result<Option<(u8, u64, Vec<std::os::fd::OwnedFd>)>> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut head = [0u8; 9];
    let mut iov = libc::iovec { iov_base: head.as_mut_ptr().cast(), iov_len: head.len() };
    let mut cbuf = vec![0u8; fd_space(MAX_FDS)];
    let mut msg = fd_msg(&mut iov, &mut cbuf);
    let mut fds = Vec::new();
    // SAFETY: as in write_frame_with_fds; the kernel fills at most msg_controllen bytes, and
    // each control message found is read within them, its descriptors counted from its length.
    let got = unsafe {
        let n = loop {
            let n = libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break n;
            }
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..bytes / std::mem::size_of::<libc::c_int>() {
                    let raw = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                    fds.push(std::os::fd::OwnedFd::from_raw_fd(raw));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        n as usize
    };
    if got == 0 {
        return Ok(None);
    }
    let mut r = stream;
    r.read_exact(&mut head[got..])?;
    let (lead, len) = parse_head(&head)?;
    Ok(Some((lead, len, fds)))
}

/// Reads one frame's head: its leading byte and how many body bytes follow. `None` at a clean
/// end of stream (the peer closed between frames).
pub fn read_head(r: &mut impl Read) -> io::Result<Option<(u8, u64)>> {
    let mut head = [0u8; 9];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    parse_head(&head).map(Some)
}

/// Reads `len` bytes.
pub fn read_body(r: &mut impl Read, len: u64) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    r.take(len).read_to_end(&mut body)?;
    if body.len() as u64 != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(body)
}

/// A body that starts with a u16-length-prefixed path: the path and the rest.
pub fn split_path(body: &[u8]) -> io::Result<(&str, &[u8])> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad path in request");
    let n = u16::from_le_bytes(body.get(..2).ok_or_else(bad)?.try_into().expect("2 bytes")) as usize;
    let path = body.get(2..2 + n).ok_or_else(bad)?;
    Ok((std::str::from_utf8(path).map_err(|_| bad())?, &body[2 + n..]))
}

/// The u16 length of a path, as its prefix.
pub fn path_prefix(path: &str) -> io::Result<[u8; 2]> {
    u16::try_from(path.len())
        .map(u16::to_le_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path too long"))
}

/// An error reply's body: the errno and a sentence.
pub fn error_body(errno: i32, text: &str) -> Vec<u8> {
    let mut b = errno.to_le_bytes().to_vec();
    b.extend_from_slice(text.as_bytes());
    b
}

/// The daemon's refusal of a request: its errno and its sentence.
#[derive(Debug)]
pub struct Refused {
    pub errno: i32,
    pub text: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.text, io::Error::from_raw_os_error(self.errno))
    }
}

impl std::error::Error for Refused {}

/// An error reply's body as an `io::Error` whose kind follows the errno.
pub fn parse_error(body: &[u8]) -> io::Error {
    let errno = body.get(..4).map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes"))).unwrap_or(libc::EIO);
    let text = String::from_utf8_lossy(body.get(4..).unwrap_or_default()).into_owned();
    io::Error::new(io::Error::from_raw_os_error(errno).kind(), Refused { errno, text })
}

/// The errno of an error: an OS error's, or the one a [`parse_error`] refusal carries.
pub fn errno_of(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| e.get_ref()?.downcast_ref::<Refused>().map(|r| r.errno))
}

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    pub mtime_ns: u64,
}

/// Encodes a listing.
pub fn encode_list(entries: &[Listed]) -> Vec<u8> {
    let mut b = Vec::with_capacity(entries.len() * 84);
    for e in entries {
        let name = &e.name.as_bytes()[..e.name.len().min(u16::MAX as usize)];
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
        b.extend_from_slice(name);
        b.extend_from_slice(&e.size.to_le_bytes());
        b.extend_from_slice(&e.mtime_ns.to_le_bytes());
    }
    b
}

/// Decodes a listing.
pub fn decode_list(mut b: &[u8]) -> io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (name, rest) = split_path(b)?;
        let nums = rest.get(..16).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short listing"))?;
        out.push(Listed {
            name: name.to_string(),
            size: u64::from_le_bytes(nums[..8].try_into().expect("8 bytes")),
            mtime_ns: u64::from_le_bytes(nums[8..].try_into().expect("8 bytes")),
        });
        b = &rest[16..];
    }
    Ok(out)
}

/// A `PUT` body's head: the key and whether to replace.
pub fn put_head(key: &Key, replace: bool) -> [u8; 33] {
    let mut h = [0u8; 33];
    h[..32].copy_from_slice(&key.0);
    h[32] = replace as u8;
    h
}

/// A `PUT_PARTS` body being written: the key, whether to replace, then the parts in order.
/// Bytes written one after another are one part.
pub struct PartsBody {
    body: Vec<u8>,
    count: u32,
    open_bytes: Option<usize>,
}

/// One part of a `PUT_PARTS` body as read: bytes of the body, or the span of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartRef {
    /// These bytes of the request's body.
    Bytes(std::ops::Range<usize>),
    /// The whole file whose descriptor came with the request at this index, as it was when
    /// the sender hashed it: the daemon reads it only while it is still so.
    File { fd: usize, stamp: FileStamp },
}

const PART_BYTES: u8 = 0;
const PART_FILE: u8 = 1;

impl PartsBody {
    pub fn new(key: &Key, replace: bool) -> PartsBody {
        let mut body = put_head(key, replace).to_vec();
        body.extend_from_slice(&0u32.to_le_bytes());
        PartsBody { body, count: 0, open_bytes: None }
    }

    /// Appends bytes to the object.
    pub fn bytes(&mut self, b: &[u8]) {
        let at = match self.open_bytes {
            Some(at) => at,
            None => {
                self.count += 1;
                self.body.push(PART_BYTES);
                self.body.extend_from_slice(&0u64.to_le_bytes());
                self.body.len() - 8
            }
        };
        self.open_bytes = Some(at);
        self.body.extend_from_slice(b);
        let len = (self.body.len() - at - 8) as u64;
        self.body[at..at + 8].copy_from_slice(&len.to_le_bytes());
    }

    /// Appends a whole file: the descriptor sent with the request at index `fd`.
    pub fn file(&mut self, fd: u8, stamp: &FileStamp) {
        self.open_bytes = None;
        self.count += 1;
        self.body.push(PART_FILE);
        self.body.push(fd);
        for w in [stamp.dev, stamp.ino, stamp.len] {
            self.body.extend_from_slice(&w.to_le_bytes());
        }
        self.body.extend_from_slice(&stamp.mtime_ns.to_le_bytes());
    }

    /// The body to send; with `then`, a small object (a manifest) the daemon commits under
    /// its key, replacing what is there, once this one is committed.
    pub fn finish(mut self, then: Option<(&Key, &[u8])>) -> Vec<u8> {
        self.body[33..37].copy_from_slice(&self.count.to_le_bytes());
        match then {
            None => self.body.push(0),
            Some((key, bytes)) => {
                self.body.push(1);
                self.body.extend_from_slice(&key.0);
                self.body.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                self.body.extend_from_slice(bytes);
            }
        }
        self.body
    }
}

/// A `PUT_PARTS` body as read.
#[derive(Debug)]
pub struct Parts {
    pub key: Key,
    pub replace: bool,
    pub parts: Vec<PartRef>,
    /// The object to commit afterwards, replacing (its key, and where its bytes are in the
    /// body).
    pub then: Option<(Key, std::ops::Range<usize>)>,
}

/// Reads a `PUT_PARTS` body.
pub fn parse_parts(body: &[u8]) -> io::Result<Parts> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "a malformed PUT_PARTS body");
    let take = |at: &mut usize, n: usize| -> io::Result<std::ops::Range<usize>> {
        let end = at.checked_add(n).filter(|e| *e <= body.len()).ok_or_else(bad)?;
        let r = *at..end;
        *at = end;
        Ok(r)
    };
    let u64_at = |r: std::ops::Range<usize>| u64::from_le_bytes(body[r].try_into().expect("8 bytes"));
    let mut at = 0;
    let key = Key(body[take(&mut at, 32)?].try_into().expect("32 bytes"));
    let replace = body[take(&mut at, 1)?.start] != 0;
    let count = u32::from_le_bytes(body[take(&mut at, 4)?].try_into().expect("4 bytes"));
    let mut parts = Vec::new();
    for _ in 0..count {
        match body[take(&mut at, 1)?.start] {
            PART_BYTES => {
                let len = usize::try_from(u64_at(take(&mut at, 8)?)).map_err(|_| bad())?;
                parts.push(PartRef::Bytes(take(&mut at, len)?));
            }
            PART_FILE => {
                let fd = body[take(&mut at, 1)?.start] as usize;
                let (dev, ino, len) = (u64_at(take(&mut at, 8)?), u64_at(take(&mut at, 8)?), u64_at(take(&mut at, 8)?));
                let mtime_ns = i128::from_le_bytes(body[take(&mut at, 16)?].try_into().expect("16 bytes"));
                parts.push(PartRef::File { fd, stamp: FileStamp { dev, ino, len, mtime_ns } });
            }
            _ => return Err(bad()),
        }
    }
    let then = match body[take(&mut at, 1)?.start] {
        0 => None,
        1 => {
            let key = Key(body[take(&mut at, 32)?].try_into().expect("32 bytes"));
            let len = usize::try_from(u64_at(take(&mut at, 8)?)).map_err(|_| bad())?;
            Some((key, take(&mut at, len)?))
        }
        _ => return Err(bad()),
    };
    if at != body.len() {
        return Err(bad());
    }
    Ok(Parts { key, replace, parts, then })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parts_body_reads_back_and_a_malformed_one_is_refused() {
        let key = Key::of_bytes(b"k");
        let stamp = FileStamp { dev: 1, ino: 2, len: 3, mtime_ns: -4 };
        let mut b = PartsBody::new(&key, true);
        b.bytes(b"ab");
        b.bytes(b"cd");
        b.file(5, &stamp);
        b.bytes(b"");
        b.bytes(b"e");
        let manifest = Key::of_bytes(b"m");
        let body = b.finish(Some((&manifest, b"the manifest")));
        let Parts { key: k, replace, parts, then } = parse_parts(&body).unwrap();
        assert_eq!((k, replace), (key, true));
        let (mk, at) = then.expect("a manifest after");
        assert_eq!((mk, &body[at]), (manifest, &b"the manifest"[..]));
        assert_eq!(parts.len(), 3, "bytes written one after another are one part: {parts:?}");
        assert!(matches!(&parts[0], PartRef::Bytes(r) if &body[r.clone()] == b"abcd"));
        assert_eq!(parts[1], PartRef::File { fd: 5, stamp });
        assert!(matches!(&parts[2], PartRef::Bytes(r) if &body[r.clone()] == b"e"));
        for cut in 0..body.len() {
            assert!(parse_parts(&body[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(parse_parts(&longer).is_err(), "trailing bytes");
        let mut unknown = PartsBody::new(&key, false);
        unknown.bytes(b"x");
        let mut unknown = unknown.finish(None);
        assert!(parse_parts(&unknown).unwrap().then.is_none());
        unknown[37] = 9;
        assert!(parse_parts(&unknown).is_err(), "an unknown kind of part");
    }

    #[test]
    fn frames_round_trip_and_a_bad_length_is_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Op::Append as u8, &[&path_prefix(".cairn/report").unwrap(), b".cairn/report", b"x\n"])
            .unwrap();
        let mut r = &buf[..];
        let (op, len) = read_head(&mut r).unwrap().unwrap();
        assert_eq!(Op::from_u8(op), Some(Op::Append));
        let body = read_body(&mut r, len).unwrap();
        assert_eq!(split_path(&body).unwrap(), (".cairn/report", &b"x\n"[..]));
        assert!(read_head(&mut r).unwrap().is_none(), "a clean end between frames");

        let mut huge = (MAX_FRAME + 1).to_le_bytes().to_vec();
        huge.push(1);
        assert_eq!(read_head(&mut &huge[..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(read_head(&mut &buf[..5]).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(read_body(&mut &b"ab"[..], 3).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn listings_and_errors_round_trip() {
        let l = vec![
            Listed { name: "a".repeat(64), size: 7, mtime_ns: 9 },
            Listed { name: "serde".into(), size: 0, mtime_ns: u64::MAX },
        ];
        assert_eq!(decode_list(&encode_list(&l)).unwrap(), l);
        assert!(decode_list(&encode_list(&l)[..10]).is_err());
        let e = parse_error(&error_body(libc::ENOENT, "no such object"));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(errno_of(&e), Some(libc::ENOENT));
        assert!(e.to_string().contains("no such object"));
    }

    #[test]
    fn a_long_socket_path_is_reached_through_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(120));
        std::fs::create_dir_all(&deep).unwrap();
        let path = socket_path(&deep);
        let (addr, fd) = addressable(&path).unwrap();
        assert!(fd.is_some() && addr.as_os_str().len() < 100, "{addr:?}");
        let listener = std::os::unix::net::UnixListener::bind(&addr).unwrap();
        assert!(path.exists(), "the socket is in the named folder");
        let _client = connect(&deep).unwrap();
        let _ = listener.accept().unwrap();
    }
}

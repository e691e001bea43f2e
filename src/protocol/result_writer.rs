//! Writing a result object as a stream: the outputs still in the files the tool wrote are read
//! a chunk at a time, through one buffer, straight into the door. A compile's megabytes are
//! never whole in memory, and never copied into a second buffer to be encoded; the object's
//! trailing checksum is taken as the bytes go by. Same bytes as the format in object.rs says.
//!
//! An output is read twice: once when its hash is taken (rustc/outputs.rs) and once here, or,
//! through the daemon's socket, by the daemon from the descriptor sent to it ([`parts`]:
//! the bytes then go from the page cache into the store once, not through this process and
//! the socket). In between nothing of the build runs (cargo waits for the wrapper), but
//! should the file have changed anyway, it is refused before anything is written when its
//! [`FileStamp`] differs, and the write fails when the bytes read differ in length.
//!
//! [`parts`]: ResultWriter::parts

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use super::object::{Body, CompileResult, FileStamp};
use super::wire::{self, PartsBody};
use crate::key::Key;

/// How much of an output is read at once, into a buffer on the stack (rustc/outputs.rs says
/// why).
const CHUNK: usize = 64 << 10;

/// A result ready to be written: its header encoded, its outputs open and checked.
pub struct ResultWriter<'a> {
    result: &'a CompileResult,
    header: Vec<u8>,
    /// For each output, its open file when its body is one.
    open: Vec<Option<File>>,
}

impl CompileResult {
    /// Opens the outputs still in their files and checks that each is as it was hashed.
    pub fn writer(&self) -> io::Result<ResultWriter<'_>> {
        let open = self
            .files
            .iter()
            .map(|f| match &f.body {
                Body::Bytes(_) => Ok(None),
                Body::File { path, stamp } => {
                    let file = File::open(path)?;
                    check(&file, stamp, &f.name)?;
                    Ok(Some(file))
                }
            })
            .collect::<io::Result<_>>()?;
        Ok(ResultWriter { result: self, header: self.header_bytes(), open })
    }
}

/// Fails when `file` is no longer what `stamp` says.
fn check(file: &File, stamp: &FileStamp, name: &str) -> io::Result<()> {
    if FileStamp::of(&file.metadata()?) != *stamp {
        return Err(io::Error::other(format!("{name} changed after it was hashed")));
    }
    Ok(())
}

impl ResultWriter<'_> {
    /// The object's length, checksum included.
    pub fn len(&self) -> u64 {
        let r = self.result;
        16 + self.header.len() as u64
            + r.files.iter().map(|f| f.body.len()).sum::<u64>()
            + r.stdout.len() as u64
            + r.stderr.len() as u64
            + 32
    }

    /// Whether the object is empty (never: it has at least its magic and checksum).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The object as a `PUT_PARTS` request for the daemon to put together: its bytes in
    /// memory, and each output still in its file as that file's descriptor and stamp. The
    /// daemon reads the outputs itself, checks they are still as stamped, and appends the
    /// checksum, so the bytes never pass through this process a second time nor through the
    /// socket. `then` (the manifest naming the result) rides along, for the daemon to commit
    /// once the result is. `None` when the outputs in files are more than one request carries
    /// descriptors ([`wire::MAX_FDS`]), or the bytes in memory more than it takes
    /// ([`wire::MAX_PARTS_BODY`]): then the object is streamed.
    pub fn parts(
        &self,
        key: &Key,
        replace: bool,
        then: Option<(&Key, &[u8])>,
    ) -> Option<(Vec<u8>, Vec<BorrowedFd<'_>>)> {
        let mut body = PartsBody::new(key, replace);
        let mut fds = Vec::new();
        body.bytes(CompileResult::magic());
        body.bytes(&(self.header.len() as u64).to_le_bytes());
        body.bytes(&self.header);
        for (f, open) in self.result.files.iter().zip(&self.open) {
            match (&f.body, open) {
                (Body::Bytes(b), _) => body.bytes(b),
                (Body::File { stamp, .. }, Some(file)) => {
                    if fds.len() == wire::MAX_FDS {
                        return None;
                    }
                    body.file(fds.len() as u8, stamp);
                    fds.push(file.as_fd());
                }
                (Body::File { .. }, None) => unreachable!("writer() opens every file body"),
            }
        }
        body.bytes(&self.result.stdout);
        body.bytes(&self.result.stderr);
        let body = body.finish(then);
        (body.len() as u64 <= wire::MAX_PARTS_BODY).then_some((body, fds))
    }

    /// Writes the object to `out`, exactly [`len`](Self::len) bytes on success. On an error
    /// some of it may have been written: the caller abandons what it was writing into.
    pub fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut w = Summed { out, hasher: blake3::Hasher::new() };
        w.write_all(CompileResult::magic())?;
        w.write_all(&(self.header.len() as u64).to_le_bytes())?;
        w.write_all(&self.header)?;
        let mut buf = [0u8; CHUNK];
        for (f, open) in self.result.files.iter().zip(&mut self.open) {
            match (&f.body, open) {
                (Body::Bytes(b), _) => w.write_all(b)?,
                (Body::File { stamp, .. }, Some(file)) => {
                    copy_exact(file, stamp.len, &mut buf, &mut w, &f.name)?;
                    check(file, stamp, &f.name)?;
                }
                (Body::File { .. }, None) => unreachable!("writer() opens every file body"),
            }
        }
        w.write_all(&self.result.stdout)?;
        w.write_all(&self.result.stderr)?;
        let sum = w.hasher.finalize();
        w.out.write_all(sum.as_bytes())
    }
}

/// Copies exactly `len` bytes of `file` (from where it is, its start) to `out`, and checks
/// there are no more.
fn copy_exact(file: &mut File, len: u64, buf: &mut [u8], out: &mut dyn Write, name: &str) -> io::Result<()> {
    let mut left = len;
    loop {
        let n = match file.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        if n as u64 > left {
            return Err(io::Error::other(format!("{name} grew after it was hashed")));
        }
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    if left != 0 {
        return Err(io::Error::other(format!("{name} shrank after it was hashed")));
    }
    Ok(())
}

/// A writer that hashes what goes through it.
struct Summed<'a> {
    out: &'a mut dyn Write,
    hasher: blake3::Hasher,
}

impl Write for Summed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::object::{EntryMeta, OutputFile};

    fn result(dir: &std::path::Path, body: &[u8]) -> CompileResult {
        let path = dir.join("libx.rlib");
        std::fs::write(&path, body).unwrap();
        let stamp = FileStamp::of(&std::fs::metadata(&path).unwrap());
        CompileResult {
            meta: EntryMeta { crate_name: "x".into(), ..EntryMeta::default() },
            files: vec![
                OutputFile {
                    name: "x.d".into(),
                    mode: 0o644,
                    hash: [1; 32],
                    body: Body::Bytes(b"x.d: x.rs\n".to_vec()),
                },
                OutputFile { name: "libx.rlib".into(), mode: 0o644, hash: [2; 32], body: Body::File { path, stamp } },
            ],
            stdout: b"out".to_vec(),
            stderr: b"err".to_vec(),
        }
    }

    #[test]
    fn a_streamed_object_is_the_object_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // Larger than one chunk, so the copy loops.
        let body: Vec<u8> = (0..CHUNK * 2 + 7).map(|i| (i % 251) as u8).collect();
        let streamed = result(dir.path(), &body);
        let mut in_memory = streamed.clone();
        in_memory.files[1].body = Body::Bytes(body.clone());
        let mut w = streamed.writer().unwrap();
        let mut out = Vec::new();
        w.write_to(&mut out).unwrap();
        assert_eq!(out.len() as u64, w.len());
        assert_eq!(out, in_memory.encode().unwrap());
        let v = CompileResult::decode(&out).unwrap();
        assert_eq!(v.files[1].bytes, &body[..]);
        assert_eq!((v.stdout, v.stderr), (&b"out"[..], &b"err"[..]));
    }

    #[test]
    fn an_output_changed_after_its_hash_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = result(dir.path(), b"first");
        std::fs::write(dir.path().join("libx.rlib"), b"second!").unwrap();
        let e = r.writer().err().expect("a changed output is refused before writing");
        assert!(e.to_string().contains("changed"), "{e}");
        // Replaced by another file of the same length: another inode (or mtime).
        let r = result(dir.path(), b"first");
        let p = dir.path().join("libx.rlib");
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"fir5t").unwrap();
        assert!(r.writer().is_err());
    }

    #[test]
    fn an_output_that_shrinks_while_written_fails_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let r = result(dir.path(), b"0123456789");
        let mut w = r.writer().unwrap();
        // Truncated in place after the check, as only a rogue writer could.
        std::fs::OpenOptions::new().write(true).open(dir.path().join("libx.rlib")).unwrap().set_len(4).unwrap();
        let mut out = Vec::new();
        let e = w.write_to(&mut out).unwrap_err();
        assert!(e.to_string().contains("shrank"), "{e}");
    }
}

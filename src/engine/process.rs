//! Running a tool on a miss (passing its output through while keeping a copy), and putting a
//! stored file back in place on a hit. Shared by every front end.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// What a compile did.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub took: Duration,
    pub started: SystemTime,
}

/// Runs a command, copying its stdout and stderr to ours as they come (cargo reads rustc's JSON
/// messages from stderr while the compile runs, to pipeline dependents) and keeping a copy of
/// each.
pub fn capture(mut cmd: Command) -> io::Result<Ran> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || tee(out, io::stdout()));
    let stderr = tee(err, io::stderr());
    let stdout = out_t.join().unwrap_or_default();
    let status = child.wait()?;
    Ok(Ran { status, stdout, stderr, took: t0.elapsed(), started })
}

fn tee(mut from: impl Read, mut to: impl Write) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = to.write_all(&buf[..n]);
                let _ = to.flush();
                kept.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    kept
}

/// A stored mode as it may be restored: permission bits only, never setuid, setgid or sticky
/// (an object from a shared bucket must not plant a setuid program), and never writable by
/// group or others (nor could they then change a program this user will run).
pub fn safe_mode(mode: u32) -> u32 {
    mode & 0o755
}

/// Replaces this process with `cmd` (the tool run without the cache); returns only if that
/// fails, with the exit code to use.
pub fn exec(cmd: &mut Command, who: &str) -> i32 {
    let err = cmd.exec();
    eprintln!("{who}: cannot run {:?}: {err}", cmd.get_program());
    127
}

/// Writes one restored file into `dir` atomically (temp name, then rename), with its mode
/// made safe ([`safe_mode`]).
pub fn restore_file(dir: &Path, name: &str, mode: u32, bytes: &[u8]) -> io::Result<()> {
    restore_with(dir, name, mode, &mut |f| f.write_all(bytes))
}

/// [`restore_file`] with the bytes copied from `len` bytes at `off` of `src`, file to file.
pub fn restore_file_from(dir: &Path, name: &str, mode: u32, src: &fs::File, off: u64, len: u64) -> io::Result<()> {
    restore_with(dir, name, mode, &mut |f| copy_range(src, off, len, f))
}

fn restore_with(
    dir: &Path,
    name: &str,
    mode: u32,
    fill: &mut dyn FnMut(&mut fs::File) -> io::Result<()>,
) -> io::Result<()> {
    if name.contains('/') || name.starts_with('.') {
        return Err(io::Error::other(format!("refusing odd output name {name:?}")));
    }
    let mode = safe_mode(mode);
    let tmp = dir.join(format!(".cairn-{}-{name}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        fill(&mut f)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        drop(f);
        fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Appends `len` bytes at `off` of `src` to `out`: `copy_file_range` (extents cloned where the
/// filesystem can, else copied in the kernel, with no buffer here), falling back to reading
/// and writing a chunk at a time where it is refused (another filesystem, the FUSE mount).
pub fn copy_range(src: &fs::File, off: u64, len: u64, out: &mut fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let (mut off_in, mut left) = (off as libc::loff_t, len);
    while left > 0 {
        // SAFETY: two open descriptors; the kernel reads the input at `off_in`, which it
        // advances, and writes at the output's own position.
        let n = unsafe {
            libc::copy_file_range(src.as_raw_fd(), &mut off_in, out.as_raw_fd(), std::ptr::null_mut(), left as usize, 0)
        };
        if n > 0 {
            left -= n as u64;
            continue;
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EXDEV) | Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
                let mut buf = [0u8; 64 << 10];
                while left > 0 {
                    let want = (left as usize).min(buf.len());
                    src.read_exact_at(&mut buf[..want], off_in as u64)?;
                    out.write_all(&buf[..want])?;
                    off_in += want as libc::loff_t;
                    left -= want as u64;
                }
            }
            Some(libc::EINTR) => {}
            _ => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_file_never_gets_setuid_or_group_write() {
        let d = tempfile::tempdir().unwrap();
        restore_file(d.path(), "prog", 0o6777, b"x").unwrap();
        let mode = fs::metadata(d.path().join("prog")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
    }

    #[test]
    fn a_file_is_restored_from_a_range_of_another() {
        let d = tempfile::tempdir().unwrap();
        let src: Vec<u8> = (0..300_000u32).map(|i| (i % 239) as u8).collect();
        fs::write(d.path().join("obj"), &src).unwrap();
        let obj = fs::File::open(d.path().join("obj")).unwrap();
        restore_file_from(d.path(), "lib.rlib", 0o644, &obj, 1000, 200_000).unwrap();
        assert_eq!(fs::read(d.path().join("lib.rlib")).unwrap(), &src[1000..201_000]);
        let e = restore_file_from(d.path(), "past", 0o644, &obj, 250_000, 100_000).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(!d.path().join("past").exists());
    }
}

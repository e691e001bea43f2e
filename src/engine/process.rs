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
    if name.contains('/') || name.starts_with('.') {
        return Err(io::Error::other(format!("refusing odd output name {name:?}")));
    }
    let mode = safe_mode(mode);
    let tmp = dir.join(format!(".cairn-{}-{name}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        drop(f);
        fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
}

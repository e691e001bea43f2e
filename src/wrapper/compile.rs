//! Running rustc on a miss (passing its output through while keeping a copy), finding what it
//! wrote, and putting a stored result back in place on a hit.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::protocol::object::OutputFile;

/// What a compile did.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub took: Duration,
    pub started: SystemTime,
}

/// Runs rustc, copying its stdout and stderr to ours as they come (cargo reads JSON messages
/// from stderr while the compile runs, to pipeline dependents) and keeping a copy of each.
pub fn run_and_capture(rustc: &Path, args: &[OsString]) -> io::Result<Ran> {
    let mut cmd = Command::new(rustc);
    cmd.args(args);
    capture(cmd)
}

/// Runs any command the same way: output passed through as it comes, and kept. Shared by the
/// build-script launcher and the C compiler front end.
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

/// Every file in `out_dir` that rustc wrote for this crate: `<crate><extra>` itself (a
/// binary), or names that start with `lib<crate><extra>.` or `<crate><extra>.`, modified since
/// the compile started.
pub fn collect_outputs(
    out_dir: &Path,
    crate_name: &str,
    extra: &str,
    since: SystemTime,
) -> io::Result<Vec<OutputFile>> {
    let bin = format!("{crate_name}{extra}");
    let stems = [format!("lib{bin}."), format!("{bin}.")];
    let mut files = Vec::new();
    for e in fs::read_dir(out_dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name != bin && !stems.iter().any(|s| name.starts_with(s.as_str())) {
            continue;
        }
        // cairn's own dependency list of the rlib (graph.rs) names this machine's paths.
        if name.ends_with(&format!(".{}", super::graph::EXT)) {
            continue;
        }
        let meta = e.metadata()?;
        // Allow for coarse timestamps: a file older than the compile's start by more than a
        // second is a leftover of an earlier build, not ours.
        if !meta.is_file() || meta.modified()? + Duration::from_secs(1) < since {
            continue;
        }
        let bytes = fs::read(e.path())?;
        let hash = *blake3::hash(&bytes).as_bytes();
        files.push(OutputFile { name, mode: meta.permissions().mode() & 0o7777, hash, bytes });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// A stored mode as it may be restored: permission bits only, never setuid, setgid or sticky
/// (an object from a shared bucket must not plant a setuid program), and never writable by
/// group or others (nor could they then change a program this user will run).
pub fn safe_mode(mode: u32) -> u32 {
    mode & 0o755
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

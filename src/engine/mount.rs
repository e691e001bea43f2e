//! Finding the cairn mount, starting the daemon when it is not there, and saying so once.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `statfs` magic of FUSE filesystems.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// The cache's base folder: `$XDG_CACHE_HOME/cairn` or `~/.cache/cairn`.
pub fn cache_base() -> Option<PathBuf> {
    crate::protocol::config::cache_base().ok()
}

/// Where the mount is: `CAIRN_MOUNT`, the config file's `mount`, or the default; the daemon
/// reads the same (`crate::protocol::config`).
pub fn mountpoint() -> Option<PathBuf> {
    crate::protocol::config::mountpoint().ok()
}

/// The local store folder: `CAIRN_STORE`, the config file's `store`, or the default (the
/// wrapper's log lives there).
pub fn store_dir() -> Option<PathBuf> {
    crate::protocol::config::store().ok()
}

/// What is at the mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Live,
    /// A FUSE mount whose daemon died (`ENOTCONN`).
    Dead,
    NotMounted,
}

/// One `statfs` call: cheap enough for every rustc invocation.
pub fn probe(mp: &Path) -> Probe {
    let Ok(c) = CString::new(mp.as_os_str().as_bytes()) else {
        return Probe::NotMounted;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and st a valid out-pointer.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    if r != 0 {
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOTCONN) => Probe::Dead,
            _ => Probe::NotMounted,
        };
    }
    if st.f_type as i64 == FUSE_SUPER_MAGIC {
        Probe::Live
    } else {
        Probe::NotMounted
    }
}

/// The mount, starting the daemon (`cairn start`) if it is not running, unless
/// `CAIRN_AUTOSTART=0`. Concurrent wrappers serialize on a lock so only one starts it.
pub fn find_or_start() -> Result<PathBuf, String> {
    let mp = crate::protocol::config::mountpoint().map_err(|e| e.to_string())?;
    if probe(&mp) == Probe::Live {
        return Ok(mp);
    }
    if std::env::var("CAIRN_AUTOSTART").as_deref() == Ok("0") {
        return Err(format!("no cairn mount at {} and CAIRN_AUTOSTART=0", mp.display()));
    }
    let base = cache_base().ok_or("no HOME: set CAIRN_MOUNT")?;
    std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(base.join("autostart.lock"))
        .map_err(|e| format!("autostart lock: {e}"))?;
    flock(&lock);
    // Someone else may have started it while we waited.
    if probe(&mp) == Probe::Live {
        return Ok(mp);
    }
    let cairn = daemon_binary();
    let mut child = Command::new(&cairn)
        .arg("start")
        .arg(&mp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} start: {e}", cairn.display()))?;
    // `cairn start` returns once the mount is ready (it waits on the daemon's readiness pipe).
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() || probe(&mp) != Probe::Live {
        let mut err = String::new();
        if let Some(mut s) = child.stderr.take() {
            let _ = io::Read::read_to_string(&mut s, &mut err);
        }
        return Err(format!("could not start the cairn daemon ({}): {}", status, err.trim()));
    }
    Ok(mp)
}

fn flock(f: &File) {
    // SAFETY: flock on an fd we own.
    unsafe {
        libc::flock(std::os::fd::AsRawFd::as_raw_fd(f), libc::LOCK_EX);
    }
}

/// `cairn` next to this executable, else on PATH.
fn daemon_binary() -> PathBuf {
    if let Ok(me) = std::env::current_exe() {
        let sibling = me.with_file_name("cairn");
        if sibling.is_file() {
            return sibling;
        }
    }
    PathBuf::from("cairn")
}

/// Prints `msg` once per build: the first wrapper of a cargo process (our parent) to get here
/// creates a marker file; the others stay quiet.
pub fn warn_once(msg: &str) {
    let ppid = std::os::unix::process::parent_id();
    let uid = unsafe { libc::getuid() };
    let marker = std::env::temp_dir().join(format!("cairn-rustc-warned-{uid}-{ppid}"));
    if OpenOptions::new().write(true).create_new(true).open(marker).is_ok() {
        eprintln!("warning: cairn: {msg}; compiling without the cache");
    }
}

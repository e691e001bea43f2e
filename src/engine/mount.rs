//! Where the cairn mount and store are, whether the mount is live, and a warning said once per
//! build. Choosing a door and starting the daemon is `door.rs`.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

/// The local store folder: `CAIRN_STORE` or the config file's `store`; else, when a mount is
/// named (`CAIRN_MOUNT`, `mount =`), the store of the daemon behind it (its socket is named
/// in `<mnt>/.cairn/socket`), so a build that names only its mount reaches that daemon's
/// socket and never another daemon's at the default store; else the default. The wrapper's
/// log lives there. Resolved once per process.
pub fn store_dir() -> Option<PathBuf> {
    static STORE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| {
            use crate::protocol::config;
            if let Ok(Some(s)) = config::named_store() {
                return Some(s);
            }
            if let Ok(Some(mp)) = config::named_mountpoint() {
                if let Some(s) = store_of_mount(&mp) {
                    return Some(s);
                }
            }
            config::store().ok()
        })
        .clone()
}

/// The store folder of the daemon serving the live mount at `mp`, from `<mp>/.cairn/socket`.
pub fn store_of_mount(mp: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(mp.join(".cairn/socket")).ok()?;
    let sock = Path::new(text.trim_end());
    if sock.file_name() != Some(std::ffi::OsStr::new(crate::protocol::wire::SOCKET_NAME)) {
        return None;
    }
    sock.parent().map(Path::to_path_buf)
}

/// The folder of the socket of the daemon that serves this build: [`store_dir`] when a daemon
/// answers there, else the one the live mount names.
pub fn daemon_store() -> Option<PathBuf> {
    let store = store_dir();
    if let Some(s) = &store {
        if crate::protocol::wire::connect(s).is_ok() {
            return store;
        }
    }
    mountpoint().and_then(|mp| store_of_mount(&mp)).or(store)
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

pub(super) fn flock(f: &File) {
    // SAFETY: flock on an fd we own.
    unsafe {
        libc::flock(std::os::fd::AsRawFd::as_raw_fd(f), libc::LOCK_EX);
    }
}

/// `cairn` next to this executable, else on PATH.
pub(super) fn daemon_binary() -> PathBuf {
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

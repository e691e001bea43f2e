//! Facts about mount points: is cairn mounted here, is a mount dead, and unmounting.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What is at a mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountState {
    /// Nothing is mounted there.
    NotMounted,
    /// A live cairn mount.
    Live,
    /// A cairn mount whose daemon is gone (`ENOTCONN`).
    Dead,
    /// Some other filesystem is mounted there.
    Other,
}

/// Finds `path` in /proc/self/mountinfo and tells whether it is a live cairn mount.
pub fn state(path: &Path) -> MountState {
    let path = absolute(path);
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return MountState::NotMounted;
    };
    // Field 5 is the mount point (octal-escaped); after " - " come fstype and source.
    let mut found = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mp) = fields.get(4) else { continue };
        if unescape(mp) != path.as_os_str().to_string_lossy() {
            continue;
        }
        let mut rest = line.split(" - ").nth(1).unwrap_or("").split(' ');
        let fstype = rest.next().unwrap_or("");
        let source = rest.next().unwrap_or("");
        // The last one wins: it is on top.
        found = Some(fstype.starts_with("fuse") && source == "cairn");
    }
    match found {
        None => MountState::NotMounted,
        Some(true) => match std::fs::metadata(&path) {
            Ok(_) => MountState::Live,
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => MountState::Dead,
            Err(_) => MountState::Dead,
        },
        Some(false) => MountState::Other,
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v as char);
            i += 4;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The absolute, symlink-free form of a path when it exists, else the path joined to the
/// current directory.
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| {
        if path.is_absolute() {
            path.to_owned()
        } else {
            std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_owned())
        }
    })
}

/// Unmounts with `fusermount3 -u` (lazily with `lazy`), falling back to umount(2) as root.
pub fn unmount(path: &Path, lazy: bool) -> io::Result<()> {
    let mut cmd = Command::new("fusermount3");
    cmd.arg(if lazy { "-uz" } else { "-u" }).arg(path);
    match cmd.output() {
        Ok(out) if out.status.success() => return Ok(()),
        Ok(out) => {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if !is_root() {
                return Err(io::Error::other(msg));
            }
        }
        Err(e) if !is_root() => return Err(io::Error::new(e.kind(), format!("running fusermount3: {e}"))),
        Err(_) => {}
    }
    let flags = if lazy { nix::mount::MntFlags::MNT_DETACH } else { nix::mount::MntFlags::empty() };
    nix::mount::umount2(path, flags).map_err(io::Error::from)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Why this process cannot mount a FUSE filesystem, in words and with the cause, or `None`
/// when it can try: the FUSE device must be there, be the FUSE device (a container may bind
/// `/dev/null` over it), open for reading and writing, and an ordinary user needs
/// `fusermount3`. What is left (the mount call itself may still be refused) shows when the
/// mount is made.
pub fn fuse_unusable() -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let dev = Path::new("/dev/fuse");
    let meta = match std::fs::metadata(dev) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Some("there is no /dev/fuse (a container or a build step without FUSE)".into())
        }
        Err(e) => return Some(format!("/dev/fuse cannot be examined: {e}")),
    };
    let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
    // The FUSE device is character device 10:229.
    if !meta.file_type().is_char_device() || (libc::major(rdev), libc::minor(rdev)) != (10, 229) {
        return Some("/dev/fuse is not the FUSE device (a container that hides FUSE)".into());
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(dev) {
        return Some(format!("/dev/fuse may not be opened by this user ({e})"));
    }
    if !is_root() && !on_path("fusermount3") {
        return Some("fusermount3 is not installed (apt-get install fuse3), and only root mounts without it".into());
    }
    None
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

//! The plain data the filesystem takes and gives: attributes, listings, open modes and results.
//! No behaviour; the FUSE adapter converts these to and from `fuser`'s types.

use std::ffi::OsString;
use std::fs::File;

/// What kind of node an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The root directory.
    Dir,
    /// A committed object or a temporary file.
    File,
    /// A link of the `by-crate/` view.
    Symlink,
}

/// Attributes of a node, in plain numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    /// 512-byte blocks, so `du` adds up object sizes.
    pub blocks: u64,
    /// Last use (objects) or last write (temporaries), ns since the epoch.
    pub atime_ns: u64,
    /// Same as `atime_ns`, so that `ls -l` shows the last-use time.
    pub mtime_ns: u64,
    /// Commit time (objects).
    pub ctime_ns: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Filesystem-wide numbers for `statfs` (`df`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStats {
    pub block_size: u32,
    pub blocks: u64,
    pub blocks_free: u64,
    pub files: u64,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: Kind,
    pub name: OsString,
}

/// A kernel entry to invalidate (an object that vanished without the kernel's knowledge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalidation {
    pub parent: u64,
    pub name: OsString,
}

/// A successful open.
#[derive(Debug)]
pub struct Opened {
    pub fh: u64,
    /// A duplicate of the file holding the bytes, for FUSE passthrough, when asked for and the
    /// store has one.
    pub backing: Option<File>,
    /// Whether the kernel may keep cached pages across opens (true for immutable objects).
    pub keep_cache: bool,
    /// Whether every read must come to the daemon (generated files such as stats.json).
    pub direct_io: bool,
}

/// Open flags the filesystem cares about, decoded by the adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenMode {
    pub write: bool,
    pub truncate: bool,
    pub append: bool,
    pub exclusive: bool,
}

/// Owner and options fixed at mount time.
#[derive(Clone, Debug)]
pub struct FsOptions {
    pub uid: u32,
    pub gid: u32,
    /// Hand the kernel backing files for passthrough.
    pub want_backing: bool,
}

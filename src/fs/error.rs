//! Filesystem errors and their one mapping to errno.
//!
//! Every errno the mount returns is chosen here, in one exhaustive `match`, and documented in
//! docs/mount.md. Store errors become filesystem errors in `From<StoreError>`.

use crate::store::StoreError;

/// Why a filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// No such object, temporary or inode.
    #[error("no such entry")]
    NotFound,
    /// A name that is neither a key nor a `.tmp` name, or an operation the namespace has no
    /// place for (directories, links, devices).
    #[error("invalid name")]
    InvalidName,
    /// Committed objects never change: no writes, truncation, renames or attribute changes.
    #[error("committed objects are immutable")]
    Immutable,
    /// The key already holds different bytes, or `RENAME_NOREPLACE` met an existing key.
    #[error("the key already exists")]
    Exists,
    /// A path component that is not a directory.
    #[error("not a directory")]
    NotDir,
    /// The temporary is still open for writing, or being committed (it cannot then be
    /// written, truncated, removed or renamed, nor replaced by a rename).
    #[error("the temporary file is still open for writing or being committed")]
    Busy,
    /// Not enough room: the disk is full, or evictable space is held by open readers.
    #[error("no space")]
    NoSpace,
    /// The object alone is larger than the cache limit.
    #[error("object larger than the cache limit")]
    TooLarge,
    /// Stored bytes failed their checksum; the object has been removed.
    #[error("object failed its checksum and was removed")]
    Corrupt,
    /// An unknown file handle.
    #[error("bad file handle")]
    BadHandle,
    /// Changing the read-only special folders (`by-crate/`, `.cairn/`).
    #[error("read-only folder")]
    ReadOnly,
    /// An operation the handle was not opened for.
    #[error("operation not permitted on this handle")]
    WrongMode,
    /// Another user (under `--allow-other`) tried to change the cache: only the mount's owner
    /// and root may commit, remove or rename objects, or use the control file.
    #[error("only the mount's owner may change the cache")]
    Denied,
    /// Any other I/O error from below, with its errno.
    #[error("i/o error (errno {0})")]
    Io(i32),
}

impl FsError {
    /// The errno the kernel passes to the caller.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::InvalidName => libc::EINVAL,
            FsError::Immutable => libc::EPERM,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::Busy => libc::EBUSY,
            FsError::NoSpace => libc::ENOSPC,
            FsError::TooLarge => libc::EFBIG,
            FsError::Corrupt => libc::EIO,
            FsError::BadHandle => libc::EBADF,
            FsError::WrongMode => libc::EBADF,
            FsError::ReadOnly => libc::EROFS,
            FsError::Denied => libc::EACCES,
            FsError::Io(errno) => *errno,
        }
    }
}

impl From<StoreError> for FsError {
    fn from(e: StoreError) -> FsError {
        match e {
            StoreError::Exists(_) => FsError::Exists,
            StoreError::TooLarge { .. } => FsError::TooLarge,
            StoreError::NoRoom { .. } => FsError::NoSpace,
            StoreError::Corrupt(_) => FsError::Corrupt,
            StoreError::Io { source, .. } => FsError::Io(source.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> FsError {
        FsError::Io(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

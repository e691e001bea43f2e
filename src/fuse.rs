//! The FUSE adapter: a thin translation between `fuser` and [`crate::fs::CacheFs`].
//!
//! Every callback has the same shape: decode the request, call the filesystem, reply or
//! `reply.error(e.errno())`, inside [`guard`], so a panic (a bug) costs one request, not a
//! worker thread. The only state kept here is what exists because of FUSE itself:
//! the passthrough backing ids, which must be shared by all open handles of one inode.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::fs::{is_special, Attr, CacheFs, FsError, Kind, OpenMode};
use crate::store::Store;

/// How long the kernel may cache entries and attributes. Short, so `ls -l` shows recent
/// last-use times; eviction and corruption are pushed to the kernel as invalidations anyway.
const TTL: Duration = Duration::from_secs(1);

/// Listings at least this long are followed by a `malloc_trim`.
const TRIM_AFTER_LISTING: usize = 10_000;

/// The special folders are generated on every request (`by-crate/` changes with every commit
/// and removal, `stats.json` with every compile), so the kernel must not cache them.
fn ttl(ino: u64) -> Duration {
    if is_special(ino) {
        Duration::ZERO
    } else {
        TTL
    }
}

/// Runs one callback. A panic in it is a bug, and must cost one request, not the mount: it is
/// logged, the reply (dropped while unwinding) answers the kernel `EIO`, and the worker thread
/// lives on to serve the next request. Without this, each panic ended a worker thread, and
/// after a few the mount hung.
fn guard(op: &'static str, f: impl FnOnce()) {
    if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            op,
            "bug: a panic while serving {op} ({what}); that request failed with EIO, the mount goes on"
        );
    }
}

/// The adapter. `S` is the store below the filesystem.
pub struct FuseAdapter<S: Store> {
    fs: Arc<CacheFs<S>>,
    want_passthrough: bool,
    passthrough: AtomicBool,
    backing: Mutex<Backing>,
}

#[derive(Default)]
struct Backing {
    by_ino: HashMap<u64, Weak<BackingId>>,
    by_fh: HashMap<u64, Arc<BackingId>>,
}

impl<S: Store> FuseAdapter<S> {
    /// Wraps a filesystem. With `want_passthrough`, reads and writes go straight to the
    /// store's files where the kernel allows it.
    pub fn new(fs: Arc<CacheFs<S>>, want_passthrough: bool) -> Self {
        FuseAdapter {
            fs,
            want_passthrough,
            passthrough: AtomicBool::new(false),
            backing: Mutex::new(Backing::default()),
        }
    }

    /// Whether the kernel accepted passthrough at init.
    pub fn passthrough_active(&self) -> bool {
        self.passthrough.load(Ordering::Relaxed)
    }

    /// Registers (or reuses) the backing file of `ino` for handle `fh`.
    fn backing_for(
        &self,
        ino: u64,
        fh: u64,
        file: std::fs::File,
        open_backing: impl FnOnce(&std::fs::File) -> std::io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        let mut b = self.backing.lock().unwrap_or_else(|p| p.into_inner());
        let id = match b.by_ino.get(&ino).and_then(Weak::upgrade) {
            Some(id) => id,
            None => match open_backing(&file) {
                Ok(id) => {
                    let id = Arc::new(id);
                    b.by_ino.insert(ino, Arc::downgrade(&id));
                    id
                }
                Err(e) => {
                    // Typically EPERM without CAP_SYS_ADMIN. Plain reads still work.
                    tracing::warn!("FUSE passthrough unavailable ({e}); serving reads through the daemon");
                    self.passthrough.store(false, Ordering::Relaxed);
                    return None;
                }
            },
        };
        b.by_fh.insert(fh, Arc::clone(&id));
        Some(id)
    }
}

fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn to_fuse(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: time(a.atime_ns),
        mtime: time(a.mtime_ns),
        ctime: time(a.ctime_ns),
        crtime: time(a.ctime_ns),
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
    }
}

fn errno(e: FsError) -> Errno {
    Errno::from_i32(e.errno())
}

fn open_mode(flags: i32) -> OpenMode {
    let acc = flags & libc::O_ACCMODE;
    OpenMode {
        write: acc == libc::O_WRONLY || acc == libc::O_RDWR,
        truncate: flags & libc::O_TRUNC != 0,
        append: flags & libc::O_APPEND != 0,
        exclusive: flags & libc::O_EXCL != 0,
    }
}

impl<S: Store> Filesystem for FuseAdapter<S> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if self.want_passthrough && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok() {
            // Passthrough needs a stacking depth; 1 means the store may not itself sit on a
            // FUSE or overlay filesystem that stacks further.
            if config.set_max_stack_depth(2).is_ok() {
                self.passthrough.store(true, Ordering::Relaxed);
            }
        }
        tracing::info!(passthrough = self.passthrough_active(), "FUSE session initialised");
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        guard("lookup", || match self.fs.lookup(parent.0, name) {
            Ok(a) => reply.entry(&ttl(a.ino), &to_fuse(&a), Generation(0)),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        guard("getattr", || match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&ttl(a.ino), &to_fuse(&a)),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        guard("setattr", || {
            let other = mode.is_some() || uid.is_some() || gid.is_some() || atime.is_some() || mtime.is_some();
            match self.fs.may_change(req.uid(), Some(ino.0)).and_then(|()| self.fs.setattr(ino.0, size, other)) {
                Ok(a) => reply.attr(&ttl(a.ino), &to_fuse(&a)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        guard("mknod", || {
            reply.error(errno(self.fs.refuse("mknod", name)));
        });
    }

    fn mkdir(&self, _req: &Request, _parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        guard("mkdir", || {
            reply.error(errno(self.fs.refuse("mkdir", name)));
        });
    }

    fn symlink(&self, _req: &Request, _parent: INodeNo, name: &OsStr, _target: &Path, reply: ReplyEntry) {
        guard("symlink", || {
            reply.error(errno(self.fs.refuse("symlink", name)));
        });
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        guard("link", || {
            reply.error(errno(FsError::Immutable));
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        guard("unlink", || match self.fs.may_change(req.uid(), None).and_then(|()| self.fs.unlink(parent.0, name)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        guard("rmdir", || {
            reply.error(errno(self.fs.rmdir(parent.0, name)));
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        guard("readlink", || match self.fs.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        guard("getxattr", || match self.fs.xattr(ino.0, name) {
            Ok(Some(v)) if size == 0 => reply.size(v.len() as u32),
            Ok(Some(v)) if v.len() <= size as usize => reply.data(&v),
            Ok(Some(_)) => reply.error(Errno::ERANGE),
            Ok(None) => reply.error(Errno::NO_XATTR),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        guard("listxattr", || match self.fs.xattrs(ino.0) {
            Ok(attrs) => {
                let mut names = Vec::new();
                for (n, _) in &attrs {
                    names.extend_from_slice(n.as_bytes());
                    names.push(0);
                }
                if size == 0 {
                    reply.size(names.len() as u32);
                } else if names.len() <= size as usize {
                    reply.data(&names);
                } else {
                    reply.error(Errno::ERANGE);
                }
            }
            Err(e) => reply.error(errno(e)),
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        guard("rename", || {
            if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
                reply.error(Errno::EINVAL);
                return;
            }
            let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
            let renamed = self.fs.may_change(req.uid(), None);
            match renamed.and_then(|()| self.fs.rename(parent.0, name, newparent.0, newname, noreplace)) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        guard("open", || {
            let mode = open_mode(flags.0);
            let allowed = if mode.write { self.fs.may_change(req.uid(), Some(ino.0)) } else { Ok(()) };
            match allowed.and_then(|()| self.fs.open(ino.0, mode)) {
                Ok(o) => {
                    // A read-only open has nothing to flush: spare the close its FLUSH round trip.
                    let noflush = if mode.write { FopenFlags::empty() } else { FopenFlags::FOPEN_NOFLUSH };
                    let flags = match (o.keep_cache, o.direct_io) {
                        (_, true) => FopenFlags::FOPEN_DIRECT_IO,
                        (true, false) => FopenFlags::FOPEN_KEEP_CACHE,
                        (false, false) => FopenFlags::empty(),
                    };
                    if let (true, Some(file)) = (self.passthrough_active(), o.backing) {
                        if let Some(id) = self.backing_for(ino.0, o.fh, file, |f| reply.open_backing(f)) {
                            // KEEP_CACHE is for the daemon's own page cache; with passthrough the
                            // backing file's cache serves reads, and the kernel rejects the mix.
                            reply.opened_passthrough(FileHandle(o.fh), noflush, &id);
                            return;
                        }
                    }
                    reply.opened(FileHandle(o.fh), flags | noflush);
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        guard("create", || {
            match self.fs.may_change(req.uid(), None).and_then(|()| self.fs.create(parent.0, name, open_mode(flags))) {
                Ok((a, o)) => {
                    let attr = to_fuse(&a);
                    if let (true, Some(file)) = (self.passthrough_active(), o.backing) {
                        if let Some(id) = self.backing_for(a.ino, o.fh, file, |f| reply.open_backing(f)) {
                            reply.created_passthrough(
                                &TTL,
                                &attr,
                                Generation(0),
                                FileHandle(o.fh),
                                FopenFlags::empty(),
                                &id,
                            );
                            return;
                        }
                    }
                    reply.created(&TTL, &attr, Generation(0), FileHandle(o.fh), FopenFlags::empty());
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        guard("read", || match self.fs.read(fh.into(), offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        guard("write", || match self.fs.write(fh.into(), offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock: LockOwner, reply: ReplyEmpty) {
        guard("flush", || {
            reply.ok();
        });
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        guard("fsync", || {
            reply.ok();
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        guard("release", || {
            let fh: u64 = fh.into();
            self.fs.release(fh);
            self.backing.lock().unwrap_or_else(|p| p.into_inner()).by_fh.remove(&fh);
            reply.ok();
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        guard("opendir", || match self.fs.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        });
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        guard("readdir", || {
            // A kernel readdir buffer holds about fifty entries; ask for a few more, not thousands.
            match self.fs.readdir(fh.into(), offset, 256) {
                Ok(entries) => {
                    for (next, e) in entries {
                        if reply.add(INodeNo(e.ino), next, file_type(e.kind), &e.name) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        guard("releasedir", || {
            let entries = self.fs.release_dir(fh.into());
            reply.ok();
            if entries >= TRIM_AFTER_LISTING {
                // Listing the whole mount allocates a few bytes per object for the listing and the
                // store's snapshot of its index; glibc keeps freed memory for reuse. Give it back,
                // so memory after an `ls -l` of a large cache settles near memory at rest.
                // SAFETY: malloc_trim only walks the allocator's own free lists.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        guard("statfs", || {
            let s = self.fs.statfs();
            reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_free,
                s.files,
                u64::MAX / 2,
                s.block_size,
                255,
                s.block_size,
            );
        });
    }
}

//! The daemon: opens the store, mounts the filesystem where FUSE can be used, serves its socket
//! in the store folder in every case, and runs until unmounted, stopped or signalled.
//!
//! Two doors into one `CacheFs`: the mount, and the socket (`socket.rs`) for wrappers where
//! FUSE cannot be used. Where it cannot (no `/dev/fuse`, one this user may not open, no
//! `fusermount3`, a refused mount), the daemon serves the socket alone and says why in its log
//! and in `cairn stats`.
//!
//! Threads: the FUSE workers (fuser's, one per core, each with its own cloned /dev/fuse fd);
//! the socket's listener and one per connection; one that turns evictions into kernel
//! invalidations (it must not run inside a FUSE request, where the kernel may hold the
//! directory lock the invalidation needs); one that reaps idle temporaries; one that waits for
//! SIGINT/SIGTERM and unmounts (without a mount, the main thread waits for them).

pub mod background;
pub mod mounts;
pub mod seeder;
pub mod socket;
pub mod state;

use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, INodeNo, MountOption, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};

use crate::config::MountConfig;
use crate::fs::{CacheFs, FsOptions, Invalidation};
use crate::fuse::FuseAdapter;
use crate::remote::s3::S3Remote;
use crate::store::disk::DiskStore;
use crate::store::tiered::{RemoteLabel, TieredStore};
use crate::store::{now_ns, Store};

/// How long an unopened temporary may sit untouched before it counts as abandoned.
pub const TEMP_MAX_IDLE: Duration = Duration::from_secs(600);

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("opening the store at {path}: {source}")]
    Store { path: String, source: crate::store::StoreError },
    #[error("{path} is already a live cairn mount")]
    AlreadyMounted { path: String },
    #[error("something other than cairn is mounted at {path}")]
    OtherMount { path: String },
    #[error("mounting at {path}: {source} (is fuse3 installed and /dev/fuse present? `cairn doctor` checks)")]
    Mount { path: String, source: io::Error },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("S3: {0}")]
    Remote(String),
    #[error("S3 signing: {0}")]
    Signing(#[from] crate::remote::sign::SignError),
}

/// Options that are about running, not about the cache.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Try FUSE passthrough for reads and writes.
    pub passthrough: bool,
    /// FUSE worker threads.
    pub threads: usize,
    /// Mount where FUSE can be used (false: serve the socket alone).
    pub fuse: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            passthrough: true,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8),
            fuse: true,
        }
    }
}

/// Mounts (where it can) and serves until unmounted or stopped, then persists the index.
/// `ready` is called once the daemon is usable: mounted, or its socket bound.
pub fn run(cfg: &MountConfig, opts: RunOptions, ready: impl FnOnce()) -> Result<(), DaemonError> {
    // Block the shutdown signals before any thread exists, so only the signal thread sees them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGHUP);
    signals.thread_block().map_err(io::Error::from)?;
    // Eight FUSE workers would each get a glibc malloc arena that keeps its peak; two arenas
    // hold the daemon's memory near its working set (issue #2's RSS goal).
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    raise_fd_limit();

    let why_no_mount = match opts.fuse {
        false => Some("FUSE is turned off here (--no-fuse or CAIRN_NO_FUSE)".to_string()),
        true => mounts::fuse_unusable(),
    };
    if why_no_mount.is_none() {
        prepare_mountpoint(&cfg.mountpoint)?;
    }
    let disk = open_store(cfg)?;
    let opts = Serve { run: opts, why_no_mount };
    match &cfg.s3 {
        None => serve(cfg, opts, Arc::new(disk), signals, ready),
        Some(s3) => {
            let remote = S3Remote::new(s3)
                .map_err(|e| DaemonError::Remote(e.explain(&s3.bucket, &s3.endpoint_label())))?
                .with_max_object(cfg.max_size);
            let label = RemoteLabel { bucket: s3.bucket.clone(), endpoint: s3.endpoint_label() };
            tracing::info!(bucket = %s3.bucket, endpoint = %label.endpoint, prefix = %s3.prefix, "S3 tier configured");
            let queue_dir = cfg.store.join(crate::store::disk::LAYOUT_VERSION);
            let hints: Option<crate::store::tiered::Hints> = match s3.prefetch {
                true => Some(Box::new(crate::protocol::object::prefetch_hints)),
                false => None,
            };
            let signer = match &s3.signing_key {
                Some(path) => Some(crate::remote::sign::Signer::from_file(path).map_err(DaemonError::Signing)?),
                None => None,
            };
            if s3.read_only {
                tracing::info!("S3 is read-only here: nothing is uploaded, and rm removes local copies only");
            }
            let options =
                crate::store::tiered::Options { label, hints, signer, read_only: s3.read_only, prefetch: s3.prefetch };
            let tiered = TieredStore::with_options(disk, remote, &queue_dir, options)
                .map_err(|source| DaemonError::Store { path: cfg.store.display().to_string(), source })?;
            serve(cfg, opts, Arc::new(tiered), signals, ready)
        }
    }
}

/// How to serve: the run options, and why not to mount when not.
struct Serve {
    run: RunOptions,
    why_no_mount: Option<String>,
}

/// Serves `store` through the mount (where it can) and the socket, until unmounted or stopped.
fn serve<S: Store>(
    cfg: &MountConfig,
    opts: Serve,
    store: Arc<S>,
    signals: SigSet,
    ready: impl FnOnce(),
) -> Result<(), DaemonError> {
    let mp = &cfg.mountpoint;
    let fs = Arc::new(CacheFs::new(
        Arc::clone(&store),
        FsOptions {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            // Stored files are handed out for FUSE passthrough, and to the socket's OPEN.
            want_backing: true,
        },
    ));
    state::load(&fs, &cfg.store);
    // Loading the index and the saved state leaves freed buffers behind; hand them back.
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
    let (inval_tx, inval_rx) = mpsc::channel::<Invalidation>();
    fs.set_invalidation_sink(inval_tx);

    // The socket first: bound while the store is locked, so a socket file already there is a
    // dead daemon's.
    let bound = socket::bind(&cfg.store, cfg.allow_other)?;
    let access = socket::Access { owner: nix::unistd::getuid().as_raw(), allow_other: cfg.allow_other };
    let mut why_no_mount = opts.why_no_mount;
    let session = match &why_no_mount {
        Some(_) => None,
        None => match mount(cfg, &opts.run, &fs) {
            Ok(s) => Some(s),
            Err(e) => {
                why_no_mount = Some(format!("mounting at {} failed: {e}", mp.display()));
                None
            }
        },
    };
    fs.set_doors(crate::stats::Doors {
        mount: session.as_ref().map(|_| mp.display().to_string()),
        socket: Some(bound.path.display().to_string()),
        why_no_mount: why_no_mount.clone(),
    });
    let u = store.usage();
    match &why_no_mount {
        None => {
            tracing::info!(mountpoint = %mp.display(), socket = %bound.path.display(), store = %cfg.store.display(), limit = u.limit, used = u.used, objects = u.objects, "mounted")
        }
        Some(why) => {
            tracing::warn!(socket = %bound.path.display(), store = %cfg.store.display(), limit = u.limit, used = u.used, objects = u.objects, "serving without a mount, through the socket only: {why}")
        }
    }
    let seeder = seeder::Seeder::start(Arc::clone(&fs))?;
    let exec = cfg.remote_exec.clone().map(|r| {
        tracing::info!(address = %r.address, instance = %r.instance, "compiles the cache misses may run on the remote execution engine");
        Arc::new(crate::reapi::exec::Executor::new(r))
    });
    let marker = cfg.store.join(crate::protocol::remote::CONFIGURED);
    let _ = if exec.is_some() { std::fs::write(&marker, b"") } else { std::fs::remove_file(&marker) };
    socket::serve(Arc::clone(&fs), Arc::clone(&seeder), exec, bound.listener.try_clone()?, access)?;

    let notifier = session.as_ref().map(Session::notifier);
    let inval_fs = Arc::clone(&fs);
    std::thread::Builder::new().name("invalidate".into()).spawn(move || {
        for inv in inval_rx {
            // Evictions by a read-through fetch come only this way: forget the key here too.
            inval_fs.forget_name(&inv.name);
            // ENOENT means the kernel had no such entry cached: nothing to do.
            if let Some(n) = &notifier {
                let _ = n.inval_entry(INodeNo(inv.parent), &inv.name);
            }
        }
    })?;
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let reap_fs = Arc::clone(&fs);
    let store_dir = cfg.store.clone();
    std::thread::Builder::new().name("reaper".into()).spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(Duration::from_secs(30)) {
            let n = reap_fs.reap_idle_temps(now_ns(), TEMP_MAX_IDLE);
            if n > 0 {
                tracing::info!(count = n, "removed abandoned temporary files");
            }
            state::save(&reap_fs, &store_dir);
        }
    })?;
    let result = match session {
        Some(mut session) => {
            let mut unmounter = session.unmount_callable();
            std::thread::Builder::new().name("signals".into()).spawn(move || {
                if let Ok(sig) = signals.wait() {
                    tracing::info!(signal = ?sig, "unmounting on signal");
                    if let Err(e) = unmounter.unmount() {
                        tracing::warn!("unmount on signal failed: {e}");
                    }
                }
            })?;
            ready();
            session.run()
        }
        None => {
            ready();
            match signals.wait() {
                Ok(sig) => tracing::info!(signal = ?sig, "stopping on signal"),
                Err(e) => tracing::warn!("waiting for signals failed ({e}); stopping"),
            }
            Ok(())
        }
    };
    // No new connections from here on; the socket file goes with `bound`.
    drop(bound);
    // Seed sets still to write go before the uploads drain.
    seeder.finish();
    drop(stop_tx);
    state::save(&fs, &cfg.store);
    drop(fs);
    if let Err(e) = store.persist() {
        tracing::warn!("could not write the index snapshot ({e}); the journal still has every change");
    }
    tracing::info!("stopped; index saved");
    result.map_err(DaemonError::Io)
}

/// Mounts `fs` at the mount point.
fn mount<S: Store>(cfg: &MountConfig, opts: &RunOptions, fs: &Arc<CacheFs<S>>) -> io::Result<Session<FuseAdapter<S>>> {
    let mut fuse_cfg = Config::default();
    fuse_cfg.mount_options =
        vec![MountOption::FSName("cairn".into()), MountOption::Subtype("cairn".into()), MountOption::NoAtime];
    if cfg.allow_other {
        fuse_cfg.acl = SessionACL::All;
    }
    fuse_cfg.n_threads = Some(opts.threads);
    fuse_cfg.clone_fd = true;
    let adapter = FuseAdapter::new(Arc::clone(fs), opts.passthrough);
    Session::new(adapter, &cfg.mountpoint, &fuse_cfg)
}

fn prepare_mountpoint(mp: &Path) -> Result<(), DaemonError> {
    match mounts::state(mp) {
        mounts::MountState::Live => return Err(DaemonError::AlreadyMounted { path: mp.display().to_string() }),
        mounts::MountState::Other => return Err(DaemonError::OtherMount { path: mp.display().to_string() }),
        mounts::MountState::Dead => {
            tracing::warn!(mountpoint = %mp.display(), "found a dead cairn mount (daemon killed?); unmounting it");
            mounts::unmount(mp, true)?;
        }
        mounts::MountState::NotMounted => {}
    }
    std::fs::create_dir_all(mp)?;
    Ok(())
}

/// Opens the store, waiting a little for a previous daemon that is still saving its index.
fn open_store(cfg: &MountConfig) -> Result<DiskStore, DaemonError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match DiskStore::open(&cfg.store, cfg.max_size) {
            Err(crate::store::StoreError::Io { source, .. })
                if source.raw_os_error() == Some(libc::EWOULDBLOCK) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(source) => return Err(DaemonError::Store { path: cfg.store.display().to_string(), source }),
            Ok(s) => return Ok(s),
        }
    }
}

/// Unmounts a cairn mount.
/// Lifts the soft limit on open descriptors to the hard one (at most 2^20): each wrapper's
/// `PUT_PARTS` hands over up to 64 output files at once, and one connection per wrapper runs
/// side by side with the store's own files. A limit that cannot be raised stays as it is.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit with a valid out-pointer and a value the kernel checks.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::debug!("could not raise the open-files limit: {}", io::Error::last_os_error());
            }
        }
    }
}

pub fn unmount(mp: &Path) -> Result<(), DaemonError> {
    match mounts::state(mp) {
        mounts::MountState::NotMounted => {
            Err(DaemonError::Io(io::Error::other(format!("nothing is mounted at {}", mp.display()))))
        }
        mounts::MountState::Other => Err(DaemonError::OtherMount { path: mp.display().to_string() }),
        mounts::MountState::Dead => Ok(mounts::unmount(mp, true)?),
        mounts::MountState::Live => Ok(mounts::unmount(mp, false)?),
    }
}

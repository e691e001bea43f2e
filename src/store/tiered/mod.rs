//! A local store in front of a shared remote: read-through on a local miss, write-back
//! uploads in the background, deletions that reach the bucket.
//!
//! - **Read-through**: when the local store lacks a key, the remote is asked; an object whose
//!   bytes do not match the checksum recorded with it is ignored (a miss). A found object is
//!   committed locally (it counts toward the LRU limit) and served from there. "Not in the
//!   bucket" is remembered for [`NEGATIVE_TTL`]; a commit on this mount clears it, so a key
//!   committed here is never hidden.
//! - **Write-back**: a commit returns at local speed; the upload is queued in a durable log
//!   ([`crate::remote::queue`]) and done by [`WORKERS`] background threads with jittered
//!   exponential backoff. A queued object is pinned so eviction cannot drop it before it is
//!   uploaded, within a budget ([`PIN_SHARE`] of the limit): past it, or while the bucket
//!   refuses uploads, objects are queued but evictable, so a remote that cannot take them never
//!   fills the local cache. After a crash, the queue is replayed at the next start.
//! - **Deletion**: `remove` deletes locally and queues the remote deletion (durably too); a
//!   deletion cancels a pending upload, and a key with a pending deletion is never fetched back.
//! - **One GET per key**: concurrent lookups of a key that is being fetched wait for that fetch
//!   instead of asking the bucket again.
//! - **Prefetch**: a fetched object may name others that will be wanted next (a manifest names
//!   the results last stored under it: [`Hints`]). Those are fetched by [`PREFETCHERS`] background
//!   threads at once, so a build pays one round trip per crate instead of two. A prefetched
//!   object is checked exactly like one fetched on demand.
//! - **Faults**: an unreachable remote is not asked again for [`DOWN_FOR`], so lookups of absent
//!   keys fail fast as misses and the mount works at local speed. Each kind of failure is
//!   logged once, in plain words, with the fix ([`RemoteError::explain`]), and stays visible in
//!   [`Store::remote_problem`] until a call succeeds. An upload the bucket refuses (403, 400,
//!   wrong region, no bucket) stops uploads for [`REFUSED_FOR`] and releases their pins.

// Layout: this file is the `Store` the filesystem sees and the set-up; `fetch.rs` is the read
// half (single flight, negative cache, streamed GETs, signature check, prefetch), `upload.rs`
// the write half (durable queue, workers, pins that give up), `health.rs` how the remote is
// doing (down, explained failures, the current problem).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod fetch;
mod health;
mod upload;

use fetch::Fetch;

use super::{Committed, ObjectMeta, ObjectRead, Store, StoreError, TempWrite, Usage};
use crate::key::Key;
use crate::remote::queue::{Queue, Work};
use crate::remote::sign::Signer;
use crate::remote::{Remote, RemoteError, RemoteErrorKind};

/// How long a lookup waits for another thread's fetch of the same key before it counts as a
/// miss. The remote's own timeouts end a stuck fetch sooner; this bounds a wait whatever it does.
pub const FETCH_WAIT: Duration = Duration::from_secs(60);
/// How long "not in the bucket" is believed.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Most "not in the bucket" answers remembered at once.
pub const MAX_NEGATIVE: usize = 10_000;
/// How long an unreachable remote is left alone.
pub const DOWN_FOR: Duration = Duration::from_secs(30);
/// Background upload/delete threads (bounded concurrency).
pub const WORKERS: usize = 4;
/// Pending uploads beyond which new ones are not queued (the remote cannot keep up).
pub const MAX_PENDING: u64 = 100_000;
/// Background threads that fetch hinted keys ahead of need.
pub const PREFETCHERS: usize = 16;
/// Hinted keys waiting beyond which new hints are dropped.
pub const MAX_PREFETCH_QUEUE: usize = 16_384;
/// The share of the local limit that objects waiting for upload may keep pinned (1/N).
pub const PIN_SHARE: u64 = 2;
/// How long uploads stop after the bucket refused one for a cause retrying cannot fix.
pub const REFUSED_FOR: Duration = Duration::from_secs(600);
/// How long a clean unmount waits for pending S3 work.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(120);

/// How the tiered store is set up.
#[derive(Default)]
pub struct Options {
    /// Names used in explanations.
    pub label: RemoteLabel,
    /// Finds, in a fetched object, the keys to prefetch.
    pub hints: Option<Hints>,
    /// Signs uploads, and takes from the bucket only objects signed with the same key.
    pub signer: Option<Signer>,
    /// Never writes the bucket: no uploads, and `rm` removes the local copy only.
    pub read_only: bool,
    /// Fetch the keys of a build set ahead of need ([`Store::prefetch`]); off, only `hints`
    /// (if any) start prefetches.
    pub prefetch: bool,
}

/// Names used in explanations.
#[derive(Debug, Clone, Default)]
pub struct RemoteLabel {
    pub bucket: String,
    pub endpoint: String,
}

/// Reads a fetched object's bytes and names the keys likely wanted next (empty for most).
pub type Hints = Box<dyn Fn(&[u8]) -> Vec<Key> + Send + Sync>;

struct Shared<L, R> {
    local: L,
    remote: R,
    label: RemoteLabel,
    read_only: bool,
    /// Whether build sets are prefetched.
    prefetch: bool,
    stop: AtomicBool,
    health: health::Health,
    fx: fetch::FetchSide,
    up: upload::UploadSide,
}

/// The two tiers as one [`Store`].
pub struct TieredStore<L: Store, R: Remote> {
    shared: Arc<Shared<L, R>>,
    workers: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<L: Store, R: Remote> TieredStore<L, R> {
    /// Puts `remote` behind `local`, with the durable queue in `queue_dir`; resumes the work an
    /// earlier daemon left pending and starts the workers.
    pub fn new(local: L, remote: R, queue_dir: &std::path::Path, label: RemoteLabel) -> Result<Self, StoreError> {
        Self::with_options(local, remote, queue_dir, Options { label, ..Options::default() })
    }

    /// As [`new`](Self::new), with every option.
    pub fn with_options(
        local: L,
        remote: R,
        queue_dir: &std::path::Path,
        options: Options,
    ) -> Result<Self, StoreError> {
        let Options { label, hints, signer, read_only, prefetch } = options;
        let prefetchers = if prefetch || hints.is_some() { PREFETCHERS } else { 0 };
        let queue = Queue::open(queue_dir).map_err(StoreError::io("opening the upload queue"))?;
        let shared = Arc::new(Shared {
            local,
            remote,
            label,
            read_only,
            prefetch,
            stop: AtomicBool::new(false),
            health: health::Health::new(),
            fx: fetch::FetchSide::new(hints, signer),
            up: upload::UploadSide::new(queue),
        });
        {
            let mut q = lock(&shared.up.queue);
            let pending: Vec<_> = q.iter().collect();
            for (seq, key, work) in pending {
                if work != Work::Upload || shared.read_only {
                    continue;
                }
                match shared.local.stat(&key) {
                    Ok(Some(meta)) => shared.pin_for_upload(&key, meta.size),
                    // Gone locally before it could be uploaded (a lost object): nothing to send.
                    _ => {
                        let _ = q.done(&key, seq);
                    }
                }
            }
        }
        let writers = if shared.read_only { 0 } else { WORKERS };
        let mut workers: Vec<JoinHandle<()>> = (0..writers)
            .map(|i| {
                let sh = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("remote-{i}"))
                    .spawn(move || sh.work())
                    .expect("spawning a thread")
            })
            .collect();
        {
            workers.extend((0..prefetchers).map(|i| {
                let sh = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("prefetch-{i}"))
                    .spawn(move || sh.prefetch_loop())
                    .expect("spawning a thread")
            }));
        }
        Ok(TieredStore { shared, workers })
    }

    /// The remote (for tests).
    pub fn remote(&self) -> &R {
        &self.shared.remote
    }

    /// Sets how long a lookup waits for another thread's fetch (tests; [`FETCH_WAIT`] otherwise).
    pub fn set_fetch_wait(&self, wait: Duration) {
        self.shared.fx.fetch_wait_ms.store(wait.as_millis() as u64, Ordering::Relaxed);
    }

    /// How many "not in the bucket" answers are remembered (for tests).
    pub fn negative_len(&self) -> usize {
        lock(&self.shared.fx.negative).len()
    }

    /// Threads now waiting for a GET another thread started (for tests).
    pub fn fetch_waiters(&self) -> u64 {
        self.shared.fx.waiting.load(Ordering::Relaxed)
    }

    /// The local store.
    pub fn local(&self) -> &L {
        &self.shared.local
    }

    /// Waits until no upload or deletion is pending, or `timeout` passes; returns whether the
    /// queue drained (for tests and a clean shutdown).
    pub fn drain(&self, timeout: Duration) -> bool {
        self.drain_while(timeout, || true)
    }

    /// As [`drain`](Self::drain), but gives up as soon as the remote is found down, or refuses
    /// uploads (waiting would change nothing).
    fn drain_unless_down(&self, timeout: Duration) -> bool {
        self.drain_while(timeout, || !self.shared.is_down() && !self.shared.uploads_refused())
    }

    fn drain_while(&self, timeout: Duration, go_on: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut q = lock(&self.shared.up.queue);
        while !q.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !go_on() {
                return false;
            }
            q = self
                .shared
                .up
                .wake
                .wait_timeout(q, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

impl<L: Store, R: Remote> Drop for TieredStore<L, R> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.up.wake.notify_all();
        {
            // Under the lock, so a prefetcher between its check and its wait cannot miss this.
            let _q = lock(&self.shared.fx.prefetch);
            self.shared.fx.prefetch_wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<L: Store, R: Remote> Store for TieredStore<L, R> {
    type Reader = L::Reader;
    type Temp = L::Temp;

    fn stat(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        if let Some(m) = self.shared.local.stat(key)? {
            return Ok(Some(m));
        }
        if self.shared.fetch(key)? != Fetch::Absent {
            return self.shared.local.stat(key);
        }
        Ok(None)
    }

    fn stat_local(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        self.shared.local.stat(key)
    }

    fn list(&self) -> Result<Vec<(Key, ObjectMeta)>, StoreError> {
        self.shared.local.list()
    }

    fn keys(&self) -> Result<Vec<Key>, StoreError> {
        self.shared.local.keys()
    }

    fn open(&self, key: &Key) -> Result<Option<L::Reader>, StoreError> {
        if let Some(r) = self.shared.local.open(key)? {
            return Ok(Some(r));
        }
        if self.shared.fetch(key)? != Fetch::Absent {
            return self.shared.local.open(key);
        }
        Ok(None)
    }

    fn create_temp(&self) -> Result<L::Temp, StoreError> {
        self.shared.local.create_temp()
    }

    fn commit(&self, temp: &L::Temp, key: &Key) -> Result<Committed, StoreError> {
        let sh = &self.shared;
        let outcome = sh.local.commit(temp, key)?;
        lock(&sh.fx.negative).remove(key);
        if sh.read_only {
            lock(&sh.fx.removed_here).remove(key);
            return Ok(outcome);
        }
        if let Committed::New { meta, .. } = &outcome {
            let mut q = lock(&sh.up.queue);
            if q.counts().0 >= MAX_PENDING {
                if !sh.up.said_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!("S3 cannot keep up: {MAX_PENDING} uploads are pending; new objects stay local only");
                }
            } else if let Err(e) = q.push(*key, Work::Upload) {
                tracing::warn!(%key, "could not queue the upload ({e}); the object stays local only");
            } else {
                sh.pin_for_upload(key, meta.size);
            }
            drop(q);
            sh.up.wake.notify_all();
        }
        Ok(outcome)
    }

    fn discard(&self, temp: &L::Temp) {
        self.shared.local.discard(temp)
    }

    fn remove(&self, key: &Key) -> Result<bool, StoreError> {
        let sh = &self.shared;
        let removed = sh.local.remove(key)?;
        if sh.read_only {
            // The bucket is not this machine's to change: forget the key here, for good.
            lock(&sh.fx.removed_here).insert(*key);
            if removed && !sh.up.said_read_only_rm.swap(true, Ordering::Relaxed) {
                tracing::warn!(%key, "read-only S3: rm removed the local copy only; the bucket keeps its \
                    copy until a writer removes it (this machine will not fetch it again until restarted)");
            }
            return Ok(removed);
        }
        if removed {
            let mut q = lock(&sh.up.queue);
            sh.release_pin(key);
            q.push(*key, Work::Delete).map_err(StoreError::io("queueing the remote deletion"))?;
            drop(q);
            sh.remember_absent(key);
            sh.up.wake.notify_all();
        }
        Ok(removed)
    }

    fn usage(&self) -> Usage {
        let (uploads, deletes) = lock(&self.shared.up.queue).counts();
        Usage {
            remote: true,
            uploads_pending: uploads,
            deletes_pending: deletes,
            uploads_failed: self.shared.up.uploads_failed.load(Ordering::Relaxed),
            uploads_skipped: self.shared.up.uploads_skipped.load(Ordering::Relaxed),
            unsigned_refused: self.shared.fx.unsigned_refused.load(Ordering::Relaxed),
            remote_read_only: self.shared.read_only,
            fetched: self.shared.fx.fetched_count.load(Ordering::Relaxed),
            prefetched: self.shared.fx.prefetched_count.load(Ordering::Relaxed),
            ..self.shared.local.usage()
        }
    }

    fn pin(&self, key: &Key) -> bool {
        self.shared.local.pin(key)
    }

    fn prefetch(&self, keys: Vec<Key>) {
        if self.shared.prefetch {
            self.shared.queue_prefetch(keys);
        }
    }

    fn set_eviction_sink(&self, sink: super::EvictionSink) {
        *lock(&self.shared.fx.eviction_sink) = Some(sink);
    }

    fn remote_problem(&self) -> Option<String> {
        self.shared.current_problem()
    }

    fn unpin(&self, key: &Key) {
        self.shared.local.unpin(key)
    }

    /// At a clean unmount: waits (up to [`SHUTDOWN_DRAIN`]) for pending uploads and deletions,
    /// so an ephemeral machine (a CI runner) does not take them with it; what is left stays in
    /// the durable queue for the next start.
    fn persist(&self) -> Result<(), StoreError> {
        let (up, del) = lock(&self.shared.up.queue).counts();
        if up + del > 0 && !self.shared.read_only {
            // One more chance, now: a remote that failed a while ago (and is being left alone)
            // may be back, and an ephemeral machine will not get another. If it fails again,
            // the drain ends at once instead of waiting out the whole time.
            *lock(&self.shared.health.down_until) = None;
            lock(&self.shared.up.retry_at).clear();
            self.shared.up.wake.notify_all();
            tracing::info!(uploads = up, deletions = del, "waiting for pending S3 work before exiting");
            if !self.drain_unless_down(SHUTDOWN_DRAIN) {
                let (up, del) = lock(&self.shared.up.queue).counts();
                tracing::warn!(uploads = up, deletions = del, "S3 work still pending; it resumes at the next mount");
            }
        }
        self.shared.local.persist()
    }
}

#[cfg(test)]
mod tests;

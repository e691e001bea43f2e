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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
pub const PREFETCHERS: usize = 4;
/// Hinted keys waiting beyond which new hints are dropped.
pub const MAX_PREFETCH_QUEUE: usize = 1024;
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
}

/// Names used in explanations.
#[derive(Debug, Clone, Default)]
pub struct RemoteLabel {
    pub bucket: String,
    pub endpoint: String,
}

/// What a fetch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// This call's GET brought the object in.
    Fetched,
    /// It was already local, or another thread's GET brought it in.
    Present,
    /// Not to be had (absent, remote down or failing, deletion pending): a miss.
    Absent,
}

/// Reads a fetched object's bytes and names the keys likely wanted next (empty for most).
pub type Hints = Box<dyn Fn(&[u8]) -> Vec<Key> + Send + Sync>;

struct Shared<L, R> {
    local: L,
    remote: R,
    label: RemoteLabel,
    hints: Option<Hints>,
    signer: Option<Signer>,
    read_only: bool,
    /// Keys removed on this read-only machine: never fetched back while the daemon runs.
    removed_here: Mutex<HashSet<Key>>,
    said_unsigned: AtomicBool,
    said_read_only_rm: AtomicBool,
    /// Objects refused because their signature is missing or wrong.
    unsigned_refused: AtomicU64,
    /// Told of evictions a fetch's commit caused.
    eviction_sink: Mutex<Option<super::EvictionSink>>,
    /// Keys whose GET is under way; waiters sleep on `fetched`.
    fetching: Mutex<HashSet<Key>>,
    fetched: Condvar,
    /// Threads waiting for another's fetch (for tests).
    waiting: AtomicU64,
    /// How long a lookup waits for another thread's fetch of the same key ([`FETCH_WAIT`]).
    fetch_wait_ms: AtomicU64,
    /// Hinted keys to fetch ahead of need; the prefetchers sleep on `prefetch_wake`.
    prefetch: Mutex<std::collections::VecDeque<Key>>,
    prefetch_wake: Condvar,
    fetched_count: AtomicU64,
    prefetched_count: AtomicU64,
    queue: Mutex<Queue>,
    /// Wakes the workers: new work, or shutdown.
    wake: Condvar,
    in_flight: Mutex<HashSet<Key>>,
    retry_at: Mutex<HashMap<Key, (Instant, u32)>>,
    negative: Mutex<HashMap<Key, Instant>>,
    down_until: Mutex<Option<Instant>>,
    explained: Mutex<HashSet<RemoteErrorKind>>,
    /// The latest failure, explained; cleared by a call that succeeds.
    problem: Mutex<Option<String>>,
    /// Objects this store pinned until they are uploaded, with their sizes, and the total.
    upload_pins: Mutex<(HashMap<Key, u64>, u64)>,
    /// Uploads stop until then: the bucket refused one.
    refused_until: Mutex<Option<Instant>>,
    said_refused: AtomicBool,
    said_behind: AtomicBool,
    /// Queued uploads whose object was evicted before it could be sent.
    uploads_skipped: AtomicU64,
    uploads_failed: AtomicU64,
    said_full: AtomicBool,
    stop: AtomicBool,
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
        let Options { label, hints, signer, read_only } = options;
        let queue = Queue::open(queue_dir).map_err(StoreError::io("opening the upload queue"))?;
        let shared = Arc::new(Shared {
            local,
            remote,
            label,
            hints,
            signer,
            read_only,
            removed_here: Mutex::new(HashSet::new()),
            said_unsigned: AtomicBool::new(false),
            said_read_only_rm: AtomicBool::new(false),
            unsigned_refused: AtomicU64::new(0),
            eviction_sink: Mutex::new(None),
            fetching: Mutex::new(HashSet::new()),
            fetched: Condvar::new(),
            waiting: AtomicU64::new(0),
            fetch_wait_ms: AtomicU64::new(FETCH_WAIT.as_millis() as u64),
            prefetch: Mutex::new(std::collections::VecDeque::new()),
            prefetch_wake: Condvar::new(),
            fetched_count: AtomicU64::new(0),
            prefetched_count: AtomicU64::new(0),
            queue: Mutex::new(queue),
            wake: Condvar::new(),
            in_flight: Mutex::new(HashSet::new()),
            retry_at: Mutex::new(HashMap::new()),
            negative: Mutex::new(HashMap::new()),
            down_until: Mutex::new(None),
            explained: Mutex::new(HashSet::new()),
            problem: Mutex::new(None),
            upload_pins: Mutex::new((HashMap::new(), 0)),
            refused_until: Mutex::new(None),
            said_refused: AtomicBool::new(false),
            said_behind: AtomicBool::new(false),
            uploads_skipped: AtomicU64::new(0),
            uploads_failed: AtomicU64::new(0),
            said_full: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        {
            let mut q = lock(&shared.queue);
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
        if shared.hints.is_some() {
            workers.extend((0..PREFETCHERS).map(|i| {
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
        self.shared.fetch_wait_ms.store(wait.as_millis() as u64, Ordering::Relaxed);
    }

    /// How many "not in the bucket" answers are remembered (for tests).
    pub fn negative_len(&self) -> usize {
        lock(&self.shared.negative).len()
    }

    /// Threads now waiting for a GET another thread started (for tests).
    pub fn fetch_waiters(&self) -> u64 {
        self.shared.waiting.load(Ordering::Relaxed)
    }

    /// The local store.
    pub fn local(&self) -> &L {
        &self.shared.local
    }

    /// Waits until no upload or deletion is pending, or `timeout` passes; returns whether the
    /// queue drained (for tests and a clean shutdown).
    pub fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut q = lock(&self.shared.queue);
        while !q.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            q = self
                .shared
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
        self.shared.wake.notify_all();
        {
            // Under the lock, so a prefetcher between its check and its wait cannot miss this.
            let _q = lock(&self.shared.prefetch);
            self.shared.prefetch_wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<L: Store, R: Remote> Shared<L, R> {
    fn is_down(&self) -> bool {
        lock(&self.down_until).is_some_and(|t| Instant::now() < t)
    }

    /// Logs a failure's explanation once per kind; an unreachable remote is left alone a while.
    fn note(&self, e: &RemoteError) {
        let text = e.explain(&self.label.bucket, &self.label.endpoint);
        *lock(&self.problem) = Some(text.clone());
        if lock(&self.explained).insert(e.kind) {
            tracing::warn!("{text}");
        } else {
            tracing::debug!("remote call failed: {e}");
        }
        if matches!(e.kind, RemoteErrorKind::Unreachable | RemoteErrorKind::Tls) {
            *lock(&self.down_until) = Some(Instant::now() + DOWN_FOR);
        }
    }

    /// Remembers that the bucket lacks `key`, for [`NEGATIVE_TTL`]. Expired answers are dropped
    /// whenever the map reaches [`MAX_NEGATIVE`], so a long build of many misses keeps it small.
    fn remember_absent(&self, key: &Key) {
        let mut neg = lock(&self.negative);
        if neg.len() >= MAX_NEGATIVE {
            neg.retain(|_, t| t.elapsed() < NEGATIVE_TTL);
            if neg.len() >= MAX_NEGATIVE {
                // All recent: forgetting one only costs a GET.
                neg.clear();
            }
        }
        neg.insert(*key, Instant::now());
    }

    /// A call succeeded: whatever was wrong is over.
    fn healthy(&self) {
        let mut p = lock(&self.problem);
        if p.take().is_some() {
            tracing::info!("S3 calls succeed again");
        }
    }

    fn uploads_refused(&self) -> bool {
        lock(&self.refused_until).is_some_and(|t| Instant::now() < t)
    }

    /// Pins `key` until its upload is done, if the budget allows and uploads are not refused;
    /// otherwise it stays queued but evictable.
    fn pin_for_upload(&self, key: &Key, size: u64) {
        if self.uploads_refused() {
            return;
        }
        let budget = self.local.usage().limit / PIN_SHARE;
        let mut pins = lock(&self.upload_pins);
        if pins.0.contains_key(key) {
            return;
        }
        if pins.1 + size > budget {
            if !self.said_behind.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "uploads to S3 are behind: objects waiting for upload already fill half of the local \
                     cache, so newer ones may be evicted before they reach the bucket"
                );
            }
            return;
        }
        if self.local.pin(key) {
            pins.0.insert(*key, size);
            pins.1 += size;
        }
    }

    /// Releases the upload pin of `key`, if this store holds one.
    fn release_pin(&self, key: &Key) {
        let mut pins = lock(&self.upload_pins);
        if let Some(size) = pins.0.remove(key) {
            pins.1 -= size;
            self.local.unpin(key);
        }
    }

    /// The bucket refused an upload for a cause retrying will not fix: uploads stop a while and
    /// every object waiting for one becomes evictable, so the local cache keeps its room.
    fn refuse_uploads(&self) {
        *lock(&self.refused_until) = Some(Instant::now() + REFUSED_FOR);
        let mut pins = lock(&self.upload_pins);
        for key in pins.0.keys() {
            self.local.unpin(key);
        }
        *pins = (HashMap::new(), 0);
        drop(pins);
        if !self.said_refused.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the bucket refuses uploads, so uploads stop for {} minutes: the local cache keeps \
                 working at local speed, and objects waiting for upload may be evicted before they \
                 reach the bucket",
                REFUSED_FOR.as_secs() / 60
            );
        }
    }

    /// Brings `key` from the remote into the local store. When another thread is already
    /// fetching it, waits for that one instead of asking again.
    fn fetch(&self, key: &Key) -> Result<Fetch, StoreError> {
        {
            let mut f = lock(&self.fetching);
            if f.contains(key) {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let deadline = Instant::now() + Duration::from_millis(self.fetch_wait_ms.load(Ordering::Relaxed));
                while f.contains(key) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        // The other fetch is stuck: this lookup is a miss, and the build goes on.
                        self.waiting.fetch_sub(1, Ordering::Relaxed);
                        tracing::debug!(%key, "gave up waiting for another thread's fetch");
                        return Ok(Fetch::Absent);
                    }
                    f = self.fetched.wait_timeout(f, left).unwrap_or_else(|p| p.into_inner()).0;
                }
                drop(f);
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                return Ok(if self.local.stat(key)?.is_some() { Fetch::Present } else { Fetch::Absent });
            }
            f.insert(*key);
        }
        let result = self.fetch_once(key);
        lock(&self.fetching).remove(key);
        self.fetched.notify_all();
        result
    }

    fn fetch_once(&self, key: &Key) -> Result<Fetch, StoreError> {
        if self.local.stat(key)?.is_some() {
            // Brought in by a fetch that finished between the caller's look and ours.
            return Ok(Fetch::Present);
        }
        if self.is_down() || lock(&self.queue).get(key) == Some(Work::Delete) || lock(&self.removed_here).contains(key)
        {
            return Ok(Fetch::Absent);
        }
        if lock(&self.negative).get(key).is_some_and(|t| t.elapsed() < NEGATIVE_TTL) {
            return Ok(Fetch::Absent);
        }
        let started = Instant::now();
        let temp = self.local.create_temp()?;
        let mut sink = Sink { temp: &temp, at: 0, hasher: blake3::Hasher::new(), head: Vec::new(), failed: None };
        let found = self.remote.get_into(key, &mut sink);
        let (at, sum, head, failed) = (sink.at, sink.hasher.finalize(), sink.head, sink.failed);
        let found = match found {
            Ok(Some(f)) => {
                self.healthy();
                f
            }
            Ok(None) => {
                self.local.discard(&temp);
                self.healthy();
                self.remember_absent(key);
                return Ok(Fetch::Absent);
            }
            Err(e) => {
                self.local.discard(&temp);
                if let Some(source) = failed {
                    // The local disk failed, not the remote.
                    return Err(StoreError::Io { context: "writing a fetched object", source });
                }
                self.note(&e);
                return Ok(Fetch::Absent);
            }
        };
        if found.checksum != Some(*sum.as_bytes()) {
            self.local.discard(&temp);
            tracing::warn!(%key, "the bucket's copy does not match its checksum; treating it as a miss");
            return Ok(Fetch::Absent);
        }
        if let Some(signer) = &self.signer {
            if !signer.verify(key, sum.as_bytes(), found.signature.as_ref()) {
                self.local.discard(&temp);
                self.unsigned_refused.fetch_add(1, Ordering::Relaxed);
                if !self.said_unsigned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%key, "an object in the bucket is not signed with this machine's signing key: \
                        it is ignored (a miss), as is every such object; only writers with the same key can \
                        fill this cache (docs/security.md)");
                }
                return Ok(Fetch::Absent);
            }
        }
        let got = started.elapsed();
        match self.local.commit(&temp, key) {
            Ok(committed) => {
                if let Committed::New { evicted, .. } = &committed {
                    if let Some(sink) = lock(&self.eviction_sink).as_ref() {
                        evicted.iter().for_each(sink);
                    }
                }
                tracing::debug!(%key, size = at, get_ms = got.as_millis() as u64,
                    stored_ms = (started.elapsed() - got).as_millis() as u64, "fetched from the bucket");
                self.fetched_count.fetch_add(1, Ordering::Relaxed);
                if let Some(hints) = &self.hints {
                    if at as usize == head.len() {
                        self.queue_prefetch(hints(&head));
                    }
                }
                Ok(Fetch::Fetched)
            }
            Err(e) => {
                self.local.discard(&temp);
                Err(e)
            }
        }
    }

    /// Queues hinted keys for the prefetchers. Keys already local or on their way cost a
    /// prefetcher a local look (or a wait), never a second GET: [`fetch`](Self::fetch) sees to it.
    fn queue_prefetch(&self, keys: Vec<Key>) {
        if keys.is_empty() {
            return;
        }
        let mut q = lock(&self.prefetch);
        for k in keys {
            if q.len() < MAX_PREFETCH_QUEUE && !q.contains(&k) {
                q.push_back(k);
            }
        }
        self.prefetch_wake.notify_all();
    }

    /// A prefetcher: fetches queued hints until the store is dropped.
    fn prefetch_loop(&self) {
        loop {
            let key = {
                let mut q = lock(&self.prefetch);
                loop {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(k) = q.pop_front() {
                        break k;
                    }
                    q = self.prefetch_wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            match self.fetch(&key) {
                // Counted only when this thread's GET brought it in.
                Ok(Fetch::Fetched) => {
                    self.prefetched_count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(%key, "prefetch failed: {e}"),
            }
        }
    }

    /// The next work item ready to run (with its number in the queue), marked in flight.
    fn next(&self) -> Option<(u64, Key, Work)> {
        let q = lock(&self.queue);
        let mut in_flight = lock(&self.in_flight);
        let retry = lock(&self.retry_at);
        let now = Instant::now();
        let refused = self.uploads_refused();
        let item = q.iter().find(|(_, k, w)| {
            let held = refused && *w == Work::Upload;
            !held && !in_flight.contains(k) && retry.get(k).is_none_or(|(t, _)| *t <= now)
        })?;
        in_flight.insert(item.1);
        Some(item)
    }

    fn work(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            let item = if self.is_down() { None } else { self.next() };
            let Some((seq, key, work)) = item else {
                let q = lock(&self.queue);
                let _ = self.wake.wait_timeout(q, Duration::from_millis(250));
                continue;
            };
            let result = match work {
                Work::Upload => self.upload(&key),
                Work::Delete => self.remote.delete(&key).map(|()| self.healthy()),
            };
            match result {
                Ok(()) => {
                    lock(&self.retry_at).remove(&key);
                    // Unpin under the queue lock (queue, then store: the order commit and remove
                    // use), so no one sees an empty queue while the object is still pinned.
                    let mut q = lock(&self.queue);
                    if q.done(&key, seq).unwrap_or(false) && work == Work::Upload {
                        self.release_pin(&key);
                    }
                }
                Err(e) => {
                    self.note(&e);
                    if work == Work::Upload {
                        self.uploads_failed.fetch_add(1, Ordering::Relaxed);
                        if refused_for_good(&e) {
                            self.refuse_uploads();
                        }
                    }
                    let mut retry = lock(&self.retry_at);
                    let tries = retry.get(&key).map(|(_, n)| n + 1).unwrap_or(1);
                    retry.insert(key, (Instant::now() + backoff(tries, &key), tries));
                }
            }
            lock(&self.in_flight).remove(&key);
            self.wake.notify_all();
        }
    }

    fn upload(&self, key: &Key) -> Result<(), RemoteError> {
        let (meta, reader) = match (self.local.stat(key), self.local.open(key)) {
            (Ok(Some(m)), Ok(Some(r))) => (m, r),
            // Gone locally (evicted before its turn, or found corrupt): nothing to upload.
            _ => {
                self.uploads_skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        let mut bytes = Vec::with_capacity(meta.size as usize);
        while (bytes.len() as u64) < meta.size {
            let chunk = reader
                .read_at(bytes.len() as u64, (meta.size - bytes.len() as u64).min(8 << 20) as u32)
                .map_err(|e| RemoteError::new(RemoteErrorKind::Other, format!("reading the local copy: {e}")))?;
            if chunk.is_empty() {
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        let signature = self.signer.as_ref().map(|s| s.sign(key, &meta.checksum));
        self.remote.put(key, &bytes, &meta.checksum, signature.as_ref())?;
        self.healthy();
        Ok(())
    }
}

/// Whether an upload failed for a cause that retrying cannot fix (credentials, policy, region,
/// bucket): someone has to change the configuration.
fn refused_for_good(e: &RemoteError) -> bool {
    matches!(
        e.kind,
        RemoteErrorKind::Denied
            | RemoteErrorKind::BadRequest
            | RemoteErrorKind::WrongRegion
            | RemoteErrorKind::NoBucket
            | RemoteErrorKind::NoCredentials
    )
}

/// Objects up to this size are kept in memory while fetched, for the hints they may carry
/// (manifests are a few KiB); larger ones are only streamed to disk.
const HINT_HEAD: usize = 1 << 20;

/// Where a fetched object's bytes go as they arrive: a temporary of the local store, hashed on
/// the way, with the first [`HINT_HEAD`] bytes kept for the hints.
struct Sink<'a, T: TempWrite> {
    temp: &'a T,
    at: u64,
    hasher: blake3::Hasher,
    head: Vec<u8>,
    /// The local write that failed, to tell it from a remote failure.
    failed: Option<std::io::Error>,
}

impl<T: TempWrite> std::io::Write for Sink<'_, T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Err(e) = self.temp.write_at(self.at, buf) {
            let out = std::io::Error::new(e.kind(), e.to_string());
            self.failed = Some(e);
            return Err(out);
        }
        self.at += buf.len() as u64;
        self.hasher.update(buf);
        if self.head.len() + buf.len() <= HINT_HEAD && self.head.len() as u64 + buf.len() as u64 == self.at {
            self.head.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// 0.2 s, 0.4 s … up to 60 s, with ±50 % jitter derived from the key (no RNG needed).
fn backoff(tries: u32, key: &Key) -> Duration {
    let base = 200u64.saturating_mul(1 << tries.min(9)).min(60_000);
    let jitter = (key.0[0] as u64 * 256 + key.0[1] as u64 + tries as u64 * 7919) % 1000;
    Duration::from_millis(base / 2 + base * jitter / 1000)
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
        lock(&sh.negative).remove(key);
        if sh.read_only {
            lock(&sh.removed_here).remove(key);
            return Ok(outcome);
        }
        if let Committed::New { meta, .. } = &outcome {
            let mut q = lock(&sh.queue);
            if q.counts().0 >= MAX_PENDING {
                if !sh.said_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!("S3 cannot keep up: {MAX_PENDING} uploads are pending; new objects stay local only");
                }
            } else if let Err(e) = q.push(*key, Work::Upload) {
                tracing::warn!(%key, "could not queue the upload ({e}); the object stays local only");
            } else {
                sh.pin_for_upload(key, meta.size);
            }
            drop(q);
            sh.wake.notify_all();
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
            lock(&sh.removed_here).insert(*key);
            if removed && !sh.said_read_only_rm.swap(true, Ordering::Relaxed) {
                tracing::warn!(%key, "read-only S3: rm removed the local copy only; the bucket keeps its \
                    copy until a writer removes it (this machine will not fetch it again until restarted)");
            }
            return Ok(removed);
        }
        if removed {
            let mut q = lock(&sh.queue);
            sh.release_pin(key);
            q.push(*key, Work::Delete).map_err(StoreError::io("queueing the remote deletion"))?;
            drop(q);
            sh.remember_absent(key);
            sh.wake.notify_all();
        }
        Ok(removed)
    }

    fn usage(&self) -> Usage {
        let (uploads, deletes) = lock(&self.shared.queue).counts();
        Usage {
            remote: true,
            uploads_pending: uploads,
            deletes_pending: deletes,
            uploads_failed: self.shared.uploads_failed.load(Ordering::Relaxed),
            uploads_skipped: self.shared.uploads_skipped.load(Ordering::Relaxed),
            unsigned_refused: self.shared.unsigned_refused.load(Ordering::Relaxed),
            remote_read_only: self.shared.read_only,
            fetched: self.shared.fetched_count.load(Ordering::Relaxed),
            prefetched: self.shared.prefetched_count.load(Ordering::Relaxed),
            ..self.shared.local.usage()
        }
    }

    fn pin(&self, key: &Key) -> bool {
        self.shared.local.pin(key)
    }

    fn set_eviction_sink(&self, sink: super::EvictionSink) {
        *lock(&self.shared.eviction_sink) = Some(sink);
    }

    fn remote_problem(&self) -> Option<String> {
        lock(&self.shared.problem).clone()
    }

    fn unpin(&self, key: &Key) {
        self.shared.local.unpin(key)
    }

    /// At a clean unmount: waits (up to [`SHUTDOWN_DRAIN`]) for pending uploads and deletions,
    /// so an ephemeral machine (a CI runner) does not take them with it; what is left stays in
    /// the durable queue for the next start.
    fn persist(&self) -> Result<(), StoreError> {
        let (up, del) = lock(&self.shared.queue).counts();
        if up + del > 0 && !self.shared.is_down() && !self.shared.read_only {
            tracing::info!(uploads = up, deletions = del, "waiting for pending S3 work before exiting");
            if !self.drain(SHUTDOWN_DRAIN) {
                let (up, del) = lock(&self.shared.queue).counts();
                tracing::warn!(uploads = up, deletions = del, "S3 work still pending; it resumes at the next mount");
            }
        }
        self.shared.local.persist()
    }
}

#[cfg(test)]
#[path = "tiered_tests.rs"]
mod tests;

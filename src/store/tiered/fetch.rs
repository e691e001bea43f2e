//! The fetch half of the tiered store: bringing an object from the bucket into the local store
//! on a miss. One GET per key at a time (others wait, up to [`FETCH_WAIT`]); "not in the
//! bucket" remembered for [`NEGATIVE_TTL`], within [`MAX_NEGATIVE`]; bodies streamed to a
//! temporary of the local store and hashed on the way (memory stays bounded); the checksum and,
//! with a signing key, the signature checked before the object is committed; hinted keys
//! prefetched by background threads.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;

/// Keys waiting for a prefetcher, in order, without duplicates.
#[derive(Default)]
pub(super) struct PrefetchQueue {
    order: std::collections::VecDeque<Key>,
    queued: HashSet<Key>,
}

/// What the fetch half keeps.
pub(super) struct FetchSide {
    pub(super) hints: Option<Hints>,
    pub(super) signer: Option<Signer>,
    /// Keys removed on this read-only machine: never fetched back while the daemon runs.
    pub(super) removed_here: Mutex<HashSet<Key>>,
    pub(super) said_unsigned: AtomicBool,
    /// Objects refused because their signature is missing or wrong.
    pub(super) unsigned_refused: AtomicU64,
    /// Told of evictions a fetch's commit caused.
    pub(super) eviction_sink: Mutex<Option<crate::store::EvictionSink>>,
    /// Keys whose GET is under way; waiters sleep on `fetched`.
    pub(super) fetching: Mutex<HashSet<Key>>,
    pub(super) fetched: Condvar,
    /// Threads waiting for another's fetch (for tests).
    pub(super) waiting: AtomicU64,
    /// How long a lookup waits for another thread's fetch of the same key ([`FETCH_WAIT`]).
    pub(super) fetch_wait_ms: AtomicU64,
    /// Hinted keys to fetch ahead of need; the prefetchers sleep on `prefetch_wake`.
    pub(super) prefetch: Mutex<PrefetchQueue>,
    pub(super) prefetch_wake: Condvar,
    pub(super) fetched_count: AtomicU64,
    pub(super) prefetched_count: AtomicU64,
    pub(super) negative: Mutex<HashMap<Key, Instant>>,
}

impl FetchSide {
    pub(super) fn new(hints: Option<Hints>, signer: Option<Signer>) -> FetchSide {
        FetchSide {
            hints,
            signer,
            removed_here: Mutex::new(HashSet::new()),
            said_unsigned: AtomicBool::new(false),
            unsigned_refused: AtomicU64::new(0),
            eviction_sink: Mutex::new(None),
            fetching: Mutex::new(HashSet::new()),
            fetched: Condvar::new(),
            waiting: AtomicU64::new(0),
            fetch_wait_ms: AtomicU64::new(FETCH_WAIT.as_millis() as u64),
            prefetch: Mutex::new(PrefetchQueue::default()),
            prefetch_wake: Condvar::new(),
            fetched_count: AtomicU64::new(0),
            prefetched_count: AtomicU64::new(0),
            negative: Mutex::new(HashMap::new()),
        }
    }
}

/// What a fetch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fetch {
    /// This call's GET brought the object in.
    Fetched,
    /// It was already local, or another thread's GET brought it in.
    Present,
    /// Not to be had (absent, remote down or failing, deletion pending): a miss.
    Absent,
}

/// Objects up to this size are kept in memory while fetched, for the hints they may carry
/// (manifests are a few KiB); larger ones are only streamed to disk.
pub(super) const HINT_HEAD: usize = 1 << 20;

/// Where a fetched object's bytes go as they arrive: a temporary of the local store, hashed on
/// the way, with the first [`HINT_HEAD`] bytes kept for the hints.
pub(super) struct Sink<'a, T: TempWrite> {
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

impl<L: Store, R: Remote> Shared<L, R> {
    /// Remembers that the bucket lacks `key`, for [`NEGATIVE_TTL`]. Expired answers are dropped
    /// whenever the map reaches [`MAX_NEGATIVE`], so a long build of many misses keeps it small.
    pub(super) fn remember_absent(&self, key: &Key) {
        let mut neg = lock(&self.fx.negative);
        if neg.len() >= MAX_NEGATIVE {
            neg.retain(|_, t| t.elapsed() < NEGATIVE_TTL);
            if neg.len() >= MAX_NEGATIVE {
                // All recent: forgetting one only costs a GET.
                neg.clear();
            }
        }
        neg.insert(*key, Instant::now());
    }

    /// Brings `key` from the remote into the local store. When another thread is already
    /// fetching it, waits for that one instead of asking again.
    pub(super) fn fetch(&self, key: &Key) -> Result<Fetch, StoreError> {
        {
            let mut f = lock(&self.fx.fetching);
            if f.contains(key) {
                self.fx.waiting.fetch_add(1, Ordering::Relaxed);
                let deadline = Instant::now() + Duration::from_millis(self.fx.fetch_wait_ms.load(Ordering::Relaxed));
                while f.contains(key) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        // The other fetch is stuck: this lookup is a miss, and the build goes on.
                        self.fx.waiting.fetch_sub(1, Ordering::Relaxed);
                        tracing::debug!(%key, "gave up waiting for another thread's fetch");
                        return Ok(Fetch::Absent);
                    }
                    f = self.fx.fetched.wait_timeout(f, left).unwrap_or_else(|p| p.into_inner()).0;
                }
                drop(f);
                self.fx.waiting.fetch_sub(1, Ordering::Relaxed);
                return Ok(if self.local.stat(key)?.is_some() { Fetch::Present } else { Fetch::Absent });
            }
            f.insert(*key);
        }
        let result = self.fetch_once(key);
        lock(&self.fx.fetching).remove(key);
        self.fx.fetched.notify_all();
        result
    }

    pub(super) fn fetch_once(&self, key: &Key) -> Result<Fetch, StoreError> {
        if self.local.stat(key)?.is_some() {
            // Brought in by a fetch that finished between the caller's look and ours.
            return Ok(Fetch::Present);
        }
        if self.is_down()
            || lock(&self.up.queue).get(key) == Some(Work::Delete)
            || lock(&self.fx.removed_here).contains(key)
        {
            return Ok(Fetch::Absent);
        }
        if lock(&self.fx.negative).get(key).is_some_and(|t| t.elapsed() < NEGATIVE_TTL) {
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
        if let Some(signer) = &self.fx.signer {
            if !signer.verify(key, sum.as_bytes(), found.signature.as_ref()) {
                self.local.discard(&temp);
                self.fx.unsigned_refused.fetch_add(1, Ordering::Relaxed);
                if !self.fx.said_unsigned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%key, "an object in the bucket is not signed with this machine's signing key: \
                        it is ignored (a miss), as is every such object; only writers with the same key can \
                        fill this cache (docs/security.md)");
                }
                return Ok(Fetch::Absent);
            }
        }
        let got = started.elapsed();
        match self.local.commit_hashed(&temp, key, *sum.as_bytes()) {
            Ok(committed) => {
                if let Committed::New { evicted, .. } = &committed {
                    if let Some(sink) = lock(&self.fx.eviction_sink).as_ref() {
                        evicted.iter().for_each(sink);
                    }
                }
                tracing::debug!(%key, size = at, get_ms = got.as_millis() as u64,
                    stored_ms = (started.elapsed() - got).as_millis() as u64, "fetched from the bucket");
                self.fx.fetched_count.fetch_add(1, Ordering::Relaxed);
                if let Some(hints) = &self.fx.hints {
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
    pub(super) fn queue_prefetch(&self, keys: Vec<Key>) {
        if keys.is_empty() {
            return;
        }
        let mut q = lock(&self.fx.prefetch);
        for k in keys {
            if q.order.len() < MAX_PREFETCH_QUEUE && q.queued.insert(k) {
                q.order.push_back(k);
            }
        }
        self.fx.prefetch_wake.notify_all();
    }

    /// A prefetcher: fetches queued hints until the store is dropped.
    pub(super) fn prefetch_loop(&self) {
        loop {
            let key = {
                let mut q = lock(&self.fx.prefetch);
                loop {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(k) = q.order.pop_front() {
                        q.queued.remove(&k);
                        break k;
                    }
                    q = self.fx.prefetch_wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            match self.fetch(&key) {
                // Counted only when this thread's GET brought it in.
                Ok(Fetch::Fetched) => {
                    self.fx.prefetched_count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(%key, "prefetch failed: {e}"),
            }
        }
    }
}

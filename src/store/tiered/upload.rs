//! The upload half of the tiered store: the durable queue of uploads and deletions, the
//! workers that send them with backoff, and the pins that keep a queued object until it is
//! sent — within a budget ([`PIN_SHARE`]), and given up when the bucket refuses uploads.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;

/// What the upload half keeps.
pub(super) struct UploadSide {
    pub(super) said_read_only_rm: AtomicBool,
    pub(super) queue: Mutex<Queue>,
    /// Wakes the workers: new work, or shutdown.
    pub(super) wake: Condvar,
    pub(super) in_flight: Mutex<HashSet<Key>>,
    pub(super) retry_at: Mutex<HashMap<Key, (Instant, u32)>>,
    /// Objects this store pinned until they are uploaded, with their sizes, and the total.
    pub(super) upload_pins: Mutex<(HashMap<Key, u64>, u64)>,
    /// Uploads stop until then: the bucket refused one.
    pub(super) refused_until: Mutex<Option<Instant>>,
    pub(super) said_refused: AtomicBool,
    pub(super) said_behind: AtomicBool,
    /// Queued uploads whose object was evicted before it could be sent.
    pub(super) uploads_skipped: AtomicU64,
    pub(super) uploads_failed: AtomicU64,
    pub(super) said_full: AtomicBool,
}

impl UploadSide {
    pub(super) fn new(queue: Queue) -> UploadSide {
        UploadSide {
            queue: Mutex::new(queue),
            wake: Condvar::new(),
            in_flight: Mutex::new(HashSet::new()),
            retry_at: Mutex::new(HashMap::new()),
            upload_pins: Mutex::new((HashMap::new(), 0)),
            refused_until: Mutex::new(None),
            said_refused: AtomicBool::new(false),
            said_behind: AtomicBool::new(false),
            uploads_skipped: AtomicU64::new(0),
            uploads_failed: AtomicU64::new(0),
            said_full: AtomicBool::new(false),
            said_read_only_rm: AtomicBool::new(false),
        }
    }
}

impl<L: Store, R: Remote> Shared<L, R> {
    pub(super) fn uploads_refused(&self) -> bool {
        lock(&self.up.refused_until).is_some_and(|t| Instant::now() < t)
    }

    /// Pins `key` until its upload is done, if the budget allows and uploads are not refused;
    /// otherwise it stays queued but evictable.
    pub(super) fn pin_for_upload(&self, key: &Key, size: u64) {
        if self.uploads_refused() {
            return;
        }
        let budget = self.local.usage().limit / PIN_SHARE;
        let mut pins = lock(&self.up.upload_pins);
        if pins.0.contains_key(key) {
            return;
        }
        if pins.1 + size > budget {
            if !self.up.said_behind.swap(true, Ordering::Relaxed) {
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
    pub(super) fn release_pin(&self, key: &Key) {
        let mut pins = lock(&self.up.upload_pins);
        if let Some(size) = pins.0.remove(key) {
            pins.1 -= size;
            self.local.unpin(key);
        }
    }

    /// The bucket refused an upload for a cause retrying will not fix: uploads stop a while and
    /// every object waiting for one becomes evictable, so the local cache keeps its room.
    pub(super) fn refuse_uploads(&self) {
        *lock(&self.up.refused_until) = Some(Instant::now() + REFUSED_FOR);
        let mut pins = lock(&self.up.upload_pins);
        for key in pins.0.keys() {
            self.local.unpin(key);
        }
        *pins = (HashMap::new(), 0);
        drop(pins);
        if !self.up.said_refused.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the bucket refuses uploads, so uploads stop for {} minutes: the local cache keeps \
                 working at local speed, and objects waiting for upload may be evicted before they \
                 reach the bucket",
                REFUSED_FOR.as_secs() / 60
            );
        }
    }

    /// The next work item ready to run (with its number in the queue), marked in flight.
    pub(super) fn next(&self) -> Option<(u64, Key, Work)> {
        let q = lock(&self.up.queue);
        let mut in_flight = lock(&self.up.in_flight);
        let retry = lock(&self.up.retry_at);
        let now = Instant::now();
        let refused = self.uploads_refused();
        let item = q.iter().find(|(_, k, w)| {
            let held = refused && *w == Work::Upload;
            !held && !in_flight.contains(k) && retry.get(k).is_none_or(|(t, _)| *t <= now)
        })?;
        in_flight.insert(item.1);
        Some(item)
    }

    pub(super) fn work(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            let item = if self.is_down() { None } else { self.next() };
            let Some((seq, key, work)) = item else {
                let q = lock(&self.up.queue);
                let _ = self.up.wake.wait_timeout(q, Duration::from_millis(250));
                continue;
            };
            let result = match work {
                Work::Upload => self.upload(&key),
                Work::Delete => self.remote.delete(&key).map(|()| self.healthy_write()),
            };
            match result {
                Ok(()) => {
                    lock(&self.up.retry_at).remove(&key);
                    // Unpin under the queue lock (queue, then store: the order commit and remove
                    // use), so no one sees an empty queue while the object is still pinned.
                    let mut q = lock(&self.up.queue);
                    if q.done(&key, seq).unwrap_or(false) && work == Work::Upload {
                        self.release_pin(&key);
                    }
                }
                Err(e) => {
                    self.note(&e);
                    if work == Work::Upload {
                        self.up.uploads_failed.fetch_add(1, Ordering::Relaxed);
                        if refused_for_good(&e) {
                            self.refuse_uploads();
                        }
                    }
                    let mut retry = lock(&self.up.retry_at);
                    let tries = retry.get(&key).map(|(_, n)| n + 1).unwrap_or(1);
                    retry.insert(key, (Instant::now() + backoff(tries, &key), tries));
                }
            }
            lock(&self.up.in_flight).remove(&key);
            self.up.wake.notify_all();
        }
    }

    pub(super) fn upload(&self, key: &Key) -> Result<(), RemoteError> {
        let (meta, reader) = match (self.local.stat(key), self.local.open(key)) {
            (Ok(Some(m)), Ok(Some(r))) => (m, r),
            // Gone locally (evicted before its turn, or found corrupt): nothing to upload.
            _ => {
                self.up.uploads_skipped.fetch_add(1, Ordering::Relaxed);
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
        let signature = self.fx.signer.as_ref().map(|s| s.sign(key, &meta.checksum));
        self.remote.put(key, &bytes, &meta.checksum, signature.as_ref())?;
        self.healthy_write();
        Ok(())
    }
}

/// Whether an upload failed for a cause that retrying cannot fix (credentials, policy, region,
/// bucket): someone has to change the configuration.
fn refused_for_good(e: &RemoteError) -> bool {
    matches!(
        e.kind,
        RemoteErrorKind::Denied
            | RemoteErrorKind::WriteDenied
            | RemoteErrorKind::BadRequest
            | RemoteErrorKind::WrongRegion
            | RemoteErrorKind::NoBucket
            | RemoteErrorKind::NoCredentials
    )
}

/// 0.2 s, 0.4 s … up to 60 s, with ±50 % jitter derived from the key (no RNG needed).
fn backoff(tries: u32, key: &Key) -> Duration {
    let base = 200u64.saturating_mul(1 << tries.min(9)).min(60_000);
    let jitter = (key.0[0] as u64 * 256 + key.0[1] as u64 + tries as u64 * 7919) % 1000;
    Duration::from_millis(base / 2 + base * jitter / 1000)
}

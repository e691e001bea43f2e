//! The durable queue of uploads and deletions waiting for the remote.
//!
//! An append-only log (`<store>/v1/remote-queue.log`) of `Upload`, `Uploaded`, `Delete` and
//! `Deleted` records, one `write` each, replayed at start: an upload or deletion without its
//! completion record is still pending. A deletion cancels a pending upload of the same key (so
//! an `rm` can never be undone by a late upload). The log is rewritten with only the pending
//! work at each start.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::key::Key;

/// A pending piece of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Work {
    Upload,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Record {
    Queued(Key, Work),
    Done(Key, Work),
}

/// Pending work, by key and in arrival order. Both views are kept so that the workers find the
/// oldest ready item, and `counts` answers, without sorting the whole queue each time (it can
/// hold 100,000 items after an S3 outage).
#[derive(Debug, Default)]
struct Pending {
    by_key: HashMap<Key, (u64, Work)>,
    order: BTreeMap<u64, (Key, Work)>,
    uploads: u64,
}

impl Pending {
    fn insert(&mut self, key: Key, seq: u64, work: Work) {
        self.remove(&key);
        self.by_key.insert(key, (seq, work));
        self.order.insert(seq, (key, work));
        self.uploads += (work == Work::Upload) as u64;
    }

    fn remove(&mut self, key: &Key) {
        if let Some((seq, work)) = self.by_key.remove(key) {
            self.order.remove(&seq);
            self.uploads -= (work == Work::Upload) as u64;
        }
    }

    fn get(&self, key: &Key) -> Option<Work> {
        self.by_key.get(key).map(|(_, w)| *w)
    }
}

/// Pending work by key, in arrival order, persisted.
#[derive(Debug)]
pub struct Queue {
    path: PathBuf,
    file: File,
    seq: u64,
    pending: Pending,
}

impl Queue {
    /// Opens the queue in `dir`, replaying what an earlier daemon left pending.
    pub fn open(dir: &Path) -> io::Result<Queue> {
        let path = dir.join("remote-queue.log");
        let mut pending = Pending::default();
        let mut seq = 0;
        if let Ok(bytes) = fs::read(&path) {
            let mut rest = &bytes[..];
            while rest.len() >= 4 {
                let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                let Some(body) = rest.get(4..4 + len) else { break };
                let Ok(r) = bincode::deserialize::<Record>(body) else { break };
                seq += 1;
                match r {
                    Record::Queued(k, w) => pending.insert(k, seq, w),
                    Record::Done(k, w) => {
                        if pending.get(&k) == Some(w) {
                            pending.remove(&k);
                        }
                    }
                }
                rest = &rest[4 + len..];
            }
        }
        // Rewrite with only what is pending.
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            for (k, w) in pending.order.values() {
                f.write_all(&frame(&Record::Queued(*k, *w)))?;
            }
        }
        fs::rename(&tmp, &path)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Queue { path, file, seq, pending })
    }

    fn append(&mut self, r: Record) -> io::Result<()> {
        self.file.write_all(&frame(&r))
    }

    /// Queues `work` for `key` (a deletion replaces a pending upload).
    pub fn push(&mut self, key: Key, work: Work) -> io::Result<()> {
        self.append(Record::Queued(key, work))?;
        self.seq += 1;
        self.pending.insert(key, self.seq, work);
        Ok(())
    }

    /// Marks the work queued for `key` as number `seq` done, unless newer work for the key
    /// replaced it. Matching by number, not by kind, matters: an upload that was under way
    /// when the key was removed and committed again must not count for the new upload.
    pub fn done(&mut self, key: &Key, seq: u64) -> io::Result<bool> {
        let Some(&(pending, work)) = self.pending.by_key.get(key) else { return Ok(false) };
        if pending != seq {
            return Ok(false);
        }
        self.append(Record::Done(*key, work))?;
        self.pending.remove(key);
        Ok(true)
    }

    /// What is pending for `key`.
    pub fn get(&self, key: &Key) -> Option<Work> {
        self.pending.get(key)
    }

    /// Pending work with its number, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Key, Work)> + '_ {
        self.pending.order.iter().map(|(seq, (k, w))| (*seq, *k, *w))
    }

    /// All pending work, oldest first.
    pub fn all(&self) -> Vec<(Key, Work)> {
        self.iter().map(|(_, k, w)| (k, w)).collect()
    }

    /// The number of the work pending for `key`.
    pub fn seq(&self, key: &Key) -> Option<u64> {
        self.pending.by_key.get(key).map(|(s, _)| *s)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.order.is_empty()
    }

    /// How many uploads and deletions are pending.
    pub fn counts(&self) -> (u64, u64) {
        let uploads = self.pending.uploads;
        (uploads, self.pending.order.len() as u64 - uploads)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn frame(r: &Record) -> Vec<u8> {
    let body = bincode::serialize(r).expect("serializing to memory cannot fail");
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_work_survives_a_restart_and_a_delete_cancels_an_upload() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (Key([1; 32]), Key([2; 32]), Key([3; 32]));
        {
            let mut q = Queue::open(dir.path()).unwrap();
            q.push(a, Work::Upload).unwrap();
            q.push(b, Work::Upload).unwrap();
            q.push(c, Work::Upload).unwrap();
            assert!(q.done(&b, q.seq(&b).unwrap()).unwrap());
            let upload_c = q.seq(&c).unwrap();
            q.push(c, Work::Delete).unwrap();
            assert!(!q.done(&c, upload_c).unwrap(), "a late upload completion does not undo the rm");
        }
        let q = Queue::open(dir.path()).unwrap();
        assert_eq!(q.all(), vec![(a, Work::Upload), (c, Work::Delete)]);
        assert_eq!(q.counts(), (1, 1));
    }

    #[test]
    fn requeueing_a_key_moves_it_to_the_end_and_counts_stay_right() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Key([1; 32]), Key([2; 32]));
        let mut q = Queue::open(dir.path()).unwrap();
        q.push(a, Work::Upload).unwrap();
        q.push(b, Work::Upload).unwrap();
        q.push(a, Work::Delete).unwrap();
        assert_eq!(q.all(), vec![(b, Work::Upload), (a, Work::Delete)]);
        assert_eq!(q.counts(), (1, 1));
        assert!(q.done(&b, q.seq(&b).unwrap()).unwrap());
        assert!(q.done(&a, q.seq(&a).unwrap()).unwrap());
        assert!(q.is_empty());
        assert_eq!(q.counts(), (0, 0));
    }

    #[test]
    fn an_old_upload_finishing_does_not_complete_the_keys_new_upload() {
        let dir = tempfile::tempdir().unwrap();
        let a = Key([1; 32]);
        let mut q = Queue::open(dir.path()).unwrap();
        q.push(a, Work::Upload).unwrap();
        let first = q.seq(&a).unwrap();
        q.push(a, Work::Delete).unwrap();
        q.push(a, Work::Upload).unwrap();
        assert!(!q.done(&a, first).unwrap(), "same kind, older work");
        assert_eq!(q.all(), vec![(a, Work::Upload)]);
        drop(q);
        let mut q = Queue::open(dir.path()).unwrap();
        assert_eq!(q.all(), vec![(a, Work::Upload)], "still pending after a restart");
        assert!(q.done(&a, q.seq(&a).unwrap()).unwrap());
    }
}

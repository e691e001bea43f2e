//! Persistence of the disk store's index: a snapshot plus an append-only journal.
//!
//! The snapshot (`index.bin`) is the whole index in LRU order, written at clean shutdown and at
//! start-up (temp file, then rename). Between snapshots every change is appended to
//! `journal.log` with one `write` call, so a daemon killed with SIGKILL loses nothing the kernel
//! had accepted. Records are idempotent, so replaying a journal over a snapshot that already
//! includes part of it gives the same index. Each record carries a checksum; replay stops at the
//! first torn or damaged record (a machine crash can tear the tail).
//!
//! A lost record is safe by construction: an object file with no record is deleted at start
//! (its checksum is unknown, and every doubt is a miss); a record with no file is dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ObjectMeta;
use crate::key::Key;

/// One change to the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// An object was committed.
    Commit(Key, ObjectMeta),
    /// An object was used at this time (moves it to the most-recently-used end).
    Touch(Key, u64),
    /// An object was removed (rm, eviction, corruption).
    Remove(Key),
}

/// Snapshot format version; bump on any change to `Snapshot` or `Record`.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    /// Least recently used first.
    entries: Vec<(Key, ObjectMeta)>,
}

/// Reads and writes the snapshot and journal in one folder.
#[derive(Debug)]
pub struct Journal {
    snapshot_path: PathBuf,
    journal_path: PathBuf,
    file: File,
    appended: u64,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, returning it with the persisted entries
    /// in LRU order (snapshot, then journal replayed).
    pub fn open(dir: &Path) -> io::Result<(Journal, Vec<(Key, ObjectMeta)>)> {
        let snapshot_path = dir.join("index.bin");
        let journal_path = dir.join("journal.log");
        let mut entries = read_snapshot(&snapshot_path);
        let records = read_records(&journal_path)?;
        replay(&mut entries, records);
        let file = OpenOptions::new().create(true).append(true).open(&journal_path)?;
        Ok((Journal { snapshot_path, journal_path, file, appended: 0 }, entries))
    }

    /// Appends one record with a single write.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let payload = bincode::serialize(record).map_err(io::Error::other)?;
        let mut frame = Vec::with_capacity(payload.len() + 12);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&blake3::hash(&payload).as_bytes()[..8]);
        frame.extend_from_slice(&payload);
        self.file.write_all(&frame)?;
        self.appended += 1;
        Ok(())
    }

    /// Records appended since the last snapshot.
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Writes a snapshot of `entries` (LRU order) and empties the journal.
    pub fn snapshot(&mut self, entries: Vec<(Key, ObjectMeta)>) -> io::Result<()> {
        let snap = Snapshot { format: FORMAT, entries };
        let bytes = bincode::serialize(&snap).map_err(io::Error::other)?;
        let tmp = self.snapshot_path.with_extension("bin.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.snapshot_path)?;
        // Only now is the journal redundant. A crash before this truncation replays records
        // the snapshot already holds, which is harmless.
        self.file.set_len(0)?;
        self.appended = 0;
        Ok(())
    }

    /// The journal's path (for tests that damage it).
    pub fn journal_path(&self) -> &Path {
        &self.journal_path
    }
}

fn read_snapshot(path: &Path) -> Vec<(Key, ObjectMeta)> {
    let Ok(bytes) = fs::read(path) else { return Vec::new() };
    match bincode::deserialize::<Snapshot>(&bytes) {
        Ok(s) if s.format == FORMAT => s.entries,
        // An unreadable snapshot loses the index, not objects' safety: every unindexed file is
        // deleted at start as a doubt.
        _ => Vec::new(),
    }
}

fn read_records(path: &Path) -> io::Result<Vec<Record>> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let sum = &bytes[pos + 4..pos + 12];
        let Some(payload) = bytes.get(pos + 12..pos + 12 + len) else {
            break;
        };
        if &blake3::hash(payload).as_bytes()[..8] != sum {
            break;
        }
        match bincode::deserialize::<Record>(payload) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
        pos += 12 + len;
    }
    Ok(out)
}

/// Applies journal records to entries in LRU order.
fn replay(entries: &mut Vec<(Key, ObjectMeta)>, records: Vec<Record>) {
    if records.is_empty() {
        return;
    }
    // Position-independent replay: give every key a sequence number, newest wins.
    let mut state: std::collections::HashMap<Key, (u64, ObjectMeta)> =
        entries.drain(..).enumerate().map(|(i, (k, m))| (k, (i as u64, m))).collect();
    let mut seq = state.len() as u64;
    for r in records {
        seq += 1;
        match r {
            Record::Commit(k, m) => {
                state.insert(k, (seq, m));
            }
            Record::Touch(k, at) => {
                if let Some((s, m)) = state.get_mut(&k) {
                    *s = seq;
                    m.last_used_ns = m.last_used_ns.max(at);
                }
            }
            Record::Remove(k) => {
                state.remove(&k);
            }
        }
    }
    let mut v: Vec<(u64, Key, ObjectMeta)> = state.into_iter().map(|(k, (s, m))| (s, k, m)).collect();
    v.sort_by_key(|(s, _, _)| *s);
    entries.extend(v.into_iter().map(|(_, k, m)| (k, m)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(size: u64) -> ObjectMeta {
        ObjectMeta { size, checksum: [7; 32], created_ns: 1, last_used_ns: 1 }
    }

    #[test]
    fn journal_replays_over_snapshot_in_lru_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (Key([1; 32]), Key([2; 32]), Key([3; 32]));
        {
            let (mut j, entries) = Journal::open(dir.path()).unwrap();
            assert!(entries.is_empty());
            j.append(&Record::Commit(a, meta(1))).unwrap();
            j.append(&Record::Commit(b, meta(2))).unwrap();
            j.snapshot(vec![(a, meta(1)), (b, meta(2))]).unwrap();
            j.append(&Record::Commit(c, meta(3))).unwrap();
            j.append(&Record::Touch(a, 9)).unwrap();
            j.append(&Record::Remove(b)).unwrap();
        }
        let (_, entries) = Journal::open(dir.path()).unwrap();
        let keys: Vec<Key> = entries.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec![c, a]);
        assert_eq!(entries[1].1.last_used_ns, 9);
    }

    #[test]
    fn torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let a = Key([1; 32]);
        {
            let (mut j, _) = Journal::open(dir.path()).unwrap();
            j.append(&Record::Commit(a, meta(1))).unwrap();
            j.append(&Record::Commit(Key([2; 32]), meta(2))).unwrap();
        }
        let path = dir.path().join("journal.log");
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();
        let (_, entries) = Journal::open(dir.path()).unwrap();
        assert_eq!(entries, vec![(a, meta(1))]);
    }
}

//! Tests of the disk store: crash recovery, integrity, persistence of LRU order.

use std::fs;
use std::os::unix::fs::FileExt;

use super::*;

fn put(store: &DiskStore, k: &Key, data: &[u8]) -> Result<Committed, StoreError> {
    let t = store.create_temp()?;
    t.write_at(0, data).unwrap();
    store.commit(&t, k)
}

fn read(store: &DiskStore, k: &Key) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(store.open(k)?.map(|r| r.read_at(0, 1 << 20).unwrap()))
}

fn key(n: u8) -> Key {
    Key([n; 32])
}

#[test]
fn restart_keeps_objects_and_lru_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
        for n in 1..=3 {
            put(&s, &key(n), &[n; 100]).unwrap();
        }
        read(&s, &key(1)).unwrap(); // 1 becomes the most recently used
        s.persist().unwrap();
    }
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    let order: Vec<Key> = s.list().unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(order, vec![key(2), key(3), key(1)]);
    assert_eq!(read(&s, &key(3)).unwrap().unwrap(), vec![3; 100]);
}

#[test]
fn without_a_clean_shutdown_the_journal_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
        put(&s, &key(1), b"one").unwrap();
        put(&s, &key(2), b"two").unwrap();
        read(&s, &key(1)).unwrap();
        s.remove(&key(2)).unwrap();
        put(&s, &key(3), b"three").unwrap();
        std::mem::forget(s); // as if killed: no persist, no drop
    }
    // The forgotten store still holds the flock; a killed process would not.
    let lock = dir.path().join(LAYOUT_VERSION).join("lock");
    let _ = fs::remove_file(&lock);
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    let order: Vec<Key> = s.list().unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(order, vec![key(1), key(3)]);
}

#[test]
fn leftovers_of_a_crash_are_cleaned_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let orphan;
    {
        let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
        put(&s, &key(1), b"kept").unwrap();
        let t = s.create_temp().unwrap();
        t.write_at(0, b"half-written").unwrap();
        // An object file the index never heard of (writer killed between rename and journal).
        orphan = s.object_path(&key(9));
        fs::write(&orphan, b"unknown provenance").unwrap();
        fs::write(s.object_path(&key(1)).with_file_name("not-a-key"), b"junk").unwrap();
        s.persist().unwrap();
    }
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(fs::read_dir(s.temp_dir()).unwrap().count(), 0);
    assert!(!orphan.exists());
    assert!(!s.object_path(&key(1)).with_file_name("not-a-key").exists());
    assert_eq!(read(&s, &key(1)).unwrap().unwrap(), b"kept");
    assert_eq!(s.usage().objects, 1);
}

#[test]
fn a_flipped_bit_on_disk_is_detected_even_after_a_good_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    put(&s, &key(1), &[7; 4096]).unwrap();
    assert!(read(&s, &key(1)).unwrap().is_some());
    let f = OpenOptions::new().write(true).open(s.object_path(&key(1))).unwrap();
    f.write_all_at(&[6], 1000).unwrap();
    drop(f);
    assert!(matches!(read(&s, &key(1)), Err(StoreError::Corrupt(_))));
    assert!(!s.object_path(&key(1)).exists());
    assert_eq!(s.usage().corrupt_removed, 1);
    assert!(read(&s, &key(1)).unwrap().is_none(), "a corrupt object is gone, so the next lookup is a miss");
}

#[test]
fn a_truncated_object_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    put(&s, &key(1), &[7; 4096]).unwrap();
    OpenOptions::new().write(true).open(s.object_path(&key(1))).unwrap().set_len(100).unwrap();
    assert!(matches!(read(&s, &key(1)), Err(StoreError::Corrupt(_))));
}

#[test]
fn corruption_at_rest_is_caught_by_the_first_read_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path;
    {
        let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
        put(&s, &key(1), &[7; 4096]).unwrap();
        path = s.object_path(&key(1));
        s.persist().unwrap();
    }
    // Flip a byte and put the timestamps back, as silent media corruption would leave them.
    let before = fs::metadata(&path).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[5] ^= 0x80;
    fs::write(&path, &bytes).unwrap();
    let f = File::options().write(true).open(&path).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    assert!(matches!(read(&s, &key(1)), Err(StoreError::Corrupt(_))));
}

#[test]
fn a_second_daemon_cannot_open_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let _s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    let err = DiskStore::open(dir.path(), 1 << 20).unwrap_err();
    assert!(err.to_string().contains("another cairn daemon"), "{err}");
}

#[test]
fn a_lower_limit_at_start_evicts_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
        for n in 1..=4 {
            put(&s, &key(n), &[n; 100]).unwrap();
        }
        s.persist().unwrap();
    }
    let s = DiskStore::open(dir.path(), 250).unwrap();
    let order: Vec<Key> = s.list().unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(order, vec![key(3), key(4)]);
    assert!(!s.object_path(&key(1)).exists());
}

#[test]
fn the_store_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    put(&s, &key(1), b"secret artifact").unwrap();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join(LAYOUT_VERSION)), 0o700);
    assert_eq!(mode(&s.object_path(&key(1))), 0o600);
    // A store made before, with an open top folder, is closed when opened again.
    drop(s);
    fs::set_permissions(dir.path().join(LAYOUT_VERSION), fs::Permissions::from_mode(0o755)).unwrap();
    let _s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(mode(&dir.path().join(LAYOUT_VERSION)), 0o700);
}

#[test]
fn a_store_that_only_serves_hits_keeps_its_journal_short() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    s.set_compact_after(100);
    put(&s, &key(1), b"read all day").unwrap();
    for _ in 0..2000 {
        assert_eq!(read(&s, &key(1)).unwrap().unwrap(), b"read all day");
    }
    let journal = fs::metadata(dir.path().join(LAYOUT_VERSION).join("journal.log")).unwrap().len();
    assert!(journal < 200 * 64, "the journal holds {journal} bytes after 2000 hits");
    drop(s);
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(read(&s, &key(1)).unwrap().unwrap(), b"read all day", "the snapshot is whole");
}

#[test]
fn a_commit_of_bytes_the_caller_hashed_takes_its_checksum_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStore::open(dir.path(), 1 << 20).unwrap();
    put(&s, &key(1), &[7; 3000]).unwrap();
    let t = s.create_temp().unwrap();
    t.write_at(0, &[7; 3000]).unwrap();
    let sum = *blake3::hash(&[7; 3000]).as_bytes();
    s.commit_hashed(&t, &key(2), sum).unwrap();
    let (a, b) = (s.stat(&key(1)).unwrap().unwrap(), s.stat(&key(2)).unwrap().unwrap());
    assert_eq!((a.checksum, a.size), (b.checksum, b.size), "the same meta as a commit that hashes");
    assert_eq!(read(&s, &key(2)).unwrap().unwrap(), vec![7; 3000], "and the open's check passes");
}

//! Filesystem tests against the memory store: the whole namespace and commit protocol, no mount.

use std::ffi::OsStr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::store::faulty::{Fault, FaultyStore};
use crate::store::memory::MemoryStore;

fn fs_with(limit: u64) -> CacheFs<MemoryStore> {
    CacheFs::new(Arc::new(MemoryStore::new(limit)), FsOptions { uid: 1, gid: 1, want_backing: false })
}

fn key(n: u8) -> Key {
    Key([n; 32])
}

fn name(k: &Key) -> OsString {
    OsString::from(k.to_hex())
}

const W: OpenMode = OpenMode { write: true, truncate: false, append: false, exclusive: true };
const R: OpenMode = OpenMode { write: false, truncate: false, append: false, exclusive: false };

/// Writes `data` to a fresh temporary and renames it onto `k`.
fn put<S: Store>(fs: &CacheFs<S>, tmp: &str, k: &Key, data: &[u8]) -> Result<(), FsError> {
    let (_, o) = fs.create(ROOT_INO, OsStr::new(tmp), W)?;
    fs.write(o.fh, 0, data)?;
    fs.release(o.fh);
    fs.rename(ROOT_INO, OsStr::new(tmp), ROOT_INO, &name(k), false)
}

fn get<S: Store>(fs: &CacheFs<S>, k: &Key) -> Result<Vec<u8>, FsError> {
    let a = fs.lookup(ROOT_INO, &name(k))?;
    let o = fs.open(a.ino, R)?;
    let data = fs.read(o.fh, 0, 1 << 20);
    fs.release(o.fh);
    data
}

fn listed<S: Store>(fs: &CacheFs<S>) -> Vec<OsString> {
    let fh = fs.opendir(ROOT_INO).unwrap();
    let v = fs
        .readdir(fh, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.name)
        .filter(|n| n.to_str().and_then(Key::parse).is_some())
        .collect();
    fs.release(fh);
    v
}

#[test]
fn commit_by_rename_makes_the_object_visible_and_readable() {
    let fs = fs_with(1 << 20);
    let (_, o) = fs.create(ROOT_INO, OsStr::new(".tmp.a"), W).unwrap();
    fs.write(o.fh, 0, b"hello").unwrap();
    assert!(listed(&fs).is_empty(), "temporaries are never listed");
    assert_eq!(fs.lookup(ROOT_INO, &name(&key(1))).unwrap_err().errno(), libc::ENOENT);
    fs.release(o.fh);
    fs.rename(ROOT_INO, OsStr::new(".tmp.a"), ROOT_INO, &name(&key(1)), false).unwrap();
    assert_eq!(get(&fs, &key(1)).unwrap(), b"hello");
    assert_eq!(listed(&fs), vec![name(&key(1))]);
    assert_eq!(fs.lookup(ROOT_INO, OsStr::new(".tmp.a")).unwrap_err().errno(), libc::ENOENT);
    let a = fs.lookup(ROOT_INO, &name(&key(1))).unwrap();
    assert_eq!((a.size, a.blocks, a.perm), (5, 1, 0o444));
}

#[test]
fn bad_names_are_einval() {
    let fs = fs_with(1 << 20);
    for bad in ["hello", "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB", "tmp.x"] {
        assert_eq!(fs.create(ROOT_INO, OsStr::new(bad), W).unwrap_err().errno(), libc::EINVAL, "{bad}");
    }
    // A key cannot be created directly: only renamed onto.
    assert_eq!(fs.create(ROOT_INO, &name(&key(2)), W).unwrap_err().errno(), libc::EINVAL);
    let (_, o) = fs.create(ROOT_INO, OsStr::new(".tmp.b"), W).unwrap();
    fs.release(o.fh);
    assert_eq!(
        fs.rename(ROOT_INO, OsStr::new(".tmp.b"), ROOT_INO, OsStr::new("Key"), false).unwrap_err().errno(),
        libc::EINVAL
    );
    assert_eq!(fs.refuse("mkdir", OsStr::new("d")).errno(), libc::EINVAL);
}

#[test]
fn committed_objects_refuse_every_change() {
    let fs = fs_with(1 << 20);
    put(&fs, ".tmp", &key(1), b"one").unwrap();
    let ino = fs.lookup(ROOT_INO, &name(&key(1))).unwrap().ino;
    for mode in [W, OpenMode { truncate: true, ..R }, OpenMode { append: true, write: true, ..R }] {
        assert_eq!(fs.open(ino, mode).unwrap_err().errno(), libc::EPERM);
    }
    assert_eq!(fs.setattr(ino, Some(0), false).unwrap_err().errno(), libc::EPERM);
    assert_eq!(fs.setattr(ino, None, true).unwrap_err().errno(), libc::EPERM);
    assert_eq!(
        fs.rename(ROOT_INO, &name(&key(1)), ROOT_INO, OsStr::new(".tmp.x"), false).unwrap_err().errno(),
        libc::EPERM
    );
    assert_eq!(fs.rename(ROOT_INO, &name(&key(1)), ROOT_INO, &name(&key(2)), false).unwrap_err().errno(), libc::EPERM);
    // Same bytes again: idempotent success. Other bytes: EEXIST, and the object is intact.
    put(&fs, ".tmp.same", &key(1), b"one").unwrap();
    assert_eq!(put(&fs, ".tmp.diff", &key(1), b"two").unwrap_err().errno(), libc::EEXIST);
    assert_eq!(get(&fs, &key(1)).unwrap(), b"one");
    // The refused temporary is still there for its writer to remove.
    fs.unlink(ROOT_INO, OsStr::new(".tmp.diff")).unwrap();
    // RENAME_NOREPLACE refuses even identical bytes.
    let (_, o) = fs.create(ROOT_INO, OsStr::new(".tmp.nr"), W).unwrap();
    fs.write(o.fh, 0, b"one").unwrap();
    fs.release(o.fh);
    assert_eq!(
        fs.rename(ROOT_INO, OsStr::new(".tmp.nr"), ROOT_INO, &name(&key(1)), true).unwrap_err().errno(),
        libc::EEXIST
    );
}

#[test]
fn unlink_removes_exactly_one_object() {
    let fs = fs_with(1 << 20);
    put(&fs, ".tmp1", &key(1), b"a").unwrap();
    put(&fs, ".tmp2", &key(2), b"b").unwrap();
    fs.unlink(ROOT_INO, &name(&key(1))).unwrap();
    assert_eq!(fs.unlink(ROOT_INO, &name(&key(1))).unwrap_err().errno(), libc::ENOENT);
    assert_eq!(listed(&fs), vec![name(&key(2))]);
}

#[test]
fn a_flipped_bit_is_eio_and_the_object_is_removed() {
    let store = Arc::new(MemoryStore::new(1 << 20));
    let fs = CacheFs::new(Arc::clone(&store), FsOptions { uid: 1, gid: 1, want_backing: false });
    let (tx, rx) = mpsc::channel();
    fs.set_invalidation_sink(tx);
    put(&fs, ".tmp", &key(1), b"precious bytes").unwrap();
    store.corrupt(&key(1), 3);
    assert_eq!(get(&fs, &key(1)).unwrap_err().errno(), libc::EIO);
    assert_eq!(fs.lookup(ROOT_INO, &name(&key(1))).unwrap_err().errno(), libc::ENOENT);
    assert_eq!(store.usage().corrupt_removed, 1);
    assert_eq!(rx.try_recv().unwrap().name, name(&key(1)));
}

/// Regression: the invalidations lock was the one lock here that did not recover from poison,
/// so after a panic while it was held, every later invalidation (a corrupt object, an
/// eviction) panicked too.
#[test]
fn invalidation_still_reaches_the_kernel_after_its_lock_was_poisoned() {
    let store = Arc::new(MemoryStore::new(1 << 20));
    let fs = CacheFs::new(Arc::clone(&store), FsOptions { uid: 1, gid: 1, want_backing: false });
    let (tx, rx) = mpsc::channel();
    fs.set_invalidation_sink(tx);
    std::thread::scope(|s| {
        let poisoner = s.spawn(|| {
            let _held = fs.invalidations.lock();
            panic!("a panic while the invalidations lock is held");
        });
        assert!(poisoner.join().is_err());
    });
    assert!(fs.invalidations.is_poisoned());
    put(&fs, ".tmp", &key(1), b"precious bytes").unwrap();
    store.corrupt(&key(1), 3);
    assert_eq!(get(&fs, &key(1)).unwrap_err().errno(), libc::EIO);
    assert_eq!(rx.try_recv().unwrap().name, name(&key(1)));
}

#[test]
fn eviction_spares_open_objects_and_tells_the_kernel() {
    let fs = fs_with(30);
    let (tx, rx) = mpsc::channel();
    fs.set_invalidation_sink(tx);
    put(&fs, ".tmp1", &key(1), &[1; 10]).unwrap();
    put(&fs, ".tmp2", &key(2), &[2; 10]).unwrap();
    put(&fs, ".tmp3", &key(3), &[3; 10]).unwrap();
    // Hold the oldest open.
    let held = fs.open(fs.lookup(ROOT_INO, &name(&key(1))).unwrap().ino, R).unwrap();
    put(&fs, ".tmp4", &key(4), &[4; 10]).unwrap();
    let evicted: Vec<OsString> = rx.try_iter().map(|i| i.name).collect();
    assert_eq!(evicted, vec![name(&key(2))], "the oldest unpinned object goes");
    assert_eq!(fs.read(held.fh, 0, 100).unwrap(), vec![1; 10]);
    fs.release(held.fh);
    assert!(fs.store().usage().used <= 30);
    // Larger than the whole cache: EFBIG, nothing evicted.
    assert_eq!(put(&fs, ".tmp.big", &key(9), &[9; 31]).unwrap_err().errno(), libc::EFBIG);
    assert_eq!(fs.store().usage().objects, 3);
}

#[test]
fn a_full_disk_fails_the_commit_and_loses_nothing() {
    let store = Arc::new(FaultyStore::new(MemoryStore::new(1 << 20)));
    let fs = CacheFs::new(Arc::clone(&store), FsOptions { uid: 1, gid: 1, want_backing: false });
    put(&fs, ".tmp.ok", &key(1), b"kept").unwrap();
    store.arm(Fault::Commit(libc::ENOSPC));
    assert_eq!(put(&fs, ".tmp.full", &key(2), b"new").unwrap_err().errno(), libc::ENOSPC);
    store.heal();
    // The temporary survived; its writer can retry the rename.
    fs.rename(ROOT_INO, OsStr::new(".tmp.full"), ROOT_INO, &name(&key(2)), false).unwrap();
    assert_eq!(get(&fs, &key(2)).unwrap(), b"new");
    assert_eq!(get(&fs, &key(1)).unwrap(), b"kept");
    store.arm(Fault::Open(libc::EIO));
    assert_eq!(get(&fs, &key(1)).unwrap_err().errno(), libc::EIO);
}

/// A commit of `.tmp.c` (holding "held") onto `key(1)`, in progress on another thread and held
/// inside the store until [`finish`](HeldCommit::finish) (or drop) heals the store.
struct HeldCommit {
    fs: Arc<CacheFs<FaultyStore<MemoryStore>>>,
    store: Arc<FaultyStore<MemoryStore>>,
    committer: Option<std::thread::JoinHandle<Result<(), FsError>>>,
}

impl HeldCommit {
    fn start() -> HeldCommit {
        let store = Arc::new(FaultyStore::new(MemoryStore::new(1 << 20)));
        let fs = Arc::new(CacheFs::new(Arc::clone(&store), FsOptions { uid: 1, gid: 1, want_backing: false }));
        let (_, o) = fs.create(ROOT_INO, OsStr::new(".tmp.c"), W).unwrap();
        fs.write(o.fh, 0, b"held").unwrap();
        fs.release(o.fh);
        store.arm(Fault::HoldCommit);
        let fs2 = Arc::clone(&fs);
        let committer =
            std::thread::spawn(move || fs2.rename(ROOT_INO, OsStr::new(".tmp.c"), ROOT_INO, &name(&key(1)), false));
        store.wait_for_held_commit();
        HeldCommit { fs, store, committer: Some(committer) }
    }

    /// Lets the commit go and returns its result; panics if it panicked.
    fn release(&mut self) -> Result<(), FsError> {
        self.store.heal();
        self.committer.take().expect("released once").join().expect("the commit does not panic")
    }

    /// Lets the commit go, and checks it succeeded: the object holds its bytes, and no
    /// temporary or stale inode is left of `.tmp.c`.
    fn finish(mut self) {
        self.release().expect("the commit succeeds");
        assert_eq!(get(&*self.fs, &key(1)).unwrap(), b"held");
        assert_eq!(self.fs.lookup(ROOT_INO, OsStr::new(".tmp.c")).unwrap_err().errno(), libc::ENOENT);
        let names = self.fs.names();
        assert!(!names.temps.contains_key(OsStr::new(".tmp.c")));
        let stale = names.nodes.values().filter(|n| matches!(n, Node::Temp(t) if t == ".tmp.c")).count();
        assert_eq!(stale, 0, "no inode still names the committed temporary");
    }

    /// Takes `.tmp.c` from the filesystem's tables the way `unlink` did before it refused
    /// committing temporaries: what a path that forgets the `committing` flag would leave.
    fn take_temp_behind_the_commit(&self) {
        let mut names = self.fs.names();
        let t = names.temps.remove(OsStr::new(".tmp.c")).unwrap();
        names.nodes.remove(&t.ino);
    }
}

impl Drop for HeldCommit {
    /// A failed test does not leave its committer blocked.
    fn drop(&mut self) {
        self.store.heal();
    }
}

/// Regression: an open with `O_TRUNC` but without write access emptied a temporary whose
/// rename onto a key was committing (only write opens were refused).
#[test]
fn truncating_a_temporary_while_it_commits_is_ebusy_and_the_commit_keeps_its_bytes() {
    let held = HeldCommit::start();
    let ino = held.fs.lookup(ROOT_INO, OsStr::new(".tmp.c")).unwrap().ino;
    assert_eq!(held.fs.open(ino, OpenMode { truncate: true, ..R }).unwrap_err().errno(), libc::EBUSY);
    held.finish();
}

/// Regression: `rm <mnt>/.tmp…` while its rename onto a key was committing removed the
/// temporary under the commit, which then panicked ("a committing temp is not removed") and
/// left a stale inode behind.
#[test]
fn removing_a_temporary_while_it_commits_is_ebusy_and_the_commit_completes() {
    let held = HeldCommit::start();
    assert_eq!(held.fs.unlink(ROOT_INO, OsStr::new(".tmp.c")).unwrap_err().errno(), libc::EBUSY);
    held.finish();
}

/// Regression, as above for renames: moving a committing temporary away, or another
/// temporary onto it, took it from under the commit.
#[test]
fn renaming_a_temporary_while_it_commits_is_ebusy_either_way() {
    let held = HeldCommit::start();
    let fs = Arc::clone(&held.fs);
    let away = fs.rename(ROOT_INO, OsStr::new(".tmp.c"), ROOT_INO, OsStr::new(".tmp.away"), false);
    assert_eq!(away.unwrap_err().errno(), libc::EBUSY);
    let (_, o) = fs.create(ROOT_INO, OsStr::new(".tmp.other"), W).unwrap();
    fs.write(o.fh, 0, b"other").unwrap();
    fs.release(o.fh);
    let onto = fs.rename(ROOT_INO, OsStr::new(".tmp.other"), ROOT_INO, OsStr::new(".tmp.c"), false);
    assert_eq!(onto.unwrap_err().errno(), libc::EBUSY);
    held.finish();
    assert!(fs.lookup(ROOT_INO, OsStr::new(".tmp.away")).is_err());
    // The refused temporary is intact for its writer.
    let ino = fs.lookup(ROOT_INO, OsStr::new(".tmp.other")).unwrap().ino;
    let o = fs.open(ino, R).unwrap();
    assert_eq!(fs.read(o.fh, 0, 100).unwrap(), b"other");
    fs.release(o.fh);
}

/// Should a committing temporary be taken from its table anyway, the commit still ends, with
/// the object committed and no panic.
#[test]
fn a_commit_whose_temporary_vanished_completes_without_a_panic() {
    let held = HeldCommit::start();
    held.take_temp_behind_the_commit();
    held.finish();
}

/// As above, with a new temporary created under the same name meanwhile: the commit does not
/// take it for its own (turning its inode into the object and dropping its bytes).
#[test]
fn a_new_temporary_under_a_committing_name_is_not_taken_for_it() {
    let mut held = HeldCommit::start();
    held.take_temp_behind_the_commit();
    let fs = Arc::clone(&held.fs);
    let (_, o) = fs.create(ROOT_INO, OsStr::new(".tmp.c"), W).unwrap();
    fs.write(o.fh, 0, b"new").unwrap();
    fs.release(o.fh);
    held.release().expect("the object was committed");
    assert_eq!(get(&*fs, &key(1)).unwrap(), b"held");
    let ino = fs.lookup(ROOT_INO, OsStr::new(".tmp.c")).expect("the new temporary is still there").ino;
    let o = fs.open(ino, R).unwrap();
    assert_eq!(fs.read(o.fh, 0, 100).unwrap(), b"new", "the new temporary is untouched");
    fs.release(o.fh);
}

#[test]
fn rename_waits_for_the_writer_to_close() {
    let fs = Arc::new(fs_with(1 << 20));
    let (_, o) = fs.create(ROOT_INO, OsStr::new(".tmp.w"), W).unwrap();
    fs.write(o.fh, 0, b"late").unwrap();
    let fs2 = Arc::clone(&fs);
    let renamer =
        std::thread::spawn(move || fs2.rename(ROOT_INO, OsStr::new(".tmp.w"), ROOT_INO, &name(&key(5)), false));
    // The kernel's RELEASE may arrive after the rename; either order must commit.
    fs.release(o.fh);
    renamer.join().unwrap().unwrap();
    assert_eq!(get(&fs, &key(5)).unwrap(), b"late");
}

#[test]
fn rename_of_a_temporary_still_open_for_writing_is_ebusy() {
    let fs = fs_with(1 << 20);
    let (_, o) = fs.create(ROOT_INO, OsStr::new(".tmp.open"), W).unwrap();
    let err = fs.rename(ROOT_INO, OsStr::new(".tmp.open"), ROOT_INO, &name(&key(6)), false).unwrap_err();
    assert_eq!(err.errno(), libc::EBUSY);
    fs.release(o.fh);
    fs.rename(ROOT_INO, OsStr::new(".tmp.open"), ROOT_INO, &name(&key(6)), false).unwrap();
}

#[test]
fn abandoned_temporaries_are_reaped_open_ones_are_not() {
    let fs = fs_with(1 << 20);
    let (_, a) = fs.create(ROOT_INO, OsStr::new(".tmp.dead"), W).unwrap();
    fs.release(a.fh);
    let (_, _b) = fs.create(ROOT_INO, OsStr::new(".tmp.alive"), W).unwrap();
    let later = now_ns() + 3600 * 1_000_000_000;
    assert_eq!(fs.reap_idle_temps(now_ns(), Duration::from_secs(600)), 0, "not idle long enough");
    assert_eq!(fs.reap_idle_temps(later, Duration::from_secs(600)), 1);
    assert!(fs.lookup(ROOT_INO, OsStr::new(".tmp.dead")).is_err());
    assert!(fs.lookup(ROOT_INO, OsStr::new(".tmp.alive")).is_ok());
}

#[test]
fn statfs_reports_the_limit_as_size_and_objects_as_used() {
    let fs = fs_with(1 << 20);
    put(&fs, ".tmp", &key(1), &[0; 5000]).unwrap();
    let s = fs.statfs();
    assert_eq!(s.blocks * s.block_size as u64, 1 << 20);
    assert_eq!(s.blocks - s.blocks_free, 2);
    assert_eq!(s.files, 1);
}

#[test]
fn truncating_and_renaming_temporaries_works() {
    let fs = fs_with(1 << 20);
    let (_, o) = fs.create(ROOT_INO, OsStr::new(".tmp.t"), W).unwrap();
    fs.write(o.fh, 0, b"abcdef").unwrap();
    let ino = fs.lookup(ROOT_INO, OsStr::new(".tmp.t")).unwrap().ino;
    assert_eq!(fs.setattr(ino, Some(3), true).unwrap().size, 3);
    fs.release(o.fh);
    fs.rename(ROOT_INO, OsStr::new(".tmp.t"), ROOT_INO, OsStr::new(".tmp.u"), false).unwrap();
    fs.rename(ROOT_INO, OsStr::new(".tmp.u"), ROOT_INO, &name(&key(7)), false).unwrap();
    assert_eq!(get(&fs, &key(7)).unwrap(), b"abc");
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Get(u8),
    Rm(u8),
}

proptest! {
    /// Random puts, gets and removes against a model map with a size cap: the filesystem never
    /// returns wrong bytes and never exceeds its limit.
    #[test]
    fn never_returns_wrong_bytes(ops in proptest::collection::vec(prop_oneof![
        (0u8..8, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(k, v)| Op::Put(k, v)),
        (0u8..8).prop_map(Op::Get),
        (0u8..8).prop_map(Op::Rm),
    ], 1..100)) {
        let limit = 100;
        let fs = fs_with(limit);
        let mut model: std::collections::HashMap<u8, Vec<u8>> = Default::default();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Put(k, v) => {
                    let tmp = format!(".tmp{i}");
                    match put(&fs, &tmp, &key(k), &v) {
                        Ok(()) => { model.insert(k, v); } // success means the key now holds v
                        Err(e) => {
                            prop_assert_eq!(e.errno(), libc::EEXIST);
                            prop_assert!(model.get(&k).is_some_and(|m| *m != v));
                            fs.unlink(ROOT_INO, OsStr::new(&tmp)).unwrap();
                        }
                    }
                }
                Op::Get(k) => match get(&fs, &key(k)) {
                    Ok(bytes) => prop_assert_eq!(Some(&bytes), model.get(&k)),
                    Err(e) => {
                        prop_assert_eq!(e.errno(), libc::ENOENT);
                        model.remove(&k); // evicted (or never there)
                    }
                },
                Op::Rm(k) => {
                    let present = fs.unlink(ROOT_INO, &name(&key(k))).is_ok();
                    if !present { prop_assert!(fs.store().stat(&key(k)).unwrap().is_none()); }
                    model.remove(&k);
                }
            }
            prop_assert!(fs.store().usage().used <= limit);
        }
    }
}

#[test]
fn a_temporary_that_announces_its_key_keeps_the_rename_lookup_off_the_remote() {
    use crate::remote::faulty::FaultyRemote;
    use crate::remote::memory::MemoryRemote;
    use crate::store::tiered::{RemoteLabel, TieredStore};
    let q = tempfile::tempdir().unwrap();
    let remote = Arc::new(FaultyRemote::new(MemoryRemote::new()));
    let store = TieredStore::new(MemoryStore::new(1 << 20), Arc::clone(&remote), q.path(), RemoteLabel::default());
    let fs = CacheFs::new(Arc::new(store.unwrap()), FsOptions { uid: 1, gid: 1, want_backing: false });
    let k = key(4);
    // A lookup with no announcing temporary asks the bucket.
    assert!(matches!(fs.lookup(ROOT_INO, &name(&k)), Err(FsError::NotFound)));
    let asked = remote.calls();
    assert_eq!(asked, 1);
    // While `.tmp.<key>…` exists, the lookup (the kernel's, before the rename) stays local.
    let tmp = format!(".tmp.{}.123.456", k.to_hex());
    let (_, o) = fs.create(ROOT_INO, OsStr::new(&tmp), W).unwrap();
    fs.write(o.fh, 0, b"about to be committed").unwrap();
    fs.release(o.fh);
    assert!(matches!(fs.lookup(ROOT_INO, &name(&k)), Err(FsError::NotFound)));
    assert_eq!(remote.calls(), asked, "no GET for an announced key");
    // Another key is not covered by that temporary.
    let _ = fs.lookup(ROOT_INO, &name(&key(5)));
    assert_eq!(remote.calls(), asked + 1);
    fs.rename(ROOT_INO, OsStr::new(&tmp), ROOT_INO, &name(&k), false).unwrap();
    assert_eq!(get(&fs, &k).unwrap(), b"about to be committed");
}

#[test]
fn only_the_owner_and_root_may_change_the_cache_other_users_may_read_and_report() {
    let fs = fs_with(1 << 20);
    assert!(fs.may_change(1, None).is_ok(), "the owner");
    assert!(fs.may_change(0, None).is_ok(), "root");
    assert_eq!(fs.may_change(2, None).unwrap_err().errno(), libc::EACCES);
    assert_eq!(fs.may_change(2, Some(special::CONTROL_INO)).unwrap_err().errno(), libc::EACCES);
    assert!(fs.may_change(2, Some(special::REPORT_INO)).is_ok(), "anyone may report a compile");
}

#[test]
fn saved_entry_metadata_is_restored_without_asking_the_bucket() {
    use crate::protocol::object::EntryMeta;
    use crate::remote::faulty::FaultyRemote;
    use crate::remote::memory::MemoryRemote;
    use crate::remote::Remote;
    use crate::store::tiered::{RemoteLabel, TieredStore};
    let q = tempfile::tempdir().unwrap();
    let remote = Arc::new(FaultyRemote::new(MemoryRemote::new()));
    // In the bucket, but evicted here before the restart.
    remote.inner().put(&key(7), b"in the bucket", blake3::hash(b"in the bucket").as_bytes(), None).unwrap();
    let store = TieredStore::new(MemoryStore::new(1 << 20), Arc::clone(&remote), q.path(), RemoteLabel::default());
    let fs = CacheFs::new(Arc::new(store.unwrap()), FsOptions { uid: 1, gid: 1, want_backing: false });
    let before = remote.calls();
    fs.restore_entries(vec![(key(7), EntryMeta { crate_name: "gone".into(), ..EntryMeta::default() })]);
    assert_eq!(remote.calls(), before, "a start never downloads what was evicted");
    assert!(fs.entries_snapshot().is_empty());
}

#[test]
fn a_removed_objects_link_leaves_the_by_crate_view() {
    use crate::protocol::object::{CompileResult, EntryMeta};
    let fs = fs_with(1 << 20);
    let object = |n: u8| {
        let meta = EntryMeta { crate_name: format!("crate{n}"), ..EntryMeta::default() };
        CompileResult { meta, files: Vec::new(), stdout: vec![n], stderr: Vec::new() }.encode().unwrap()
    };
    for n in 0..20 {
        put(&fs, &format!(".tmp.{n}"), &key(n), &object(n)).unwrap();
    }
    // Look at every entry through by-crate/, as `ls -R` does.
    let by_crate = fs.lookup(ROOT_INO, OsStr::new(BY_CRATE)).unwrap().ino;
    for n in 0..20 {
        let dir = fs.lookup(by_crate, OsStr::new(&format!("crate{n}"))).unwrap().ino;
        fs.lookup(dir, &name(&key(n))).unwrap();
    }
    let full = fs.view().len();
    for n in 0..20 {
        fs.unlink(ROOT_INO, &name(&key(n))).unwrap();
    }
    assert!(fs.view().len() <= full - 20, "{} of {full} view inodes left", fs.view().len());
}

#[test]
fn an_eviction_caused_by_a_fetch_reaches_the_kernel() {
    use crate::remote::memory::MemoryRemote;
    use crate::remote::Remote;
    use crate::store::tiered::{RemoteLabel, TieredStore};
    let q = tempfile::tempdir().unwrap();
    let remote = Arc::new(MemoryRemote::new());
    let far = vec![9u8; 600];
    remote.put(&key(9), &far, blake3::hash(&far).as_bytes(), None).unwrap();
    let store = TieredStore::new(MemoryStore::new(1000), Arc::clone(&remote), q.path(), RemoteLabel::default());
    let store = Arc::new(store.unwrap());
    let fs = CacheFs::new(Arc::clone(&store), FsOptions { uid: 1, gid: 1, want_backing: false });
    let (tx, rx) = std::sync::mpsc::channel();
    fs.set_invalidation_sink(tx);
    put(&fs, ".tmp.1", &key(1), &[1u8; 600]).unwrap();
    // Until its upload is done key(1) is pinned and cannot make room (a loaded machine once
    // lost that race here): wait for the upload, the event this test is not about.
    assert!(store.drain(std::time::Duration::from_secs(30)), "key(1) uploaded");
    // Looking up the bucket's object brings it in, and evicts key(1) to make room.
    fs.lookup(ROOT_INO, &name(&key(9))).unwrap();
    let told: Vec<_> = rx.try_iter().map(|i| i.name).collect();
    assert_eq!(told, vec![name(&key(1))]);
}

#[test]
fn cairn_socket_names_the_daemons_socket_for_clients_that_know_only_the_mount() {
    let fs = fs_with(1 << 20);
    let dir = fs.lookup(ROOT_INO, OsStr::new(special::CAIRN_DIR)).unwrap().ino;
    let read = |fs: &CacheFs<MemoryStore>| {
        let ino = fs.lookup(dir, OsStr::new("socket")).unwrap().ino;
        let o = fs.open(ino, R).unwrap();
        fs.read(o.fh, 0, 4096).unwrap()
    };
    assert_eq!(read(&fs), b"", "nothing before the socket is bound");
    fs.set_doors(crate::stats::Doors { socket: Some("/s/cairn.sock".into()), ..Default::default() });
    assert_eq!(read(&fs), b"/s/cairn.sock\n");
    let ino = fs.lookup(dir, OsStr::new("socket")).unwrap().ino;
    assert!(fs.open(ino, W).is_err(), "read-only");
}

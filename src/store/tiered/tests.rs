//! Tests of the tiered store: two "machines" (memory stores) sharing one remote.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::remote::faulty::FaultyRemote;
use crate::remote::memory::MemoryRemote;
use crate::remote::sign::Signer;
use crate::store::memory::MemoryStore;

type Bucket = Arc<FaultyRemote<MemoryRemote>>;
type Tiered = TieredStore<MemoryStore, Bucket>;

fn bucket() -> Bucket {
    Arc::new(FaultyRemote::new(MemoryRemote::new()))
}

fn machine(limit: u64, remote: &Bucket, dir: &std::path::Path) -> Tiered {
    TieredStore::new(MemoryStore::new(limit), Arc::clone(remote), dir, RemoteLabel::default()).unwrap()
}

fn put<S: Store>(s: &S, key: &Key, data: &[u8]) -> Result<Committed, StoreError> {
    let t = s.create_temp()?;
    t.write_at(0, data).unwrap();
    s.commit(&t, key)
}

fn read<S: Store>(s: &S, key: &Key) -> Option<Vec<u8>> {
    let r = s.open(key).unwrap()?;
    Some(r.read_at(0, 1 << 20).unwrap())
}

fn key(n: u8) -> Key {
    Key([n; 32])
}

#[test]
fn an_object_committed_on_one_machine_is_read_on_another() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = bucket();
    let a = machine(1 << 20, &remote, da.path());
    let b = machine(1 << 20, &remote, db.path());
    put(&a, &key(1), b"shared bytes").unwrap();
    assert!(a.drain(Duration::from_secs(5)));
    assert!(remote.inner().contains(&key(1)));
    assert_eq!(read(&b, &key(1)).unwrap(), b"shared bytes");
    assert!(b.local().stat(&key(1)).unwrap().is_some(), "stored locally on b, counted in its LRU");
}

#[test]
fn a_commit_returns_at_local_speed_while_the_remote_is_stalled() {
    let d = tempfile::tempdir().unwrap();
    let remote = bucket();
    remote.stall();
    let a = machine(1 << 20, &remote, d.path());
    let t0 = std::time::Instant::now();
    for n in 0..20 {
        put(&a, &key(n), &[n; 1000]).unwrap();
    }
    assert!(t0.elapsed() < Duration::from_secs(2), "commits never wait for the remote");
    assert_eq!(a.usage().uploads_pending, 20);
    remote.heal();
    assert!(a.drain(Duration::from_secs(10)));
    assert_eq!(remote.inner().len(), 20);
}

#[test]
fn pending_uploads_survive_a_crash_and_arrive_after_restart() {
    let d = tempfile::tempdir().unwrap();
    let remote = bucket();
    remote.fail(RemoteErrorKind::Unreachable);
    let local = MemoryStore::new(1 << 20);
    {
        let a = TieredStore::new(local.clone(), Arc::clone(&remote), d.path(), RemoteLabel::default()).unwrap();
        put(&a, &key(7), b"late").unwrap();
        assert!(!a.drain(Duration::from_millis(300)));
        // The process dies here: its upload is still queued on disk.
    }
    remote.heal();
    let a = TieredStore::new(local, Arc::clone(&remote), d.path(), RemoteLabel::default()).unwrap();
    assert!(a.drain(Duration::from_secs(10)));
    assert!(remote.inner().contains(&key(7)));
}

#[test]
fn rm_reaches_the_bucket_and_an_rm_is_never_undone() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = bucket();
    let a = machine(1 << 20, &remote, da.path());
    put(&a, &key(2), b"bad entry").unwrap();
    assert!(a.drain(Duration::from_secs(5)));
    assert!(a.remove(&key(2)).unwrap());
    assert!(a.stat(&key(2)).unwrap().is_none(), "not fetched back while the delete is pending or done");
    assert!(a.drain(Duration::from_secs(5)));
    assert!(!remote.inner().contains(&key(2)));
    let b = machine(1 << 20, &remote, db.path());
    assert!(b.stat(&key(2)).unwrap().is_none());
}

#[test]
fn an_unreachable_remote_makes_misses_fast_and_is_asked_once() {
    let d = tempfile::tempdir().unwrap();
    let remote = bucket();
    remote.fail(RemoteErrorKind::Unreachable);
    let a = machine(1 << 20, &remote, d.path());
    assert!(a.stat(&key(3)).unwrap().is_none());
    let calls = remote.calls();
    for n in 10..50 {
        assert!(a.stat(&key(n)).unwrap().is_none());
    }
    assert_eq!(remote.calls(), calls, "no further calls while the remote is down");
    put(&a, &key(4), b"still works locally").unwrap();
    assert_eq!(read(&a, &key(4)).unwrap(), b"still works locally");
}

#[test]
fn objects_waiting_for_upload_are_not_evicted_within_the_pin_budget() {
    let d = tempfile::tempdir().unwrap();
    let remote = bucket();
    remote.fail(RemoteErrorKind::Unreachable);
    let a = machine(40, &remote, d.path());
    // Half the limit (20 bytes) may wait pinned; the rest is queued but evictable.
    for n in 1..=4 {
        put(&a, &key(n), &[n; 10]).unwrap();
    }
    put(&a, &key(5), &[5; 10]).unwrap();
    assert!(a.local().stat(&key(1)).unwrap().is_some() && a.local().stat(&key(2)).unwrap().is_some());
    assert!(a.local().stat(&key(3)).unwrap().is_none(), "past the budget, the oldest is evicted");
    // The remote stays down, and the cache keeps taking new objects.
    for n in 6..30 {
        put(&a, &key(n), &[n; 10]).unwrap();
    }
    assert!(a.local().stat(&key(1)).unwrap().is_some(), "still pinned for its upload");
    remote.heal();
}

#[test]
fn a_bucket_that_refuses_uploads_never_fills_the_local_cache() {
    let d = tempfile::tempdir().unwrap();
    let remote = bucket();
    remote.fail(RemoteErrorKind::Denied);
    let a = machine(30, &remote, d.path());
    put(&a, &key(1), &[1; 10]).unwrap();
    wait_for("the first upload to be refused", || a.usage().uploads_failed >= 1);
    let calls = remote.calls();
    for n in 2..40 {
        put(&a, &key(n), &[n; 10]).expect("commits keep working at local speed");
    }
    assert_eq!(read(&a, &key(39)).unwrap(), vec![39; 10]);
    assert!(remote.calls() <= calls + 1, "no more uploads are tried while the bucket refuses them");
    let problem = a.remote_problem().expect("the problem is on record");
    assert!(problem.contains("403"), "{problem}");
}

#[test]
fn the_problem_is_cleared_when_the_remote_answers_again() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = bucket();
    let a = machine(1 << 20, &remote, da.path());
    put(&a, &key(1), b"x").unwrap();
    assert!(a.drain(Duration::from_secs(5)));
    let b = machine(1 << 20, &remote, db.path());
    remote.fail(RemoteErrorKind::NoBucket);
    assert!(b.stat(&key(1)).unwrap().is_none());
    assert!(b.remote_problem().unwrap().contains("does not exist"));
    remote.heal();
    assert!(b.stat(&key(1)).unwrap().is_some());
    assert_eq!(b.remote_problem(), None);
}

#[test]
fn a_refused_write_stays_the_problem_while_reads_succeed_until_a_write_succeeds() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = bucket();
    let a = machine(1 << 20, &remote, da.path());
    put(&a, &key(1), b"x").unwrap();
    assert!(a.drain(Duration::from_secs(5)));
    let b = machine(1 << 20, &remote, db.path());
    remote.fail_writes(RemoteErrorKind::WriteDenied);
    put(&b, &key(2), b"y").unwrap();
    wait_for("the refused upload", || b.usage().uploads_failed >= 1);
    assert!(b.stat(&key(1)).unwrap().is_some(), "reads work");
    let problem = b.remote_problem().expect("a read that succeeds does not clear a write refusal");
    assert!(problem.contains("--s3-read-only"), "{problem}");
    remote.heal();
    // The upload waits out its refusal; a delete (rm) goes now, and succeeds.
    b.remove(&key(1)).unwrap();
    wait_for("a write that succeeds to clear it", || b.remote_problem().is_none());
    assert!(!remote.inner().contains(&key(1)));
}

#[test]
fn a_damaged_copy_in_the_bucket_is_a_miss() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = bucket();
    let a = machine(1 << 20, &remote, da.path());
    put(&a, &key(5), b"original").unwrap();
    assert!(a.drain(Duration::from_secs(5)));
    remote.inner().corrupt(&key(5));
    let b = machine(1 << 20, &remote, db.path());
    assert!(b.stat(&key(5)).unwrap().is_none());
}

#[test]
fn a_key_committed_here_is_never_hidden_by_a_negative_answer() {
    let d = tempfile::tempdir().unwrap();
    let remote = bucket();
    let a = machine(1 << 20, &remote, d.path());
    assert!(a.stat(&key(6)).unwrap().is_none()); // remembered as absent remotely
    put(&a, &key(6), b"now here").unwrap();
    assert_eq!(read(&a, &key(6)).unwrap(), b"now here");
}

#[test]
fn failures_are_explained_with_the_fix() {
    let e = RemoteError::new(RemoteErrorKind::Denied, "403 Forbidden");
    let text = e.explain("cache", "http://127.0.0.1:9000");
    assert!(text.contains("403") && text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");
    let e = RemoteError::new(RemoteErrorKind::Tls, "received corrupt message of type InvalidContentType");
    assert!(e.explain("cache", "https://x").contains("http://x"));
}

/// Polls `cond` until it holds (10 s at most).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A hint format for these tests: `hint:` followed by raw 32-byte keys.
fn test_hints() -> Option<Hints> {
    Some(Box::new(|b: &[u8]| match b.strip_prefix(b"hint:") {
        Some(rest) => rest.chunks_exact(32).map(|c| Key(c.try_into().unwrap())).collect(),
        None => Vec::new(),
    }))
}

#[test]
fn keys_a_fetched_object_hints_at_arrive_before_they_are_asked_for() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = bucket();
    let a = machine(1 << 20, &remote, da.path());
    put(&a, &key(2), b"the result").unwrap();
    put(&a, &key(3), b"another result").unwrap();
    let mut manifest = b"hint:".to_vec();
    manifest.extend_from_slice(&key(2).0);
    manifest.extend_from_slice(&key(3).0);
    manifest.extend_from_slice(&key(9).0); // not in the bucket: a miss, nothing else
    put(&a, &key(1), &manifest).unwrap();
    assert!(a.drain(Duration::from_secs(5)));
    let options = Options { hints: test_hints(), ..Options::default() };
    let b = TieredStore::with_options(MemoryStore::new(1 << 20), Arc::clone(&remote), db.path(), options).unwrap();
    assert_eq!(read(&b, &key(1)).unwrap(), manifest);
    wait_for("the hinted keys to be prefetched", || b.usage().prefetched >= 2);
    assert!(b.local().stat(&key(2)).unwrap().is_some() && b.local().stat(&key(3)).unwrap().is_some());
    assert!(b.local().stat(&key(9)).unwrap().is_none());
    let calls = remote.calls();
    assert_eq!(read(&b, &key(2)).unwrap(), b"the result", "served locally");
    assert_eq!(remote.calls(), calls, "no second GET for a prefetched key");
    assert_eq!(b.usage().fetched, 3);
}

#[test]
fn concurrent_lookups_of_one_missing_key_make_one_get() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = bucket();
    let a = machine(1 << 20, &remote, da.path());
    put(&a, &key(5), b"wanted by four").unwrap();
    assert!(a.drain(Duration::from_secs(5)));
    let b = Arc::new(machine(1 << 20, &remote, db.path()));
    remote.stall();
    let before = remote.calls();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || read(&*b, &key(5)))
        })
        .collect();
    // One reader is inside the stalled GET; the other three wait for it.
    wait_for("readers to line up behind one GET", || remote.calls() > before && b.fetch_waiters() == 3);
    remote.heal();
    for r in readers {
        assert_eq!(r.join().unwrap().unwrap(), b"wanted by four");
    }
    assert_eq!(remote.calls(), before + 1, "one GET for four readers");
}

#[test]
fn an_upload_under_way_when_the_key_is_removed_and_committed_again_leaves_the_new_bytes() {
    let d = tempfile::tempdir().unwrap();
    let remote = bucket();
    remote.stall();
    let a = machine(1 << 20, &remote, d.path());
    put(&a, &key(8), b"removed bytes").unwrap();
    // A worker has read the old bytes and is inside the stalled PUT.
    wait_for("the first upload to start", || remote.calls() >= 1);
    assert!(a.remove(&key(8)).unwrap());
    put(&a, &key(8), b"the new bytes").unwrap();
    remote.heal();
    assert!(a.drain(Duration::from_secs(10)));
    let got = remote.inner().get(&key(8)).unwrap().map(|o| o.bytes);
    assert_eq!(got.as_deref(), Some(&b"the new bytes"[..]), "the bucket holds what is committed now");
}

#[test]
fn a_lookup_waiting_on_a_stuck_fetch_gives_up_as_a_miss() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = bucket();
    let a = machine(1 << 20, &remote, da.path());
    put(&a, &key(5), b"slow to come").unwrap();
    assert!(a.drain(Duration::from_secs(5)));
    let b = Arc::new(machine(1 << 20, &remote, db.path()));
    b.set_fetch_wait(Duration::from_millis(200));
    let before = remote.calls();
    remote.stall();
    let first = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || read(&*b, &key(5)))
    };
    wait_for("the first GET to start", || remote.calls() > before);
    let t0 = std::time::Instant::now();
    assert!(b.stat(&key(5)).unwrap().is_none(), "a miss, not a hang");
    assert!(t0.elapsed() < Duration::from_secs(5));
    remote.heal();
    assert_eq!(first.join().unwrap().unwrap(), b"slow to come");
}

fn signed_machine(remote: &Bucket, dir: &std::path::Path, secret: Option<&[u8]>, read_only: bool) -> Tiered {
    let options = Options { signer: secret.map(Signer::from_secret), read_only, ..Options::default() };
    TieredStore::with_options(MemoryStore::new(1 << 20), Arc::clone(remote), dir, options).unwrap()
}

#[test]
fn a_reader_with_a_signing_key_takes_only_objects_signed_with_it() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let remote = bucket();
    let team = b"the team's secret key";
    let writer = signed_machine(&remote, dirs[0].path(), Some(team), false);
    let planter = signed_machine(&remote, dirs[1].path(), None, false);
    put(&writer, &key(1), b"built by the team").unwrap();
    put(&planter, &key(2), b"planted proc-macro").unwrap();
    assert!(writer.drain(Duration::from_secs(5)) && planter.drain(Duration::from_secs(5)));
    // A signed object copied under another key, with its signature.
    let copied = remote.inner().get(&key(1)).unwrap().unwrap();
    remote.inner().put(&key(3), &copied.bytes, &copied.checksum.unwrap(), copied.signature.as_ref()).unwrap();

    let reader = signed_machine(&remote, dirs[2].path(), Some(team), false);
    assert_eq!(read(&reader, &key(1)).unwrap(), b"built by the team");
    assert!(read(&reader, &key(2)).is_none(), "unsigned: a miss");
    assert!(read(&reader, &key(3)).is_none(), "signed for another key: a miss");
    assert_eq!(reader.usage().unsigned_refused, 2);
    let trusting = signed_machine(&remote, dirs[3].path(), None, false);
    assert_eq!(read(&trusting, &key(2)).unwrap(), b"planted proc-macro", "no key: every object, as before");
}

#[test]
fn a_read_only_machine_never_writes_the_bucket() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = bucket();
    let writer = machine(1 << 20, &remote, da.path());
    put(&writer, &key(1), b"from the writer").unwrap();
    assert!(writer.drain(Duration::from_secs(5)));
    let calls = remote.calls();
    let ro = signed_machine(&remote, db.path(), None, true);
    assert_eq!(read(&ro, &key(1)).unwrap(), b"from the writer");
    put(&ro, &key(2), b"local only").unwrap();
    assert!(ro.remove(&key(1)).unwrap());
    assert!(ro.stat(&key(1)).unwrap().is_none(), "not fetched back after its rm here");
    // Nothing was queued, so nothing can be sent later either.
    assert_eq!((ro.usage().uploads_pending, ro.usage().deletes_pending), (0, 0));
    assert_eq!(remote.calls(), calls + 1, "one GET, no PUT, no DELETE");
    assert!(remote.inner().contains(&key(1)) && !remote.inner().contains(&key(2)));
    assert!(ro.usage().remote_read_only);
}

#[test]
fn answers_of_not_in_the_bucket_are_remembered_within_a_bound() {
    let d = tempfile::tempdir().unwrap();
    let remote = bucket();
    let a = machine(1 << 20, &remote, d.path());
    for n in 0..(MAX_NEGATIVE as u32 + 500) {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_le_bytes());
        assert!(a.stat(&Key(k)).unwrap().is_none());
    }
    assert!(a.negative_len() <= MAX_NEGATIVE, "{}", a.negative_len());
}

//! A panic while serving one request (a bug) fails that request with EIO, and the mount goes
//! on serving. The filesystem runs in this process, over a store that panics on demand.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use cairn::fs::{CacheFs, FsOptions};
use cairn::fuse::FuseAdapter;
use cairn::key::Key;
use cairn::store::faulty::{Fault, FaultyStore};
use cairn::store::memory::MemoryStore;

use crate::common::{can_mount, Unmount};

#[test]
fn a_panic_in_a_callback_fails_one_request_and_the_mount_goes_on() {
    if !can_mount("a_panic_in_a_callback_fails_one_request_and_the_mount_goes_on") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let store = Arc::new(FaultyStore::new(MemoryStore::new(1 << 20)));
    let opts =
        FsOptions { uid: nix::unistd::getuid().as_raw(), gid: nix::unistd::getgid().as_raw(), want_backing: false };
    let fs = Arc::new(CacheFs::new(Arc::clone(&store), opts));
    let mut cfg = fuser::Config::default();
    cfg.n_threads = Some(2);
    let session = fuser::Session::new(FuseAdapter::new(fs, false), &mnt, &cfg).unwrap();
    let _bg = session.spawn().unwrap();
    let _unmount = Unmount(mnt.clone());

    let data = b"served after the panics";
    let key = Key::of_bytes(data);
    let tmp = mnt.join(".tmp.p");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, mnt.join(key.to_hex())).unwrap();

    // More panics than the session has worker threads.
    store.arm(Fault::PanicOnOpen);
    let path = mnt.join(key.to_hex());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let errnos: Vec<i32> = (0..6).map(|_| crate::common::errno(std::fs::read(&path))).collect();
        store.heal();
        let _ = tx.send((errnos, std::fs::read(&path).ok()));
    });
    let (errnos, after) = rx.recv_timeout(Duration::from_secs(30)).expect("the mount hung after the panics");
    assert_eq!(errnos, vec![libc::EIO; 6]);
    assert_eq!(after.as_deref(), Some(&data[..]), "served once the fault is gone");
}

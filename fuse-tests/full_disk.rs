//! A full disk under the store: the commit fails with ENOSPC, nothing committed is lost, and
//! the mount keeps working once there is room.

use std::process::Command;

use crate::common::{errno, is_root, mount_store};

struct Tmpfs(std::path::PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_commit_with_enospc_and_loses_nothing() {
    let test = "a_full_disk_fails_the_commit_with_enospc_and_loses_nothing";
    if !is_root(test, "to mount a small tmpfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("small");
    std::fs::create_dir_all(&store).unwrap();
    let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&store).status().unwrap();
    assert!(ok.success(), "mounting a 2 MiB tmpfs");
    let _t = Tmpfs(store.clone());
    // The cache limit (64 MiB) is far above the disk (2 MiB): the disk fills first.
    let Some(m) = mount_store(test, Some(&store), "64MiB", &[]) else {
        return;
    };
    let kept = m.put(&[1u8; 300 * 1024]);
    let big = vec![2u8; 3 << 20];
    let key = cairn::key::Key::of_bytes(&big);
    let err = m.put_as(&key, &big).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(!m.path(&key.to_hex()).exists());
    assert_eq!(std::fs::read(m.path(&kept.to_hex())).unwrap(), vec![1u8; 300 * 1024], "nothing lost");
    // With room again, commits work.
    let small = m.put(&[3u8; 1000]);
    assert_eq!(m.ls().len(), 2, "{:?}", m.ls());
    assert!(m.ls().contains(&small.to_hex()));
    assert_eq!(errno(std::fs::read(m.path(&key.to_hex()))), libc::ENOENT);
}

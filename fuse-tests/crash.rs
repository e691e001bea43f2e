//! kill -9 of the daemon mid-write leaves no partial object; the next mount recovers.

use std::io::Write;

use crate::common::mount;
use cairn::key::Key;

#[test]
fn kill9_mid_write_leaves_no_partial_object_and_the_next_mount_recovers() {
    let Some(mut m) = mount("kill9_mid_write_leaves_no_partial_object_and_the_next_mount_recovers", "64MiB") else {
        return;
    };
    let kept = m.put(b"committed before the crash");
    let key = Key([0x77; 32]);
    let mut f = std::fs::File::create(m.path(".tmp.dying")).unwrap();
    f.write_all(&vec![9u8; 1 << 20]).unwrap();
    m.kill9();
    // The writer's rename can no longer happen: the mount is dead.
    let err = std::fs::rename(m.path(".tmp.dying"), m.path(&key.to_hex())).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
    drop(f);
    m.start(); // over the dead mount
    assert_eq!(m.ls(), vec![kept.to_hex()]);
    assert!(!m.path(&key.to_hex()).exists());
    assert!(!m.path(".tmp.dying").exists());
    assert_eq!(std::fs::read_dir(m.store.join("v1/tmp")).unwrap().count(), 0, "leftover temporaries deleted");
    assert_eq!(std::fs::read(m.path(&kept.to_hex())).unwrap(), b"committed before the crash");
    assert!(m.log_text().contains("found a dead cairn mount"));
}

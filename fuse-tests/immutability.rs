//! Committed objects never change, whatever a process tries.

use std::fs::OpenOptions;

use crate::common::{errno, mount};

#[test]
fn every_attempt_to_change_an_object_fails_and_leaves_it_intact() {
    let Some(m) = mount("every_attempt_to_change_an_object_fails_and_leaves_it_intact", "64MiB") else {
        return;
    };
    let data = b"immutable".to_vec();
    let key = m.put(&data);
    let p = m.path(&key.to_hex());
    assert_eq!(errno(OpenOptions::new().write(true).open(&p)), libc::EPERM, "open for writing");
    assert_eq!(errno(OpenOptions::new().append(true).open(&p)), libc::EPERM, "append");
    assert_eq!(errno(OpenOptions::new().write(true).truncate(true).open(&p)), libc::EPERM, "O_TRUNC");
    assert_eq!(errno(OpenOptions::new().read(true).write(true).open(&p)), libc::EPERM, "O_RDWR");
    assert_eq!(errno(nix::unistd::truncate(&p, 0).map_err(std::io::Error::from)), libc::EPERM, "truncate(2)");
    assert_eq!(
        errno(std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777))),
        libc::EPERM,
        "chmod"
    );
    assert_eq!(errno(std::fs::rename(&p, m.path(".tmp.stolen"))), libc::EPERM, "rename away");
    assert_eq!(errno(std::fs::hard_link(&p, m.path(".tmp.link"))), libc::EPERM, "link");
    // Renaming other bytes onto it: EEXIST. The same bytes: success, nothing changes.
    assert_eq!(errno(m.put_as(&key, b"different")), libc::EEXIST);
    m.put_as(&key, &data).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), data);
    assert_eq!(m.ls(), vec![key.to_hex()]);
}

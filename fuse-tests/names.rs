//! Bad names get EINVAL and a log line that says which names are allowed.

use crate::common::{errno, mount};

#[test]
fn bad_names_are_refused_with_einval_and_explained_in_the_log() {
    let Some(m) = mount("bad_names_are_refused_with_einval_and_explained_in_the_log", "64MiB") else {
        return;
    };
    assert_eq!(errno(std::fs::write(m.path("hello.txt"), b"x")), libc::EINVAL);
    assert_eq!(errno(std::fs::write(m.path(&"AB".repeat(32)), b"x")), libc::EINVAL, "uppercase key");
    assert_eq!(errno(std::fs::write(m.path(&"ab".repeat(32)), b"x")), libc::EINVAL, "a key written directly");
    assert_eq!(errno(std::fs::create_dir(m.path("dir"))), libc::EINVAL);
    assert_eq!(errno(std::os::unix::fs::symlink("/etc/passwd", m.path("link"))), libc::EINVAL);
    std::fs::write(m.path(".tmp.ok"), b"x").unwrap();
    assert_eq!(errno(std::fs::rename(m.path(".tmp.ok"), m.path("short"))), libc::EINVAL);
    assert_eq!(errno(std::fs::write(m.path(".tmp.ok/nested"), b"x")), libc::ENOTDIR, "no nesting");
    assert!(m.ls().is_empty());
    let log = m.log_text();
    assert!(log.contains("names in the cairn mount are 64 lowercase hex characters"), "{log}");
    assert!(log.contains("hello.txt"));
}

//! The mount is owner-only by default: another user cannot even look inside.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::common::mount;

#[test]
fn another_user_is_refused_by_default() {
    let Some(m) = mount("another_user_is_refused_by_default", "64MiB") else { return };
    if !nix::unistd::geteuid().is_root() {
        println!("SKIPPED another_user_is_refused_by_default: needs root to act as another user");
        return;
    }
    let key = m.put(b"private");
    // `nobody` (65534) tries to list the mount and read the object.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ls {0} ; cat {0}/{1}", m.mnt.display(), key))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("private"));
}

//! The mount is owner-only by default: another user cannot even look inside.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::common::{is_root, mount};

#[test]
fn another_user_is_refused_by_default() {
    let Some(m) = mount("another_user_is_refused_by_default", "64MiB") else { return };
    if !is_root("another_user_is_refused_by_default", "to act as another user") {
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

/// Under `--allow-other`, other users read every object, and change nothing: no rm, no new
/// object, no control command (before, any user could remove or plant entries).
#[test]
fn under_allow_other_another_user_reads_but_cannot_change_the_cache() {
    let Some(m) = crate::common::mount_with("allow-other", "64MiB", &["--allow-other"]) else { return };
    if !is_root("under_allow_other_another_user_reads_but_cannot_change_the_cache", "to act as another user") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(m.mnt.parent().unwrap(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = m.put(b"shared, read-only for others");
    let as_nobody = |cmd: String| {
        let out = Command::new("sh").arg("-c").arg(cmd).uid(65534).gid(65534).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = as_nobody(format!("cat {}/{key}", m.mnt.display()));
    assert!(ok && out == "shared, read-only for others", "{err}");
    for cmd in [
        format!("rm -f {}/{key}", m.mnt.display()),
        format!("echo planted > {}/.tmp.nobody", m.mnt.display()),
        format!("echo clear > {}/.cairn/control", m.mnt.display()),
    ] {
        let (ok, _, err) = as_nobody(cmd.clone());
        assert!(!ok && err.contains("Permission denied"), "{cmd}: {err}");
    }
    assert_eq!(std::fs::read(m.path(&key.to_hex())).unwrap(), b"shared, read-only for others");
    assert!(!m.path(".tmp.nobody").exists());
}

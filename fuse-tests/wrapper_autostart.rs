//! With no daemon running, the wrapper starts one (`cairn start`) and caches the compile.

use std::process::Command;

use crate::common::{can_mount, Unmount};

#[test]
fn the_wrapper_starts_the_daemon_when_no_mount_is_there() {
    if !can_mount("the_wrapper_starts_the_daemon_when_no_mount_is_there") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mnt, store, out) = (dir.path().join("mnt"), dir.path().join("store"), dir.path().join("out"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(dir.path().join("t.rs"), "pub fn answer() -> u32 { 42 }\n").unwrap();
    let _guard = Unmount(mnt.clone());
    let compile = || {
        let st = Command::new(env!("CARGO_BIN_EXE_cairn-rustc"))
            .args(["rustc", "--crate-name", "t", "--crate-type", "lib", "--emit=dep-info,metadata,link", "--out-dir"])
            .arg(&out)
            .arg("t.rs")
            .current_dir(dir.path())
            .env("CAIRN_MOUNT", &mnt)
            .env("CAIRN_STORE", &store)
            .env("CAIRN_CONFIG", "/nonexistent/cairn.toml")
            .env("XDG_CACHE_HOME", dir.path().join("xdg"))
            .env_remove("CAIRN_AUTOSTART")
            .env_remove("CAIRN_LOG")
            .status()
            .unwrap();
        assert!(st.success());
    };
    compile();
    let log = std::fs::read_to_string(store.join("cairn-rustc.log")).unwrap();
    assert!(log.contains("\tt\t") && log.contains("\tmiss\t"), "{log}");
    assert!(
        std::fs::read_dir(&mnt).unwrap().filter(|e| e.as_ref().unwrap().file_name().len() == 64).count() >= 2,
        "result and manifest stored in the started mount"
    );
    std::fs::remove_file(out.join("libt.rlib")).unwrap();
    compile();
    let log = std::fs::read_to_string(store.join("cairn-rustc.log")).unwrap();
    assert!(log.lines().last().unwrap().contains("\thit\t"), "{log}");
    assert!(out.join("libt.rlib").exists());
}

/// `mount =` and `store =` in the config file are where the wrapper looks, as the daemon does:
/// with a mount running there, no second daemon is started (before, the wrapper read only
/// CAIRN_MOUNT and started another daemon, on the same store, at the default place).
#[test]
fn the_wrapper_uses_the_mount_named_in_the_config_file() {
    let Some(m) = crate::common::mount("config-mount", "1GiB") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (xdg, out) = (dir.path().join("xdg"), dir.path().join("out"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(dir.path().join("t.rs"), "pub fn answer() -> u32 { 41 }\n").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("mount = {:?}\nstore = {:?}\n", m.mnt, m.store)).unwrap();
    let default_mnt = xdg.join("cairn").join("mnt");
    let _guard = Unmount(default_mnt.clone());
    let before = m.ls().len();
    let st = Command::new(env!("CARGO_BIN_EXE_cairn-rustc"))
        .args(["rustc", "--crate-name", "t", "--crate-type", "lib", "--emit=dep-info,metadata,link", "--out-dir"])
        .arg(&out)
        .arg("t.rs")
        .current_dir(dir.path())
        .env_remove("CAIRN_MOUNT")
        .env_remove("CAIRN_STORE")
        .env("CAIRN_CONFIG", &config)
        .env("XDG_CACHE_HOME", &xdg)
        .env_remove("CAIRN_AUTOSTART")
        .env_remove("CAIRN_LOG")
        .status()
        .unwrap();
    assert!(st.success());
    assert!(m.ls().len() >= before + 2, "result and manifest stored in the configured mount");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(default_mnt.to_str().unwrap()), "no second daemon at the default place");
    let log = std::fs::read_to_string(m.store.join("cairn-rustc.log")).unwrap();
    assert!(log.contains("\tt\t") && log.contains("\tmiss\t"), "{log}");
}

/// A build that names only its mount (`CAIRN_MOUNT`) stores through the daemon behind that
/// mount, even while another daemon serves the default store: before, the wrapper tried the
/// default store's socket first and stored there.
#[test]
fn a_build_that_names_only_its_mount_never_reaches_the_daemon_at_the_default_store() {
    let Some(m) = crate::common::mount("named-mount", "1GiB") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (xdg, out) = (dir.path().join("xdg"), dir.path().join("out"));
    let Some(other) = crate::common::mount_store("default-store", Some(&xdg.join("cairn").join("store")), "1GiB", &[])
    else {
        return;
    };
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(dir.path().join("t.rs"), "pub fn answer() -> u32 { 43 }\n").unwrap();
    let (before, other_before) = (m.ls().len(), other.ls().len());
    let st = Command::new(env!("CARGO_BIN_EXE_cairn-rustc"))
        .args(["rustc", "--crate-name", "t", "--crate-type", "lib", "--emit=dep-info,metadata,link", "--out-dir"])
        .arg(&out)
        .arg("t.rs")
        .current_dir(dir.path())
        .env("CAIRN_MOUNT", &m.mnt)
        .env_remove("CAIRN_STORE")
        .env("CAIRN_CONFIG", "/nonexistent/cairn.toml")
        .env("XDG_CACHE_HOME", &xdg)
        .env("CAIRN_AUTOSTART", "0")
        .env_remove("CAIRN_DOOR")
        .env_remove("CAIRN_LOG")
        .status()
        .unwrap();
    assert!(st.success());
    assert!(m.ls().len() >= before + 2, "result and manifest stored behind the named mount");
    assert_eq!(other.ls().len(), other_before, "nothing stored at the default store's daemon");
}

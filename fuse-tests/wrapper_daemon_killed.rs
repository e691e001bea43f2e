//! The daemon killed with SIGKILL in the middle of a build: the build still succeeds, with a
//! correct program, and says so once; through the mount and through the socket.

use crate::common::Via;
use crate::workspace::{cargo, ensure_warm, lock, log_path, mount_via, ok, run_app, ws};

#[test]
fn daemon_killed_mid_build_still_gives_a_correct_binary() {
    killed("daemon_killed_mid_build_still_gives_a_correct_binary", Via::Mount);
}

#[test]
fn without_fuse_daemon_killed_mid_build_still_gives_a_correct_binary() {
    killed("without_fuse_daemon_killed_mid_build_still_gives_a_correct_binary", Via::Socket);
}

fn killed(test: &str, via: Via) {
    let _g = lock();
    let Some(mut m) = mount_via(test, via) else {
        return;
    };
    ensure_warm(&m);
    // The reference: the same workspace built as it is now, in the warm target dir.
    ok(cargo(Some(&m), "t-main", &log_path("kill-reference"), &["build"]));
    let expected = run_app("t-main");
    // A shim wrapper kills the daemon as cargo reaches the memchr crate.
    let shim = ws().root.parent().unwrap().join("kill-shim.sh");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" --crate-name memchr \"*) kill -9 {} 2>/dev/null;; esac\nexec {} \"$@\"\n",
            m.pid(),
            env!("CARGO_BIN_EXE_cairn-rustc")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let target = "t-kill";
    let _ = std::fs::remove_dir_all(ws().root.join(target));
    let mut c = cargo(Some(&m), target, &log_path("kill"), &["build"]);
    c.env("RUSTC_WRAPPER", &shim);
    let out = ok(c);
    m.kill9(); // reap the killed daemon
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("warning: cairn:").count(), 1, "warned once per build:\n{stderr}");
    assert_eq!(run_app(target), expected);
}

//! Background mode: start the daemon as a detached process and return once its mount is ready.
//!
//! The parent passes the write end of a pipe to the child (its number in `CAIRN_READY_FD`);
//! the child writes `ok` there once the kernel has completed the FUSE handshake. Readiness is
//! that event, not a guess: EOF without `ok` means the child failed, and its log says why.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::MountConfig;

/// Environment variable naming the readiness pipe's file descriptor.
pub const READY_FD_ENV: &str = "CAIRN_READY_FD";

/// How long to wait for a background daemon's mount.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The daemon's log file in background mode.
pub fn log_path(cfg: &MountConfig) -> PathBuf {
    cfg.store.join("daemon.log")
}

/// Starts `exe mount …` detached and waits for its mount. Returns the child's pid.
pub fn start(exe: &Path, cfg: &MountConfig, extra_args: &[String]) -> io::Result<u32> {
    std::fs::create_dir_all(&cfg.store)?;
    let log = OpenOptions::new().create(true).append(true).open(log_path(cfg))?;
    // Both ends close-on-exec; the child clears the flag on its write end only, so no other
    // process started meanwhile can hold the pipe open and hide the child's failure.
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let wfd = write_end.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.arg("mount")
        .arg("--store")
        .arg(&cfg.store)
        .arg("--max-size")
        .arg(cfg.max_size.to_string())
        .args(extra_args)
        .arg(&cfg.mountpoint)
        .env(READY_FD_ENV, wfd.to_string())
        // A daemon outlives the build that started it: it must not keep that build's folder
        // busy (its paths are absolute by now).
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    if cfg.allow_other {
        cmd.arg("--allow-other");
    }
    // SAFETY: setsid and fcntl are async-signal-safe. setsid detaches the daemon from the
    // caller's terminal and process group so that a Ctrl-C in the caller's shell does not kill
    // the cache.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::fcntl(wfd, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(write_end);
    wait_ready(read_end, cfg)?;
    Ok(child.id())
}

fn wait_ready(read_end: OwnedFd, cfg: &MountConfig) -> io::Result<()> {
    let mut pfd = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&read_end), nix::poll::PollFlags::POLLIN)];
    let ms = READY_TIMEOUT.as_millis() as u16;
    let n = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms)).map_err(io::Error::from)?;
    let mut buf = String::new();
    if n > 0 {
        let mut f = std::fs::File::from(read_end);
        let _ = f.read_to_string(&mut buf);
    }
    if buf.trim() == "ok" {
        return Ok(());
    }
    let tail = std::fs::read_to_string(log_path(cfg)).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(io::Error::other(format!(
        "the cairn daemon did not become ready{}; its log ({}) ends with:\n{}",
        if n == 0 { " in time" } else { "" },
        log_path(cfg).display(),
        tail.join("\n")
    )))
}

/// In a daemon started by [`start`]: report readiness to the parent.
pub fn signal_ready() {
    let Some(fd) = std::env::var(READY_FD_ENV).ok().and_then(|v| v.parse::<i32>().ok()) else {
        return;
    };
    std::env::remove_var(READY_FD_ENV);
    // SAFETY: the parent created this descriptor for us and nothing else in this process
    // uses it; we take ownership once and close it after writing.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let _ = f.write_all(b"ok\n");
}

//! The test harness: start a daemon on a temporary store, wait for its readiness event, and
//! unmount (or kill) it.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use cairn::key::Key;

/// Unmounts a mount this test did not start as a [`Mount`] when dropped, lazily, so that even
/// a hung mount does not outlive the test.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.0).output();
    }
}

/// Whether this run is a CI run: `CI` set to anything but empty, `0` or `false` (CI systems
/// set `CI=true`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// The one rule for a test that cannot run here: print `SKIPPED <test>: <why>` and let it
/// pass, except under CI, where it fails with the reason. A CI runner without FUSE (or not
/// root) would otherwise pass every mount test while testing nothing.
pub fn skip(test: &str, why: &str) {
    assert!(!in_ci(), "{test} cannot run here, and under CI=true a test may not skip: {why}");
    println!("SKIPPED {test}: {why}");
}

/// Why nothing can be mounted here, if nothing can.
fn cannot_mount() -> Option<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(dev) = std::fs::metadata("/dev/fuse") else {
        return Some("/dev/fuse is absent on this machine".into());
    };
    // The FUSE device is the misc character device 10:229; anything else at that path (a
    // container's bind-mounted /dev/null) opens fine and fails only at mount time.
    let rdev = dev.rdev();
    if !dev.file_type().is_char_device() || (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)) != (10, 229) {
        return Some("/dev/fuse is not the FUSE device (10:229)".into());
    }
    if Command::new("fusermount3").arg("-V").output().is_err() {
        return Some("fusermount3 is not installed (scripts/test installs fuse3)".into());
    }
    None
}

/// Whether `test` can mount here; if it cannot, it is [`skip`]ped.
pub fn can_mount(test: &str) -> bool {
    match cannot_mount() {
        Some(why) => {
            skip(test, &why);
            false
        }
        None => true,
    }
}

/// Whether `test` runs as root, which it needs `for_what`; if not, it is [`skip`]ped.
pub fn is_root(test: &str, for_what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip(test, &format!("needs root {for_what}"));
    false
}

/// Which of the daemon's doors a test's builds go through: its FUSE mount, or its socket in a
/// mount namespace where `/dev/fuse` is `/dev/null` (what a container without FUSE sees).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Mount,
    Socket,
}

/// Whether `test` can make a mount namespace without FUSE (it needs root and `unshare`); if
/// not, it is [`skip`]ped.
pub fn can_hide_fuse(test: &str) -> bool {
    if !is_root(test, "to make a mount namespace without FUSE (unshare -m)") {
        return false;
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        skip(test, "unshare (util-linux) is not installed");
        return false;
    }
    true
}

/// `c`, run in a new mount namespace whose `/dev/fuse` is `/dev/null`: a FUSE mount cannot be
/// made there, as in a `docker build` step or a CI container. Mounts made outside before it
/// starts stay visible, as a bind mount of a host folder would.
pub fn without_fuse(c: &Command) -> Command {
    let mut w = Command::new("unshare");
    w.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount --bind /dev/null /dev/fuse && exec \"$@\"")
        .arg("sh")
        .arg(c.get_program())
        .args(c.get_args());
    if let Some(d) = c.get_current_dir() {
        w.current_dir(d);
    }
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    w
}

/// Starts a mount, or, where it cannot, [`skip`]s the test and returns `None`.
pub fn mount(test: &str, limit: &str) -> Option<Mount> {
    mount_with(test, limit, &[])
}

/// Like [`mount`] with extra daemon flags.
pub fn mount_with(test: &str, limit: &str, flags: &[&str]) -> Option<Mount> {
    mount_store(test, None, limit, flags)
}

/// Like [`mount_with`], over a given store folder (shared between tests that run one at a time).
pub fn mount_store(test: &str, store: Option<&Path>, limit: &str, flags: &[&str]) -> Option<Mount> {
    mount_store_with_env(test, store, limit, flags, &[])
}

/// Like [`mount_store`], with extra environment for the daemon.
pub fn mount_store_with_env(
    test: &str,
    store: Option<&Path>,
    limit: &str,
    flags: &[&str],
    env: &[(String, String)],
) -> Option<Mount> {
    mount_via(test, store, limit, flags, env, Via::Mount)
}

/// Like [`mount_store_with_env`], through the given door: with [`Via::Socket`], the daemon
/// starts in a namespace without FUSE, so it serves its socket alone.
pub fn mount_via(
    test: &str,
    store: Option<&Path>,
    limit: &str,
    flags: &[&str],
    env: &[(String, String)],
    via: Via,
) -> Option<Mount> {
    let can = match via {
        Via::Mount => can_mount(test),
        Via::Socket => can_hide_fuse(test),
    };
    if !can {
        return None;
    }
    let dir = tempfile::Builder::new().prefix("cairn-fuse-").tempdir().unwrap();
    let mut m = Mount {
        store: store.map(Path::to_path_buf).unwrap_or_else(|| dir.path().join("store")),
        mnt: dir.path().join("mnt"),
        log: dir.path().join("daemon.log"),
        limit: limit.to_string(),
        flags: flags.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        child: None,
        via,
        _dir: dir,
    };
    m.env = env.to_vec();
    m.start();
    Some(m)
}

/// A running daemon and its folders.
pub struct Mount {
    pub store: PathBuf,
    pub mnt: PathBuf,
    pub log: PathBuf,
    limit: String,
    flags: Vec<String>,
    /// Extra environment for the daemon (S3 credentials).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    /// Which door the daemon offers the builds.
    pub via: Via,
    _dir: tempfile::TempDir,
}

impl Mount {
    /// Starts the daemon in the foreground as a child and waits for its readiness pipe.
    pub fn start(&mut self) {
        assert!(self.child.is_none());
        // Both ends close-on-exec, so daemons of tests running in parallel never hold each
        // other's pipes; the child clears the flag on its own write end only.
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let wfd = w.as_raw_fd();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("mount")
            .arg("--store")
            .arg(&self.store)
            .arg("--max-size")
            .arg(&self.limit)
            .args(&self.flags)
            .arg(&self.mnt)
            .env("CAIRN_READY_FD", wfd.to_string())
            .env("CAIRN_CONFIG", "/nonexistent/cairn.toml")
            .env("CAIRN_LOG_LEVEL", "debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("CAIRN_MOUNT")
            .env_remove("CAIRN_STORE")
            .env_remove("CAIRN_MAX_SIZE");
        if self.via == Via::Socket {
            cmd = without_fuse(&cmd);
        }
        // SAFETY: fcntl is async-signal-safe and touches only the child's descriptor table.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                libc::fcntl(wfd, libc::F_SETFD, 0);
                Ok(())
            });
        }
        let child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log)).spawn().expect("spawning cairn");
        drop(w);
        let mut buf = String::new();
        std::fs::File::from(r).read_to_string(&mut buf).unwrap();
        assert_eq!(buf.trim(), "ok", "daemon did not become ready; log:\n{}", self.log_text());
        self.child = Some(child);
        if self.via == Via::Socket {
            // The test is only worth its name if the daemon found no FUSE and said so.
            let doors = &self.stats()["doors"];
            assert!(doors["mount"].is_null(), "the daemon mounted where FUSE was hidden: {doors}");
            let why = doors["why_no_mount"].as_str().unwrap_or_default();
            assert!(why.contains("not the FUSE device"), "{doors}");
        }
    }

    /// Runs `cairn ARGS` against this daemon (its mount or its socket); insists it succeeds.
    pub fn cairn(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .env("CAIRN_MOUNT", &self.mnt)
            .env("CAIRN_STORE", &self.store)
            .env("CAIRN_CONFIG", "/nonexistent/cairn.toml")
            .output()
            .unwrap();
        assert!(out.status.success(), "cairn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The daemon's stats document, through whichever door it has.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.cairn(&["stats", "--json"])).unwrap()
    }

    /// Unmounts cleanly and waits for the daemon to exit (it saves its index first).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let out = match self.via {
            Via::Mount => Command::new("fusermount3").arg("-u").arg(&self.mnt).output().unwrap(),
            Via::Socket => self.stop_socket().output().unwrap(),
        };
        assert!(out.status.success(), "stopping the daemon: {}", String::from_utf8_lossy(&out.stderr));
        let status = child.wait().unwrap();
        assert!(status.success(), "daemon exited with {status}; log:\n{}", self.log_text());
    }

    /// `cairn stop` for a daemon without a mount: through its socket.
    fn stop_socket(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.args(["stop", "--store"]).arg(&self.store).arg(&self.mnt).env("CAIRN_CONFIG", "/nonexistent/cairn.toml");
        c
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the daemon with SIGKILL, leaving a dead mount behind.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Path of a name in the mount.
    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// Path of an object's bytes in the store.
    pub fn store_path(&self, key: &Key) -> PathBuf {
        let hex = key.to_hex();
        self.store.join("v1").join("objects").join(&hex[..2]).join(hex)
    }

    /// Commits `data` under its own BLAKE3 key through temp + rename, with std::fs.
    pub fn put(&self, data: &[u8]) -> Key {
        let key = Key::of_bytes(data);
        self.put_as(&key, data).unwrap();
        key
    }

    /// Commits `data` under `key`.
    pub fn put_as(&self, key: &Key, data: &[u8]) -> std::io::Result<()> {
        let tmp = self.path(&format!(".tmp.{}.{}", std::process::id(), rand_suffix()));
        let r = std::fs::write(&tmp, data).and_then(|()| std::fs::rename(&tmp, self.path(&key.to_hex())));
        if r.is_err() {
            // A writer that fails must delete its temporary, or it holds the space.
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }

    /// Objects listed in the mount root (64-hex names; not `by-crate`, not `.cairn`).
    pub fn ls(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.mnt)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| Key::parse(n).is_some())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("fusermount3").arg("-u").arg(&self.mnt).output();
            if self.via == Via::Socket {
                let _ = self.stop_socket().output();
                let _ = child.wait();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("fusermount3").arg("-uz").arg(&self.mnt).output();
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Waits for a condition that another process brings about (an upload arriving, a deletion
/// reaching the bucket), checking every 20 ms, for at most `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `cairn doctor` with these flags and environment: (passed, its output). It gets a cache home
/// of its own: the machine's default mount (live, dead or absent) is not the test's business.
pub fn doctor(flags: &[&str], env: &[(String, String)]) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("doctor")
        .args(flags)
        .env_remove("CAIRN_MOUNT")
        .env("XDG_CACHE_HOME", home.path())
        .env("CAIRN_CONFIG", "/nonexistent/cairn.toml")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a shell command; returns (success, stdout, stderr).
pub fn sh(cmd: &str) -> (bool, String, String) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The raw OS error of a result.
pub fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.expect_err("expected an error").raw_os_error().expect("an OS error")
}

/// An extended attribute of a file (following symlinks), as text; `None` when absent.
pub fn xattr(path: &Path, name: &str) -> Option<String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the given length.
    let len = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| String::from_utf8_lossy(&buf[..len as usize]).into_owned())
}

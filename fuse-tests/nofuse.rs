//! Caching where FUSE cannot be used (issue #20), in mount namespaces whose `/dev/fuse` is
//! `/dev/null`, as in a `docker build` step: the wrapper starts a daemon that serves its socket
//! alone and says why; concurrent wrappers start one daemon; a store filled that way is whole
//! when mounted later; a container given the host's cache folder uses the host's daemon; a
//! killed daemon's socket is replaced at the next start; and an ordinary user's cache works the
//! same, closed to other users.
//!
//! The end-to-end builds through the socket (warm builds, build scripts and C, another
//! checkout, a fresh runner on a warm bucket, `cairn rm`, the daemon killed mid-build) are the
//! `without_fuse_*` twins of the mount's tests in their own modules.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common::{can_hide_fuse, mount_via, wait_until, without_fuse, Via};
use crate::workspace::{cacheable, cargo, cargo_in, ensure_warm, lock, log_path, ok, read_log, ws};

/// A cache home with no daemon: mount point, store and XDG folder under a temporary folder.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::Builder::new().prefix("cairn-nofuse-").tempdir().unwrap();
        std::fs::write(dir.path().join("t.rs"), "pub fn answer() -> u32 { 42 }\n").unwrap();
        Home { dir }
    }
    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    fn socket(&self) -> PathBuf {
        self.store().join("cairn.sock")
    }

    /// `cairn-rustc rustc … t.rs` into `out`, with the daemon started on demand, where FUSE is
    /// hidden.
    fn compile(&self, out: &str) -> Command {
        let out = self.dir.path().join(out);
        std::fs::create_dir_all(&out).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn-rustc"));
        c.args(["rustc", "--crate-name", "t", "--crate-type", "lib", "--emit=dep-info,metadata,link", "--out-dir"])
            .arg(&out)
            .arg("t.rs")
            .current_dir(self.dir.path());
        self.env(&mut c);
        without_fuse(&c)
    }

    fn env(&self, c: &mut Command) {
        c.env("CAIRN_MOUNT", self.mnt())
            .env("CAIRN_STORE", self.store())
            .env("CAIRN_CONFIG", "/nonexistent/cairn.toml")
            .env("XDG_CACHE_HOME", self.dir.path().join("xdg"))
            .env_remove("CAIRN_AUTOSTART")
            .env_remove("CAIRN_LOG");
    }

    /// `cairn ARGS` for this home, where FUSE is hidden.
    fn cairn(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.args(args);
        self.env(&mut c);
        without_fuse(&c).output().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.store().join("cairn-rustc.log")).unwrap_or_default()
    }

    /// The daemon's pid, from its stats.
    fn daemon_pid(&self) -> u32 {
        let out = self.cairn(&["stats", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["pid"].as_u64().unwrap() as u32
    }

    /// Stops the daemon through its socket and waits until it has exited.
    fn stop(&self) {
        let pid = self.daemon_pid();
        let out = self.cairn(&["stop"]);
        assert!(out.status.success(), "cairn stop: {}", String::from_utf8_lossy(&out.stderr));
        assert!(cairn::admin::wait_exit(pid, std::time::Duration::from_secs(30)), "the daemon exited");
        assert!(!self.socket().exists(), "a stopped daemon takes its socket with it");
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if self.socket().exists() {
            let _ = self.cairn(&["stop"]);
        }
    }
}

fn success(mut c: Command) -> Output {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn without_fuse_the_wrapper_starts_a_daemon_that_serves_its_socket_and_says_why() {
    if !can_hide_fuse("without_fuse_the_wrapper_starts_a_daemon_that_serves_its_socket_and_says_why") {
        return;
    }
    let h = Home::new();
    let out = success(h.compile("out"));
    assert!(String::from_utf8_lossy(&out.stderr).is_empty(), "no warning: {}", String::from_utf8_lossy(&out.stderr));
    assert!(h.log().contains("\tt\t") && h.log().contains("\tmiss\t"), "{}", h.log());
    assert!(h.socket().exists(), "the daemon listens in the store folder");
    let mode = std::fs::metadata(h.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is its owner's alone");
    std::fs::remove_file(h.dir.path().join("out/libt.rlib")).unwrap();
    success(h.compile("out"));
    assert!(h.log().lines().last().unwrap().contains("\thit\t"), "{}", h.log());
    assert!(h.dir.path().join("out/libt.rlib").exists());
    // Which door and why, in the stats, the doctor and the daemon's log.
    let stats = String::from_utf8(success_output(h.cairn(&["stats"]))).unwrap();
    assert!(stats.contains("socket") && stats.contains("only: /dev/fuse is not the FUSE device"), "{stats}");
    let doctor = String::from_utf8(success_output(h.cairn(&["doctor"]))).unwrap();
    assert!(doctor.contains("the wrapper uses the daemon's socket"), "{doctor}");
    let daemon_log = std::fs::read_to_string(h.store().join("daemon.log")).unwrap();
    assert_eq!(daemon_log.matches("serving without a mount").count(), 1, "{daemon_log}");
    h.stop();
}

fn success_output(out: Output) -> Vec<u8> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// No `/dev/fuse` at all (a container's `/dev` made without it): the daemon names that reason.
#[test]
fn without_fuse_a_machine_with_no_fuse_device_is_named_as_the_reason() {
    if !can_hide_fuse("without_fuse_a_machine_with_no_fuse_device_is_named_as_the_reason") {
        return;
    }
    let h = Home::new();
    // A /dev of a few nodes, as a minimal container has, without fuse.
    let dev = h.dir.path().join("dev");
    std::fs::create_dir(&dev).unwrap();
    let mut nodes = String::new();
    for (name, minor) in [("null", 3), ("zero", 5), ("urandom", 9)] {
        nodes.push_str(&format!("mknod -m 666 {}/{name} c 1 {minor} && ", dev.display()));
    }
    let mut start = Command::new(env!("CARGO_BIN_EXE_cairn"));
    start.arg("start");
    h.env(&mut start);
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{nodes}mount --bind {} /dev && exec \"$@\"", dev.display()))
        .arg("sh")
        .arg(start.get_program())
        .args(start.get_args())
        .envs(start.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env_remove("CAIRN_AUTOSTART");
    let out = success(c);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(said.contains("serving without a mount (there is no /dev/fuse"), "{said}");
    let stats = String::from_utf8(success_output(h.cairn(&["stats"]))).unwrap();
    assert!(stats.contains("only: there is no /dev/fuse"), "{stats}");
    h.stop();
}

#[test]
fn without_fuse_wrappers_that_start_at_once_start_one_daemon_and_all_store() {
    if !can_hide_fuse("without_fuse_wrappers_that_start_at_once_start_one_daemon_and_all_store") {
        return;
    }
    let h = Home::new();
    let children: Vec<_> = (0..4).map(|i| h.compile(&format!("out{i}")).spawn().unwrap()).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let daemon_log = std::fs::read_to_string(h.store().join("daemon.log")).unwrap();
    assert_eq!(daemon_log.matches("serving without a mount").count(), 1, "one daemon: {daemon_log}");
    let log = h.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("\tt\t")).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("\tmiss\t") || l.contains("\thit\t")), "no cache error: {lines:?}");
    h.stop();
}

/// `wait_exit` (what `cairn stop` and the test below wait with) says a process has exited only
/// once none of its threads runs. A leader that exits while another thread still runs shows as
/// a zombie, yet its files stay open: a daemon killed that way still took a connection on its
/// socket and never answered it, and a build's lookup missed (seen once under CI's load).
#[test]
fn a_process_whose_leader_exited_before_its_threads_is_still_running() {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import ctypes, threading, time\nthreading.Thread(target=time.sleep, args=(1.5,)).start()\n\
             ctypes.CDLL(None).pthread_exit(None)\n",
        ])
        .spawn()
        .expect("python3 runs");
    let pid = child.id();
    let zombie = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
            .unwrap_or(false)
    };
    let t0 = std::time::Instant::now();
    while !zombie() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "the leader never exited");
        std::thread::yield_now();
    }
    assert!(!cairn::admin::wait_exit(pid, std::time::Duration::from_millis(200)), "its other thread still runs");
    assert!(cairn::admin::wait_exit(pid, std::time::Duration::from_secs(10)), "then it exits");
    assert!(child.wait().unwrap().success());
}

#[test]
fn without_fuse_a_killed_daemons_socket_is_replaced_by_the_next_start_and_nothing_is_lost() {
    if !can_hide_fuse("without_fuse_a_killed_daemons_socket_is_replaced_by_the_next_start_and_nothing_is_lost") {
        return;
    }
    let h = Home::new();
    success(h.compile("out"));
    let pid = h.daemon_pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(cairn::admin::wait_exit(pid, std::time::Duration::from_secs(10)));
    assert!(h.socket().exists(), "a killed daemon leaves its socket file behind");
    std::fs::remove_file(h.dir.path().join("out/libt.rlib")).unwrap();
    success(h.compile("out"));
    assert!(h.log().lines().last().unwrap().contains("\thit\t"), "the object survived: {}", h.log());
    assert_ne!(h.daemon_pid(), pid, "a new daemon");
    h.stop();
}

/// A store filled through the socket, mounted later: the mount lists every object, and a warm
/// build through it runs nothing.
#[test]
fn a_store_filled_without_fuse_is_whole_when_mounted_and_a_warm_build_through_the_mount_runs_nothing() {
    let test = "a_store_filled_without_fuse_is_whole_when_mounted_and_a_warm_build_through_the_mount_runs_nothing";
    let _g = lock();
    let store = tempfile::tempdir().unwrap();
    let Some(mut s) = mount_via(test, Some(store.path()), "8GiB", &[], &[], Via::Socket) else { return };
    let target = "t-nofuse-fill";
    let build = |m: &crate::common::Mount, name: &str| {
        ok(cargo(None, target, &log_path("x"), &["clean"]));
        let log = log_path(name);
        ok(cargo(Some(m), target, &log, &["build", "-p", "serde_json"]));
        read_log(&log)
    };
    let cold = build(&s, "nofuse-fill-cold");
    assert!(cacheable(&cold).len() >= 4, "{cold:?}");
    let mut through_socket: Vec<String> = listing(&s);
    s.stop();
    let Some(m) = mount_via(test, Some(store.path()), "8GiB", &[], &[], Via::Mount) else { return };
    let mut through_mount = m.ls();
    through_socket.sort();
    through_mount.sort();
    assert!(!through_mount.is_empty());
    assert_eq!(through_mount, through_socket, "the mount lists what the socket stored");
    let warm = build(&m, "nofuse-fill-warm");
    let ran: Vec<_> = warm.iter().filter(|l| !l.outcome.starts_with("hit")).collect();
    assert!(!warm.is_empty() && ran.is_empty(), "compiled through the mount: {ran:?}");
}

/// The objects a daemon lists through its socket.
fn listing(m: &crate::common::Mount) -> Vec<String> {
    let stream = cairn::protocol::wire::connect(&m.store).unwrap();
    let door = cairn::engine::door::Door::Socket { stream, store: m.store.clone() };
    door.list("").unwrap().into_iter().map(|l| l.name).filter(|n| cairn::key::Key::parse(n).is_some()).collect()
}

/// A container given the host's cache folder (here: the store, in a namespace where the host's
/// mount point is not where the container looks) uses the host's mounted daemon through its
/// socket: every compile hits, and the host's stats count them.
#[test]
fn a_container_given_the_hosts_cache_folder_uses_the_hosts_daemon() {
    let _g = lock();
    let test = "a_container_given_the_hosts_cache_folder_uses_the_hosts_daemon";
    let Some(m) = crate::workspace::mount(test) else { return };
    if !can_hide_fuse(test) {
        return;
    }
    ensure_warm(&m);
    let before = m.stats()["since_start"]["hits"].as_u64().unwrap();
    ok(cargo(None, "t-container", &log_path("x"), &["clean"]));
    let log = log_path("container");
    let w = ws();
    let mut c = cargo_in(&w.root, &w.xdg, None, "t-container", &log, &["build"]);
    c.env("RUSTC_WRAPPER", env!("CARGO_BIN_EXE_cairn-rustc"))
        .env("CAIRN_MOUNT", w.root.join("no-mount-here"))
        .env("CAIRN_STORE", &m.store)
        .env("CAIRN_LOG", &log)
        .env("CAIRN_AUTOSTART", "0");
    ok(without_fuse(&c));
    let lines = read_log(&log);
    let missed: Vec<_> = lines.iter().filter(|l| !l.outcome.starts_with("hit")).collect();
    assert!(cacheable(&lines).len() >= 25 && missed.is_empty(), "{missed:?}");
    let stats = m.stats();
    assert!(stats["doors"]["mount"].is_string(), "the host's daemon is mounted: {}", stats["doors"]);
    let after = stats["since_start"]["hits"].as_u64().unwrap();
    assert!(after >= before + 25, "the host's daemon served the hits: {before} -> {after}");
}

/// The toolchain of this test, bind-mounted where an ordinary user can run it (root's home is
/// closed to others on most machines).
fn sysroot() -> PathBuf {
    let out = Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// An ordinary user (made with `useradd`) where FUSE is kept from them — a `/dev/fuse` only
/// root may open, none at all, a mount point they may not mount on: a cargo build of a package with a build script starts the
/// user's own daemon, which serves its socket alone and says why; a build after `cargo clean`
/// (with a new daemon) hits every compile; and another user may not use the socket.
#[test]
fn without_fuse_an_ordinary_users_build_is_cached_and_other_users_are_kept_out() {
    let test = "without_fuse_an_ordinary_users_build_is_cached_and_other_users_are_kept_out";
    if !can_hide_fuse(test) {
        return;
    }
    let user = "cairn-test-user";
    if Command::new("id").arg(user).output().unwrap().status.code() != Some(0) {
        let out = Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", user]).output().unwrap();
        assert!(out.status.success(), "useradd: {}", String::from_utf8_lossy(&out.stderr));
    }
    // A daemon left by an earlier run of this test would serve a store about to be removed.
    let _ = Command::new("pkill").args(["-KILL", "-u", user, "-x", "cairn"]).status();
    let home = PathBuf::from(format!("/home/{user}"));
    let project = home.join("proj");
    let _ = std::fs::remove_dir_all(&project);
    let _ = std::fs::remove_dir_all(home.join(".cache"));
    let files = [
        ("Cargo.toml", "[package]\nname = \"userapp\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
        ("build.rs", "fn main() {\n    println!(\"cargo:rustc-env=USERAPP_TAG=seven\");\n}\n"),
        ("src/lib.rs", "pub fn tag() -> &'static str {\n    env!(\"USERAPP_TAG\")\n}\n"),
        ("src/main.rs", "fn main() {\n    println!(\"{}\", userapp::tag());\n}\n"),
    ];
    for (name, text) in files {
        let p = project.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    let chown = Command::new("chown").args(["-R", &format!("{user}:{user}")]).arg(&home).status().unwrap();
    assert!(chown.success());
    let tmp = tempfile::Builder::new().prefix("cairn-tc-").tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tc = tmp.path().join("toolchain");
    std::fs::create_dir(&tc).unwrap();
    let bins = PathBuf::from(env!("CARGO_BIN_EXE_cairn")).parent().unwrap().to_path_buf();
    // Two ways a machine keeps FUSE from a user: a `/dev/fuse` only root may open (mode 0600,
    // as on some VMs; the real device node), and none at all (a container's `/dev/null`).
    let root_only_fuse = format!(
        "{{ [ -e {dev} ] || mknod -m 600 {dev} c 10 229; }} && mount --bind {dev} /dev/fuse",
        dev = tmp.path().join("fuse").display()
    );
    let hidden_fuse = "mount --bind /dev/null /dev/fuse".to_string();
    // As root in a new mount namespace: FUSE kept away, the toolchain made reachable, then
    // the user's build.
    let as_user = |fuse: &str, what: &str, log: &str| -> Output {
        let script = format!(
            "{fuse} && mount --bind {sysroot} {tc} && \
             exec su {user} -s /bin/sh -c 'cd {project} && \
             env -i HOME={home} PATH={tc}/bin:{bins}:/usr/bin:/bin CARGO_INCREMENTAL=0 \
             RUSTC_WRAPPER={bins}/cairn-rustc CAIRN_LOG={home}/{log} CAIRN_SEED=0 CARGO_NET_OFFLINE=true \
             sh -c \"{what}\"'",
            sysroot = sysroot().display(),
            tc = tc.display(),
            project = project.display(),
            home = home.display(),
            bins = bins.display(),
        );
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]).output().unwrap()
    };
    let out = as_user(&root_only_fuse, "cargo build && ./target/debug/userapp", "cold.log");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "seven");
    let store = home.join(".cache/cairn/store");
    let socket = store.join("cairn.sock");
    let meta = std::fs::metadata(&socket).expect("the user's daemon serves its socket");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), uid_of(user), "the user's own daemon");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let daemon_log = std::fs::read_to_string(store.join("daemon.log")).unwrap();
    assert!(daemon_log.contains("/dev/fuse may not be opened by this user"), "{daemon_log}");
    // Root's files the build read (the toolchain, the C library and start files its links
    // read) take no attribute from the user: their hashes are remembered beside, so the next
    // compile does not read them again (engine/filehash.rs).
    let memos = std::fs::read_dir(home.join(".cache/cairn/filehashes")).map(|d| d.count()).unwrap_or(0);
    assert!(memos > 0, "no memo kept beside for root's files");
    // The daemon outlives the namespace it started in; stop it, and let the next build start
    // one where FUSE is hidden another way.
    let out = as_user(&hidden_fuse, "cairn stop", "stop.log");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = as_user(&hidden_fuse, "cargo clean && cargo build && ./target/debug/userapp", "warm.log");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "seven");
    let warm = crate::workspace::read_log_all(&home.join("warm.log"));
    let not_hit: Vec<_> = warm.iter().filter(|l| l.outcome != "hit").collect();
    assert!(warm.len() >= 3 && not_hit.is_empty(), "lib, bin and build script all hit: {warm:?}");
    // Another user cannot reach the socket: the kernel refuses the connect.
    let other = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bins.join("cairn"))
        .args(["stats", "--store"])
        .arg(&store)
        .env("CAIRN_MOUNT", home.join("nothing"))
        .env("CAIRN_CONFIG", "/nonexistent/cairn.toml")
        .output()
        .unwrap();
    assert!(!other.status.success(), "nobody read the user's stats");
    // The user stops their daemon; it leaves nothing behind.
    let daemon_log = std::fs::read_to_string(store.join("daemon.log")).unwrap();
    assert!(daemon_log.contains("/dev/fuse is not the FUSE device"), "{daemon_log}");
    let out = as_user(&hidden_fuse, "cairn stop", "stop.log");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until(30, "the user's daemon to remove its socket", || !socket.exists());
    // A third way: FUSE is there, but this user may not mount where the cache is configured
    // (a folder of root's): the mount fails, and the daemon serves its socket instead.
    let roots = tmp.path().join("roots-folder");
    std::fs::create_dir(&roots).unwrap();
    let mount_here = format!("export CAIRN_MOUNT={}; ", roots.display());
    let what = format!("{mount_here}cargo clean && cargo build && ./target/debug/userapp");
    // (This machine's own /dev/fuse may be root's alone, as here: give the namespace an open one.)
    let open_fuse = format!(
        "{{ [ -e {dev} ] || mknod -m 666 {dev} c 10 229; }} && mount --bind {dev} /dev/fuse",
        dev = tmp.path().join("fuse-open").display()
    );
    let out = as_user(&open_fuse, &what, "refused.log");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "seven");
    let daemon_log = std::fs::read_to_string(store.join("daemon.log")).unwrap();
    assert!(daemon_log.contains(&format!("mounting at {} failed", roots.display())), "{daemon_log}");
    let lines = crate::workspace::read_log_all(&home.join("refused.log"));
    assert!(!lines.is_empty() && lines.iter().all(|l| l.outcome == "hit"), "{lines:?}");
    let out = as_user(&open_fuse, &format!("{mount_here}cairn stop"), "stop.log");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until(30, "the user's daemon to remove its socket", || !socket.exists());
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

/// The socket judges a peer by the uid the kernel reports, never by the file's mode: with the
/// socket opened to everyone (mode 0666, folders open) but no `--allow-other`, another user is
/// refused even a read; under `--allow-other` they read, and may not remove.
#[test]
fn without_fuse_another_user_is_judged_by_the_kernels_credentials() {
    let test = "without_fuse_another_user_is_judged_by_the_kernels_credentials";
    let as_nobody = |m: &crate::common::Mount, args: &[&str]| -> Output {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .arg("--store")
            .arg(&m.store)
            .env("CAIRN_MOUNT", m.store.join("no-mount"))
            .env("CAIRN_CONFIG", "/nonexistent/cairn.toml")
            .env("XDG_CACHE_HOME", "/nonexistent")
            .output()
            .unwrap()
    };
    // Open every folder on the way, and the socket itself, so only the daemon can say no.
    let open_up = |m: &crate::common::Mount| {
        for dir in [m.store.parent().unwrap(), &m.store] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(m.store.join("cairn.sock"), std::fs::Permissions::from_mode(0o666)).unwrap();
    };
    let Some(m) = mount_via(test, None, "1GiB", &[], &[], Via::Socket) else { return };
    open_up(&m);
    let out = as_nobody(&m, &["stats"]);
    assert!(!out.status.success(), "another user read the stats of a daemon without --allow-other");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "the daemon refused, not the file system: {err}");
    drop(m);

    let Some(m) = mount_via(test, None, "1GiB", &["--allow-other"], &[], Via::Socket) else { return };
    open_up(&m);
    let data = b"the owner's object";
    let key = cairn::key::Key::of_bytes(data);
    let door = cairn::engine::door::Door::at(None, Some(&m.store)).unwrap();
    door.put(&key, data, false).unwrap();
    let out = as_nobody(&m, &["stats"]);
    assert!(out.status.success(), "under --allow-other others read: {}", String::from_utf8_lossy(&out.stderr));
    let out = as_nobody(&m, &["rm", &key.to_hex()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(door.read(&key.to_hex()).unwrap(), data, "the object is still there");
}

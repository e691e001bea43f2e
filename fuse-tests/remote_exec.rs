//! Remote execution (issue #22, docs/remote-execution.md) against a real engine: BuildGrid
//! with host workers, started by `scripts/reapi-engine` once for this test binary (and
//! stopped when it exits). As root, the workers run in a mount namespace where this
//! machine's toolchain (the rustup sysroot, CARGO_HOME, `/usr/lib/gcc`) and the workspace
//! under test are hidden: what a compile needs must come in its input root.
//!
//! Each test asserts what a user sees: compiles ran on the engine (`cairn stats`), the
//! build passes, and what it built is byte for byte what the same build makes without the
//! engine; an engine that is down costs a fallback per compile, never a build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::{doctor, mount_via, Via};
use crate::workspace::{cargo, lock, log_path, ok, ws};

struct Engine {
    dir: PathBuf,
    address: String,
}

static ENGINE: OnceLock<Engine> = OnceLock::new();

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reapi-engine")
}

extern "C" fn stop_engine() {
    if let Some(e) = ENGINE.get() {
        let _ = Command::new("bash").arg(script()).arg("stop").arg(&e.dir).output();
        let _ = std::fs::remove_dir_all(&e.dir);
    }
}

/// What the workers must not see: the toolchain, CARGO_HOME, gcc's own folder, and the
/// workspace (its files reach a compile only through the input root).
fn hidden() -> Vec<PathBuf> {
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
    let mut v = vec![PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim())];
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    v.push(home);
    v.push(PathBuf::from("/usr/lib/gcc"));
    v.push(ws().root.clone());
    v.push(crate::csys::csys().root.clone());
    for dir in [rg_base(), share_base()] {
        std::fs::create_dir_all(&dir).unwrap();
        v.push(dir);
    }
    v.into_iter().filter(|p| p.is_dir()).collect()
}

/// Starts an engine in `dir` with `workers` workers (hiding this machine's toolchain from
/// them when `hide` and root) and `extra` options; its address.
fn start_engine(dir: &Path, workers: u32, hide: bool, extra: &[&str]) -> String {
    let mut c = Command::new("bash");
    c.arg(script()).arg("start").arg(dir).args(["--workers", &workers.to_string()]).args(extra);
    if hide && nix::unistd::geteuid().is_root() {
        let h: Vec<String> = hidden().iter().map(|p| p.display().to_string()).collect();
        c.arg("--hide").arg(h.join(","));
    } else if hide {
        println!("not root: the workers see this machine's toolchain (hiding it needs a mount namespace)");
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "scripts/reapi-engine start failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("CAIRN_REMOTE_EXEC="))
        .unwrap_or_else(|| panic!("no CAIRN_REMOTE_EXEC= line: {stdout}"))
        .to_string()
}

/// The engine the tests share, started on first use.
fn engine() -> &'static Engine {
    ENGINE.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("cairn-reapi-").tempdir().unwrap().keep();
        let address = start_engine(&dir, 2, true, &[]);
        // SAFETY: registering a plain function to run at exit.
        unsafe { libc::atexit(stop_engine) };
        Engine { dir, address }
    })
}

/// The tests that build through the shared engine take turns: two workers serve one build at
/// a time, so no action waits in the queue behind another test's.
fn builds_on_the_engine() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// A queue limit no loaded CI machine reaches: these tests count what ran on the engine, so
/// an action must not fall back for waiting (the limit has a test of its own).
fn queue_env() -> Vec<(String, String)> {
    vec![("CAIRN_REMOTE_QUEUE".to_string(), "600".to_string())]
}

/// Every rlib and rmeta of a target dir's `debug/deps`, by name.
fn libs(target: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(target.join("debug/deps"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rlib") || n.ends_with(".rmeta"))
        .map(|n| {
            let b = std::fs::read(target.join("debug/deps").join(&n)).unwrap();
            (n, b)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn misses_compile_on_the_engine_whose_workers_lack_this_toolchain_and_outputs_match_local_ones() {
    let test = "misses_compile_on_the_engine_whose_workers_lack_this_toolchain_and_outputs_match_local_ones";
    let _l = lock();
    let e = engine();
    let flag = format!("--remote-exec={}", e.address);
    let _turn = builds_on_the_engine();
    let Some(m) = mount_via(test, None, "8GiB", &[&flag], &queue_env(), Via::Mount) else { return };
    let remote_target = ws().root.join("t-remote");
    let _ = std::fs::remove_dir_all(&remote_target);
    ok(cargo(Some(&m), "t-remote", &log_path("remote"), &["build", "-p", "app"]));
    let stats = m.stats();
    let ran = stats["remote_executed"].as_u64().unwrap();
    assert!(ran >= 10, "registry rlibs ran on the engine: {stats}");
    assert!(m.cairn(&["stats"]).contains("remote exec"), "cairn stats shows them");
    drop(m);

    // The same build without the engine, over a store of its own.
    let Some(m2) = mount_via(test, None, "8GiB", &[], &[], Via::Mount) else { return };
    let local_target = ws().root.join("t-local-cmp");
    let _ = std::fs::remove_dir_all(&local_target);
    ok(cargo(Some(&m2), "t-local-cmp", &log_path("local-cmp"), &["build", "-p", "app"]));
    let (r, l) = (libs(&remote_target), libs(&local_target));
    assert_eq!(r.iter().map(|x| &x.0).collect::<Vec<_>>(), l.iter().map(|x| &x.0).collect::<Vec<_>>());
    for ((name, a), (_, b)) in r.iter().zip(&l) {
        assert!(a == b, "{name} built on the engine differs from the local build");
    }
    let run = |t: &Path| ok(Command::new(t.join("debug/app"))).stdout;
    assert_eq!(run(&remote_target), run(&local_target), "the program prints the same");
}

#[test]
fn an_engine_that_is_down_costs_a_fallback_never_a_build() {
    let test = "an_engine_that_is_down_costs_a_fallback_never_a_build";
    let _l = lock();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let flag = format!("--remote-exec=grpc://127.0.0.1:{port}");
    let Some(m) = mount_via(test, None, "8GiB", &[&flag], &[], Via::Mount) else { return };
    let target = "t-remote-down";
    let _ = std::fs::remove_dir_all(ws().root.join(target));
    ok(cargo(Some(&m), target, &log_path("remote-down"), &["build", "-p", "app"]));
    let stats = m.stats();
    assert_eq!(stats["remote_executed"], 0, "{stats}");
    assert!(stats["remote_fallbacks"]["unreachable"].as_u64().unwrap_or(0) >= 1, "{stats}");
    let said = m.log_text().matches("remote execution off").count();
    assert!((1..=3).contains(&said), "the cause is said once per back-off, not per compile: {said}");
    assert!(m.cairn(&["stats"]).contains("unreachable"), "cairn stats names the reason");
}

#[test]
fn doctor_checks_the_engine_its_scheme_and_instance() {
    let _l = lock();
    let e = engine();
    let (passed, out) = doctor(&["--remote-exec", &e.address], &[]);
    let line = out.lines().find(|l| l.contains("remote-exec")).unwrap_or_default().to_string();
    assert!(line.starts_with("ok") && line.contains("SHA-256"), "{out}");
    let _ = passed; // FUSE checks may fail where there is no mount; the engine's line is the point
    let tls = e.address.replacen("grpc://", "grpcs://", 1);
    let (_, out) = doctor(&["--remote-exec", &tls], &[]);
    assert!(out.contains("does not speak TLS") && out.contains(&e.address), "{out}");
    let (_, out) = doctor(&["--remote-exec", &e.address, "--remote-instance", "nope"], &[]);
    assert!(out.lines().any(|l| l.starts_with("FAIL") && l.contains("instance")), "{out}");
}

#[test]
fn an_engine_with_no_worker_left_costs_a_short_wait_then_local_compiles() {
    let test = "an_engine_with_no_worker_left_costs_a_short_wait_then_local_compiles";
    let _l = lock();
    // An engine of its own, whose only worker is killed before the build.
    let dir = tempfile::Builder::new().prefix("cairn-reapi-gone-").tempdir().unwrap();
    let address = start_engine(dir.path(), 1, false, &[]);
    let blobs = dir.path().join("blobs").display().to_string();
    let killed = Command::new("pkill").args(["-9", "-f", &blobs]).status().unwrap();
    assert!(killed.success(), "the worker (its command line names {blobs}) was running");
    let flag = format!("--remote-exec={address}");
    let env = [("CAIRN_REMOTE_QUEUE".to_string(), "3".to_string())];
    let m = mount_via(test, None, "8GiB", &[&flag], &env, Via::Mount);
    if let Some(m) = m {
        let target = "t-remote-gone";
        let _ = std::fs::remove_dir_all(ws().root.join(target));
        ok(cargo(Some(&m), target, &log_path("remote-gone"), &["build", "-p", "app"]));
        let stats = m.stats();
        assert_eq!(stats["remote_executed"], 0, "{stats}");
        assert!(stats["remote_fallbacks"]["queued"].as_u64().unwrap_or(0) >= 1, "{stats}");
        assert!(m.log_text().contains("no worker took it"), "the daemon's log says why");
    }
    let _ = Command::new("bash").arg(script()).arg("stop").arg(dir.path()).output();
}

#[test]
fn a_worker_lost_in_the_middle_of_an_action_costs_a_wait_then_local_compiles() {
    let test = "a_worker_lost_in_the_middle_of_an_action_costs_a_wait_then_local_compiles";
    let _l = lock();
    // An engine of its own with one worker, which BuildGrid declares dead after 6 s of silence.
    let dir = tempfile::Builder::new().prefix("cairn-reapi-lost-").tempdir().unwrap();
    let address = start_engine(dir.path(), 1, false, &["--keepalive", "6"]);
    let flag = format!("--remote-exec={address}");
    let env = [("CAIRN_REMOTE_QUEUE".to_string(), "3".to_string())];
    if let Some(m) = mount_via(test, None, "8GiB", &[&flag], &env, Via::Mount) {
        let target = "t-remote-lost";
        let _ = std::fs::remove_dir_all(ws().root.join(target));
        let mut build = cargo(Some(&m), target, &log_path("remote-lost"), &["build", "-p", "app"]);
        let child = build.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        // The worker runs an action: a process in its work folder (the packaged rustc).
        let work = dir.path().join("work").display().to_string();
        let running = || Command::new("pgrep").args(["-f", &work]).output().unwrap().status.success();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while !running() {
            assert!(std::time::Instant::now() < deadline, "no action started on the worker in 5 minutes");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // The worker goes, with what it runs.
        let blobs = dir.path().join("blobs").display().to_string();
        assert!(Command::new("pkill").args(["-9", "-f", &blobs]).status().unwrap().success(), "the worker ran");
        let _ = Command::new("pkill").args(["-9", "-f", &work]).status();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "the build passes:\n{}", String::from_utf8_lossy(&out.stderr));
        let stats = m.stats();
        let fell: u64 = stats["remote_fallbacks"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert!(fell >= 1, "the lost action and the rest ran here: {stats}");
        assert!(stats["remote_fallbacks"]["queued"].as_u64().unwrap_or(0) >= 1, "{stats}");
        assert!(m.log_text().contains("no worker took it"), "the daemon's log says why");
        ok(Command::new(ws().root.join(target).join("debug/app")));
    }
    let _ = Command::new("bash").arg(script()).arg("stop").arg(dir.path()).output();
}

#[test]
fn the_sys_workspace_built_through_the_engine_prints_what_plain_cargo_builds() {
    let test = "the_sys_workspace_built_through_the_engine_prints_what_plain_cargo_builds";
    let _l = crate::csys::lock();
    let e = engine();
    let flag = format!("--remote-exec={}", e.address);
    // A store of its own: the fixture's shared one is warm, and hits run nowhere.
    let _turn = builds_on_the_engine();
    let Some(m) = mount_via(test, None, "8GiB", &[&flag], &queue_env(), Via::Mount) else { return };
    let none = |_: &mut Command| {};
    let remote =
        crate::csys::clean_build_run(Some(&m), "t-remote", "heavy", &crate::csys::log_path("heavy-remote"), &none);
    let stats = m.stats();
    // zstd, rusqlite, ring and their Rust dependencies, and the C objects their build
    // scripts compile (zstd's and ring's files, SQLite): cc1 and as from the package, on
    // workers that cannot see /usr/lib/gcc.
    assert!(stats["remote_executed"].as_u64().unwrap() >= 25, "{stats}");
    assert!(stats["remote_executed_cc"].as_u64().unwrap() >= 20, "{stats}");
    // What stayed here by rule is counted with its reason: what links (build scripts,
    // proc-macros, the program) and ring's C, which asks for -g3 and cannot be split.
    let skipped = &stats["remote_skipped"];
    assert!(
        skipped["links"].as_u64().unwrap_or(0) >= 1 && skipped["cannot-split"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
    let plain = crate::csys::clean_build_run(None, "t-plain", "heavy", &crate::csys::log_path("heavy-plain-r"), &none);
    assert_eq!(remote, plain, "the program built through the engine prints what plain cargo's does");
    // The C objects made on the workers are byte for byte those cairn compiles here.
    drop(m);
    let Some(here) = mount_via(&format!("{test}-here"), None, "8GiB", &[], &[], Via::Mount) else { return };
    crate::csys::clean_build_run(Some(&here), "t-here", "heavy", &crate::csys::log_path("heavy-here"), &none);
    let (there, local) = (objects(&csys_target("t-remote")), objects(&csys_target("t-here")));
    assert!(there.len() >= 20, "{:?}", there.keys().collect::<Vec<_>>());
    assert_eq!(there.keys().collect::<Vec<_>>(), local.keys().collect::<Vec<_>>());
    for (name, bytes) in &there {
        assert!(*bytes == local[name], "{name} differs between the engine's build and a build here");
    }
}

fn csys_target(name: &str) -> PathBuf {
    crate::csys::csys().root.join(name).join("debug/build")
}

/// Every C object the build scripts of a profile folder's `build/` compiled, by path.
fn objects(build: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![build.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "o") {
                out.insert(p.strip_prefix(build).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Where the ripgrep test's sources and target dirs live.
fn rg_base() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rg-remote")
}

/// ripgrep 15.1.0's sources, from crates.io (through a throwaway project's `cargo fetch`).
fn ripgrep_sources() -> PathBuf {
    let base = rg_base();
    let src = base.join("ripgrep-15.1.0");
    if src.join("Cargo.toml").is_file() {
        return src;
    }
    let fetch = base.join("fetch");
    std::fs::create_dir_all(fetch.join("src")).unwrap();
    std::fs::write(
        fetch.join("Cargo.toml"),
        "[package]\nname = \"rgfetch\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nripgrep = \"=15.1.0\"\n",
    )
    .unwrap();
    std::fs::write(fetch.join("src/main.rs"), "fn main() {}\n").unwrap();
    ok({
        let mut c = Command::new("cargo");
        c.args(["fetch", "--quiet"]).current_dir(&fetch);
        c
    });
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let krate = std::fs::read_dir(home.join("registry/cache"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join("ripgrep-15.1.0.crate"))
        .find(|p| p.is_file())
        .expect("cargo fetch brought ripgrep-15.1.0.crate");
    ok({
        let mut c = Command::new("tar");
        c.arg("xzf").arg(&krate).arg("-C").arg(&base);
        c
    });
    src
}

#[test]
fn ripgrep_with_pcre2_built_through_the_engine_searches_like_plain_cargos() {
    let test = "ripgrep_with_pcre2_built_through_the_engine_searches_like_plain_cargos";
    let e = engine();
    let src = ripgrep_sources();
    let xdg = rg_base().join("xdg");
    let flag = format!("--remote-exec={}", e.address);
    let _turn = builds_on_the_engine();
    let Some(m) = mount_via(test, None, "8GiB", &[&flag], &queue_env(), Via::Mount) else { return };
    let build = |mnt: Option<&crate::common::Mount>, target: &str| {
        let mut c =
            crate::workspace::cargo_in(&src, &xdg, mnt, target, &log_path(target), &["build", "--features", "pcre2"]);
        c.env("PCRE2_SYS_STATIC", "1");
        ok(c);
        src.join(target).join("debug/rg")
    };
    let _ = std::fs::remove_dir_all(src.join("t-remote"));
    let remote = build(Some(&m), "t-remote");
    let stats = m.stats();
    assert!(stats["remote_executed"].as_u64().unwrap() >= 20, "{stats}");
    let _ = std::fs::remove_dir_all(src.join("t-plain"));
    let plain = build(None, "t-plain");
    // PCRE2's look-behind, over ripgrep's own sources: what both programs find is the same.
    let search = |rg: &Path| {
        let mut c = Command::new(rg);
        c.args(["--pcre2", "--sort", "path", "-c", "(?<=fn )main"]).arg(src.join("crates"));
        ok(c).stdout
    };
    let found = search(&remote);
    assert!(!found.is_empty(), "the search finds something");
    assert_eq!(found, search(&plain));
    let version = |rg: &Path| {
        ok({
            let mut c = Command::new(rg);
            c.arg("--version");
            c
        })
        .stdout
    };
    assert_eq!(version(&remote), version(&plain), "the same features (+pcre2)");
}

/// Where the shared-action test's two checkouts live.
fn share_base() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("remote-share")
}

/// A small workspace: `util` (registry crates, a derive), `here` (a path in a constant, which
/// only a local compile gets right), `app` printing both.
fn write_share_ws(root: &Path) {
    let w = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("Cargo.toml", "[workspace]\nmembers = [\"app\", \"util\", \"here\"]\nresolver = \"2\"\n");
    w(
        "util/Cargo.toml",
        "[package]\nname = \"util\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
         serde = { version = \"1\", features = [\"derive\"] }\nitoa = \"1\"\nmemchr = \"2\"\n",
    );
    w(
        "util/src/lib.rs",
        "#[derive(serde::Serialize)]\npub struct P { pub n: u32 }\n\
         pub fn f() -> String { itoa::Buffer::new().format(memchr::memchr(b'c', b\"abc\").unwrap_or(9)).to_string() }\n",
    );
    w("here/Cargo.toml", "[package]\nname = \"here\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
    w("here/src/lib.rs", "pub const DIR: &str = env!(\"CARGO_MANIFEST_DIR\");\n");
    w(
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
         util = { path = \"../util\" }\nhere = { path = \"../here\" }\n",
    );
    w("app/src/main.rs", "fn main() { println!(\"{} {}\", util::f(), here::DIR); }\n");
}

#[test]
fn a_teammates_checkout_at_another_path_is_answered_from_the_engines_action_cache() {
    let test = "a_teammates_checkout_at_another_path_is_answered_from_the_engines_action_cache";
    let e = engine();
    let base = share_base();
    let (a, b) = (base.join("a/ws"), base.join("b/teammate/checkout"));
    let _ = std::fs::remove_dir_all(base.join("a"));
    let _ = std::fs::remove_dir_all(base.join("b"));
    write_share_ws(&a);
    let flag = format!("--remote-exec={}", e.address);
    let _turn = builds_on_the_engine();
    let build = |m: &crate::common::Mount, root: &Path, name: &str| {
        let xdg = base.join(format!("xdg-{name}"));
        ok(crate::workspace::cargo_in(root, &xdg, Some(m), "target", &log_path(&format!("share-{name}")), &["build"]));
        let out = ok(Command::new(root.join("target/debug/app"))).stdout;
        String::from_utf8(out).unwrap()
    };

    // One machine builds its checkout through the engine, over an empty store.
    let Some(ma) = mount_via(test, None, "8GiB", &[&flag], &queue_env(), Via::Mount) else { return };
    let printed = build(&ma, &a, "a");
    assert_eq!(printed.trim(), format!("2 {}", a.join("here").display()), "env! is this machine's path");
    let sa = ma.stats();
    assert!(sa["remote_executed"].as_u64().unwrap() >= 5, "{sa}");
    // `here` keeps its checkout's path in a constant: the worker's would be wrong there.
    assert_eq!(sa["remote_fallbacks"]["names-worker-path"], 1, "{sa}");
    drop(ma);

    // A teammate: the same sources at another path, another machine's empty store, no FUSE.
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    ok({
        let mut c = Command::new("cp");
        c.arg("-a").arg(&a).arg(&b);
        c
    });
    std::fs::remove_dir_all(b.join("target")).unwrap();
    let Some(mb) = mount_via(test, None, "8GiB", &[&flag], &queue_env(), Via::Socket) else { return };
    let printed = build(&mb, &b, "b");
    assert_eq!(printed.trim(), format!("2 {}", b.join("here").display()));
    let sb = mb.stats();
    let (ran, cached) = (sb["remote_executed"].as_u64().unwrap(), sb["remote_cached"].as_u64().unwrap());
    assert!(cached >= 5 && cached == ran, "every compile sent was one the engine had run for the other checkout: {sb}");
    assert!(mb.cairn(&["stats"]).contains(&format!("{cached} cached there")), "cairn stats says so");
    // What came back is what the first checkout built (`here` apart: it names its path).
    let keep = |v: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        v.into_iter().filter(|(n, _)| !n.starts_with("libhere-")).collect()
    };
    let (la, lb) = (keep(libs(&a.join("target"))), keep(libs(&b.join("target"))));
    assert_eq!(la.iter().map(|x| &x.0).collect::<Vec<_>>(), lb.iter().map(|x| &x.0).collect::<Vec<_>>());
    for ((name, x), (_, y)) in la.iter().zip(&lb) {
        assert!(x == y, "{name} differs between the checkouts");
    }
}

#[test]
fn an_engine_that_wants_a_token_gets_it_from_cairn_remote_headers() {
    let test = "an_engine_that_wants_a_token_gets_it_from_cairn_remote_headers";
    // An engine of its own that refuses calls without `authorization: Bearer TOKEN`.
    let dir = tempfile::Builder::new().prefix("cairn-reapi-auth-").tempdir().unwrap();
    let address = start_engine(dir.path(), 1, false, &["--auth"]);
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap();
    let header = vec![("CAIRN_REMOTE_HEADERS".to_string(), format!("authorization: Bearer {}", token.trim()))];

    // Without the header, doctor says what the engine wants and where to put it.
    let (_, out) = doctor(&["--remote-exec", &address], &[]);
    let line = out.lines().find(|l| l.contains("remote-exec")).unwrap_or_default().to_string();
    assert!(line.starts_with("FAIL") && line.contains("CAIRN_REMOTE_HEADERS"), "{out}");
    assert!(!out.contains(token.trim()), "no secret in what doctor prints");
    let (_, out) = doctor(&["--remote-exec", &address], &header);
    let line = out.lines().find(|l| l.contains("remote-exec")).unwrap_or_default().to_string();
    assert!(line.starts_with("ok"), "{out}");

    // A daemon given the header compiles on the engine.
    let root = share_base().join("auth/ws");
    let _ = std::fs::remove_dir_all(&root);
    write_share_ws(&root);
    let flag = format!("--remote-exec={address}");
    let mut env = queue_env();
    env.extend(header);
    if let Some(m) = mount_via(test, None, "8GiB", &[&flag], &env, Via::Mount) {
        let xdg = share_base().join("auth/xdg");
        ok(crate::workspace::cargo_in(&root, &xdg, Some(&m), "target", &log_path("auth"), &["build"]));
        let stats = m.stats();
        assert!(stats["remote_executed"].as_u64().unwrap() >= 5, "{stats}");
        assert_eq!(stats["remote_fallbacks"].get("denied"), None, "{stats}");
    }
    let _ = Command::new("bash").arg(script()).arg("stop").arg(dir.path()).output();
}

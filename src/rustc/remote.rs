//! A rustc miss run on the remote execution engine (issue #22; docs/remote-execution.md): the
//! wrapper's half (what every front end shares is engine/remote.rs). It decides whether a compile may go (it makes an rlib and links nothing),
//! names its inputs — the package's folder, `OUT_DIR`, the externs, the `.rmeta` files rustc
//! may search, the static libraries it bundles — and hands them to the daemon (`EXECUTE`).
//! The daemon answers with what the compile wrote, or "run it here" and why.
//!
//! What comes back is checked before the build uses it: every source rustc's dep-info names
//! must be one that was sent (a file read from the worker's own disk would be another
//! machine's), and every variable it read must be one the worker had with the value it has
//! here. Then the engine treats the result as it treats a local run: it hashes the inputs,
//! checks nothing changed while the compile ran, and stores it.
//!
//! The other half, [`launch`], runs on the worker: `cairn-rustc --cairn-remote-launch …`
//! moves the local paths of the command under the input root, runs the packaged rustc
//! through the packaged loader, and moves them back in what rustc wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::args::Invocation;
use super::{depinfo, graph};
use crate::engine::basedir::Rel;
use crate::engine::remote::{exit_code, launch_with, Launch, Places};
use crate::protocol::remote::{move_paths, top, ExecRequest, ROOTS};

/// A package folder larger than this is not sent (a repository with data files in it).
const MAX_FILES: usize = 20_000;
const MAX_BYTES: u64 = 512 << 20;

/// Why this compile stays here, if it must: it links (proc-macros, binaries: the linker and
/// the system's libraries would have to travel too), it runs through a driver (clippy), it
/// is not an rlib, or cargo did not ask for it (no `-C extra-filename`: a build script's
/// probe of the compiler, tiny, awaited at once, often meant to fail, and written to paths
/// no root covers, so no other build would repeat its action).
pub fn stays_local(inv: &Invocation, driver: bool) -> Option<&'static str> {
    if driver {
        return Some("driver");
    }
    if inv.extra_filename.is_empty() {
        return Some("not-cargo");
    }
    if inv.links() || !inv.crate_types.iter().all(|t| t == "lib" || t == "rlib") {
        return Some("links");
    }
    None
}

/// The environment rustc gets remotely: what cargo sets for it, in the action's paths.
/// Anything else a crate reads (`env!`) is then missing there, and the dep-info check sends
/// the compile back here.
fn sent_env(places: &Places) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("CARGO_") || k.starts_with("__CARGO") || k == "OUT_DIR" || k == "RUSTC_BOOTSTRAP"
        })
        // Descriptors of this machine's jobserver: the worker has its own slots.
        .filter(|(k, _)| k != "CARGO_MAKEFLAGS")
        .map(|(k, v)| (k, places.to_action(&v)))
        .collect();
    env.sort();
    env
}

/// Every file under `dir` (symbolic links followed to files), skipping hidden folders and a
/// top-level `target`. `None` when there is too much.
fn walk(dir: &Path, top_level: bool, out: &mut BTreeSet<String>, bytes: &mut u64) -> Option<()> {
    for e in fs::read_dir(dir).ok()? {
        let e = e.ok()?;
        let name = e.file_name();
        let name = name.to_str()?;
        let p = e.path();
        let meta = fs::metadata(&p).ok()?;
        if meta.is_dir() {
            if name.starts_with('.') || (top_level && name == "target") {
                continue;
            }
            walk(&p, false, out, bytes)?;
        } else if meta.is_file() {
            *bytes += meta.len();
            out.insert(p.to_str()?.to_string());
            if out.len() > MAX_FILES || *bytes > MAX_BYTES {
                return None;
            }
        }
    }
    Some(())
}

/// The request for this compile (`args` as the local run would get them), in the action's
/// paths, and the places that map them back.
pub fn request(
    rustc: &Path,
    args: &[String],
    inv: &Invocation,
    rel: &Rel,
) -> Result<(ExecRequest, Places), &'static str> {
    let places = Places::new(rel);
    let cwd = std::env::current_dir().map_err(|_| "cwd")?;
    let abs = |p: &str| -> String {
        if p.starts_with('/') {
            p.to_string()
        } else {
            cwd.join(p).display().to_string()
        }
    };
    let mut files = BTreeSet::new();
    let mut bytes = 0u64;
    let manifest = std::env::var("CARGO_MANIFEST_DIR").map_err(|_| "no-manifest-dir")?;
    walk(Path::new(&manifest), true, &mut files, &mut bytes).ok_or("package-too-large")?;
    let input = abs(&inv.input);
    if Path::new(&input).is_file() {
        files.insert(input);
    }
    if let Ok(out) = std::env::var("OUT_DIR") {
        walk(Path::new(&out), false, &mut files, &mut bytes).ok_or("out-dir-too-large")?;
    }
    for (_, p) in &inv.externs {
        if let Some(p) = p {
            files.insert(abs(p));
        }
    }
    let mut dirs: Vec<(String, String)> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = if a == "-L" { it.next().cloned() } else { a.strip_prefix("-L").map(String::from) };
        if let Some(v) = v {
            let (kind, d) = v.split_once('=').unwrap_or(("all", v.as_str()));
            dirs.push((kind.to_string(), abs(d)));
        }
    }
    // rustc finds the crates its externs depend on in `-L dependency=` folders by name and
    // hash: their metadata (and the proc-macros a library re-exports) is all a compile that
    // does not link reads. The dependency lists (graph.rs) name exactly those; without them,
    // every `.rmeta` there goes (whatever the folder holds at this moment: a correct action,
    // but not one another build repeats).
    match graph::reach_all(inv) {
        Ok(libs) => {
            for lib in libs {
                let meta = lib.with_extension("rmeta");
                let p = if lib.extension().is_some_and(|e| e == "rlib") && meta.is_file() { meta } else { lib };
                files.insert(abs(&p.display().to_string()));
            }
        }
        Err(_) => {
            for (_, d) in dirs.iter().filter(|(k, _)| k == "dependency" || k == "crate" || k == "all") {
                for e in fs::read_dir(d).into_iter().flatten().flatten() {
                    if e.file_name().to_str().is_some_and(|n| n.ends_with(".rmeta")) {
                        files.insert(e.path().display().to_string());
                    }
                }
            }
        }
    }
    for (_, d) in dirs.iter().filter(|(k, _)| k == "native" || k == "all") {
        for lib in &inv.static_libs {
            let p = Path::new(d).join(format!("lib{lib}.a"));
            if p.is_file() {
                files.insert(p.display().to_string());
            }
        }
    }
    // A path that is already an action's place would be read as another root's.
    if files.iter().any(|f| f.starts_with(ROOTS)) {
        return Err("path-clash");
    }
    let out_dir = abs(&inv.out_dir);
    let stem = format!("{}{}", inv.crate_name, inv.extra_filename);
    let dep = places.to_action(&format!("{out_dir}/{stem}.d"));
    let outputs: Vec<String> = ["rlib", "rmeta"]
        .iter()
        .map(|ext| places.to_action(&format!("{out_dir}/lib{stem}.{ext}")))
        .chain([dep.clone()])
        .collect();
    let files: Vec<(String, String)> = files.into_iter().map(|f| (f.clone(), places.to_action(&f))).collect();
    let cwd = places.to_action(&cwd.display().to_string());
    let mut roots: BTreeSet<String> = files.iter().map(|f| &f.1).chain(&outputs).filter_map(|f| top(f)).collect();
    roots.extend(top(&cwd));
    let launcher = std::env::current_exe().map_err(|_| "no-launcher")?;
    let req = ExecRequest {
        rustc: rustc.display().to_string(),
        target: inv.target.clone().unwrap_or_default(),
        launcher: launcher.display().to_string(),
        args: args.iter().map(|a| places.to_action(a)).collect(),
        env: sent_env(&places),
        cwd,
        roots: roots.into_iter().collect(),
        files,
        outputs,
        texts: vec![dep],
        ..ExecRequest::default()
    };
    Ok((req, places))
}

/// The remote dep-info read only what was sent, and only variables the worker had as here.
/// Paths are the action's.
pub fn check(req: &ExecRequest, places: &Places, files: &[(String, u32, Vec<u8>)]) -> Result<(), String> {
    let dep = files.iter().find(|(p, _, _)| req.texts.contains(p)).ok_or("no-dep-info")?;
    let info = depinfo::parse(&String::from_utf8_lossy(&dep.2));
    let sent: BTreeSet<&str> = req.files.iter().map(|(_, place)| place.as_str()).collect();
    for f in &info.files {
        let abs = if f.starts_with('/') { f.clone() } else { format!("{}/{f}", req.cwd) };
        let abs = normalize(&abs);
        if !sent.contains(abs.as_str()) {
            return Err("read-unsent-file".into());
        }
    }
    let env: BTreeMap<&str, &str> = req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for name in &info.env {
        let there = env.get(name.as_str()).map(|v| places.to_local(v));
        if there != std::env::var(name).ok() {
            return Err("env".into());
        }
    }
    Ok(())
}

/// `a/./b/../c` → `a/c`, without asking the filesystem.
fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The launcher, on the worker: `cairn-rustc --cairn-remote-launch --cwd=C --roots=R1:R2
/// [--text=P]… [--out=P]… -- ARGS…`, started through the packaged loader in the input root.
pub fn launch(argv: &[OsString]) -> i32 {
    launch_with(argv, run_rustc)
}

fn run_rustc(l: &Launch) -> io::Result<i32> {
    let (base, tc) = (&l.base, &l.toolchain);
    let mut cmd = Command::new(format!("{tc}/sys/ld.so"));
    cmd.arg("--library-path").arg(format!("{tc}/lib:{tc}/sys")).arg(format!("{tc}/bin/rustc"));
    cmd.arg("--sysroot").arg(tc);
    // What is under the input root reads as the local path it stands for; the command's own
    // remappings (more particular, given later) win over this one.
    cmd.arg(format!("--remap-path-prefix={base}="));
    cmd.args(l.rest.iter().map(|a| move_paths(a, &l.roots, base)));
    cmd.env_clear();
    for (k, v) in std::env::vars() {
        cmd.env(&k, move_paths(&v, &l.roots, base));
    }
    cmd.current_dir(format!("{base}{}", l.cwd));
    let out = cmd.stdin(Stdio::null()).output()?;
    io::stdout().write_all(&l.back(&out.stdout))?;
    io::stderr().write_all(&l.back(&out.stderr))?;
    for t in &l.texts {
        let p = PathBuf::from(format!("{base}{t}"));
        if let Ok(b) = fs::read(&p) {
            fs::write(&p, l.back(&b))?;
        }
    }
    Ok(exit_code(out.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rlibs_cargo_asked_for_that_link_nothing_go() {
        let mut inv =
            Invocation { crate_types: vec!["lib".into()], extra_filename: "-0123".into(), ..Invocation::default() };
        assert_eq!(stays_local(&inv, false), None);
        assert_eq!(stays_local(&inv, true), Some("driver"));
        let probe = Invocation { crate_types: vec!["lib".into()], ..Invocation::default() };
        assert_eq!(stays_local(&probe, false), Some("not-cargo"), "a build script's probe");
        for t in ["proc-macro", "bin", "cdylib", "staticlib"] {
            inv.crate_types = vec![t.into()];
            assert!(stays_local(&inv, false).is_some(), "{t}");
        }
    }

    /// A checkout at /home/u/ws with its target dir inside.
    fn places() -> Places {
        Places::new(&Rel::new(Some("/home/u"), Path::new("/home/u/ws")).with_target("/home/u/ws/target"))
    }

    #[test]
    fn roots_have_fixed_places_in_the_action_and_come_back_whole() {
        let p = places();
        for (here, there) in [
            ("/home/u/ws/src/lib.rs", "/.cairn-roots/checkout/src/lib.rs"),
            ("dependency=/home/u/ws/target/debug/deps", "dependency=/.cairn-roots/target/debug/deps"),
            ("--remap-path-prefix=/home/u/ws=.", "--remap-path-prefix=/.cairn-roots/checkout=."),
            ("/home/u/wsx/lib.rs", "/home/u/wsx/lib.rs"),
            ("/usr/lib/x.a", "/usr/lib/x.a"),
        ] {
            assert_eq!(p.to_action(here), there);
            assert_eq!(p.to_local(there), here);
        }
        let msg = br#"{"file":"/.cairn-roots/target/debug/deps/a.rmeta","src":"/.cairn-roots/checkout/src/x.rs"}"#;
        assert_eq!(
            p.bytes_to_local(msg),
            br#"{"file":"/home/u/ws/target/debug/deps/a.rmeta","src":"/home/u/ws/src/x.rs"}"#.to_vec()
        );
        // Another checkout path makes the same action paths.
        let other = Places::new(&Rel::new(Some("/srv/ci"), Path::new("/srv/ci/b7")).with_target("/tmp/t"));
        assert_eq!(other.to_action("/srv/ci/b7/src/lib.rs"), p.to_action("/home/u/ws/src/lib.rs"));
        assert_eq!(other.to_action("/tmp/t/debug/deps"), p.to_action("/home/u/ws/target/debug/deps"));
    }

    #[test]
    fn the_remote_dep_info_must_name_only_what_was_sent_and_variables_as_here() {
        let p = places();
        let sent = |f: &str| (f.to_string(), p.to_action(f));
        let req = ExecRequest {
            cwd: p.to_action("/home/u/ws/pkg"),
            files: vec![sent("/home/u/ws/pkg/src/lib.rs"), sent("/home/u/ws/pkg/src/a.rs")],
            env: vec![
                ("CARGO_PKG_NAME".into(), "pkg".into()),
                ("CAIRN_TEST_REMOTE_DIR".into(), p.to_action("/home/u/ws/pkg")),
            ],
            texts: vec!["/.cairn-roots/target/pkg-1.d".into()],
            ..Default::default()
        };
        let dep = |text: &str| vec![("/.cairn-roots/target/pkg-1.d".to_string(), 0o644, text.as_bytes().to_vec())];
        let ok = "/.cairn-roots/target/libpkg-1.rmeta: src/lib.rs ./src/a.rs /.cairn-roots/checkout/pkg/src/a.rs\n";
        assert_eq!(check(&req, &p, &dep(ok)), Ok(()));
        assert_eq!(check(&req, &p, &dep("x: /etc/hostname\n\n/etc/hostname:\n")), Err("read-unsent-file".into()));
        // A variable the worker did not have (unset there) but this machine has.
        std::env::set_var("CAIRN_TEST_REMOTE_ENV", "1");
        assert_eq!(check(&req, &p, &dep("# env-dep:CAIRN_TEST_REMOTE_ENV\n")), Err("env".into()));
        assert_eq!(check(&req, &p, &dep("# env-dep:CAIRN_TEST_REMOTE_UNSET_ANYWHERE\n")), Ok(()));
        // A path variable is compared as this machine names it.
        std::env::set_var("CAIRN_TEST_REMOTE_DIR", "/home/u/ws/pkg");
        assert_eq!(check(&req, &p, &dep("# env-dep:CAIRN_TEST_REMOTE_DIR\n")), Ok(()));
        std::env::set_var("CAIRN_TEST_REMOTE_DIR", "/elsewhere/pkg");
        assert_eq!(check(&req, &p, &dep("# env-dep:CAIRN_TEST_REMOTE_DIR\n")), Err("env".into()));
        assert_eq!(check(&req, &p, &[]), Err("no-dep-info".into()));
    }

    #[test]
    fn paths_normalize_without_the_filesystem() {
        assert_eq!(normalize("/a/./b/../c"), "/a/c");
    }
}

//! Build-script runs, cached: a warm build runs no build script whose inputs are unchanged.
//!
//! When `cairn-rustc` has compiled (or restored) a build script, it renames the binary to
//! `cairn-real-<name>` and puts a small launcher in its place ([`install_launcher`]); cargo
//! runs that launcher as the build script. The launcher calls back into this binary
//! ([`run`]), which computes the run's key:
//!
//! - **base key** ([`key::base_key`]): the script binary's contents, every file of its
//!   package (cargo's own rule for a script that declares nothing, applied always, because a
//!   clean build reruns every script), the variables cargo sets for build scripts and those
//!   cc-rs, cmake and pkg-config read (env.rs), the identity of rustc and of the C and C++
//!   compilers cc-rs would pick, and the contents of `DEP_*` folders other build scripts
//!   wrote;
//! - **result key**: the base key plus what the run said it read (`rerun-if-changed` paths,
//!   directories walked; `rerun-if-env-changed` values) and every source and header its C
//!   compiles read (reported by `cairn-cc`), as remembered in a manifest, like rustc's.
//!
//! A hit restores `OUT_DIR` and replays stdout and stderr (paths moved to this build's
//! folders), and no script process runs. A miss runs the real script with `CC`/`CXX` routed
//! through `cairn-cc` (so its C compiles are cached per object file), and stores `OUT_DIR`
//! and its output if it succeeded and none of its inputs changed while it ran. A failed run
//! is never stored. Every error on the cache side runs the real script.
//!
//! Settings: `CAIRN_BUILD_SCRIPTS=0` runs every script as it is;
//! `CAIRN_BUILD_SCRIPT_EXCLUDE=pkg,pkg` runs those packages' scripts every time (their C
//! compiles still cached);
//! `CAIRN_CC=0` leaves their compilers alone.

pub mod env;
pub mod inputs;
pub mod key;
pub mod outdir;

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::key::Key;
use crate::protocol::object::{CompileResult, EntryMeta, Manifest, Variant};
use crate::protocol::report::{self, Event, Kind};
use crate::wrapper::basedir::Rel;
use crate::wrapper::{cache_key, compile, log, mount};

/// The flag the launcher passes as `argv[1]`: `cairn-rustc --cairn-build-script LAUNCHER REAL ARGS…`.
pub const FLAG: &str = "--cairn-build-script";

/// What the real script is renamed to, next to the launcher.
pub fn real_name(bin: &str) -> String {
    format!("cairn-real-{bin}")
}

/// Whether a rustc compile is a build script (cargo names them all `build_script_build`).
pub fn is_build_script(crate_name: &str, crate_types: &[String]) -> bool {
    crate_name == "build_script_build" && crate_types.iter().all(|t| t == "bin")
}

/// Puts a launcher in place of the build-script binary `out_dir/bin`, which becomes
/// `out_dir/cairn-real-<bin>`. On any failure the real binary is left (or put back) where it
/// was, so the build runs the script as it is.
pub fn install_launcher(out_dir: &Path, bin: &str) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let (path, real) = (out_dir.join(bin), out_dir.join(real_name(bin)));
    let tmp = out_dir.join(format!(".cairn-launcher-{}", std::process::id()));
    let text = format!(
        "#!/bin/sh\n\
         # Written by cairn: runs this build script through the cache; {real_name} is the script.\n\
         # CAIRN_BUILD_SCRIPTS=0 runs it as it is (docs/build-scripts.md).\n\
         if [ -x {exe} ]; then exec {exe} {FLAG} \"$0\" {real_name} \"$@\"; fi\n\
         exec \"$(dirname \"$0\")\"/{real_name} \"$@\"\n",
        exe = sh_quote(&exe.display().to_string()),
        real_name = sh_quote(&real_name(bin)),
    );
    fs::write(&tmp, text)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    if let Err(e) = fs::rename(&path, &real) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, &path) {
        let _ = fs::rename(&real, &path);
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The launcher's entry: `argv` is `[cairn-rustc, FLAG, launcher path, real name, args…]`.
pub fn run(argv: &[OsString]) -> i32 {
    let (Some(launcher), Some(real)) = (argv.get(2), argv.get(3)) else {
        eprintln!("cairn-rustc: {FLAG} LAUNCHER REAL [ARGS...] is written by cairn into build-script launchers");
        return 2;
    };
    let real = Path::new(launcher).parent().unwrap_or(Path::new(".")).join(real);
    let args = &argv[4..];
    let pkg = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    if std::env::var("CAIRN_BUILD_SCRIPTS").as_deref() == Ok("0") {
        return exec(Command::new(&real).args(args));
    }
    if excluded(&pkg) {
        // Runs every time, but its C compiles are still cached.
        let mut cmd = Command::new(&real);
        cmd.args(args);
        if std::env::var("CAIRN_CC").as_deref() != Ok("0") {
            let env: Vec<(String, String)> =
                std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
            route_compilers(&mut cmd, &env);
        }
        return exec(&mut cmd);
    }
    let crate_name = pkg.replace('-', "_");
    let t0 = Instant::now();
    let mnt = match mount::find_or_start() {
        Ok(m) => m,
        Err(why) => {
            mount::warn_once(&why);
            return exec(Command::new(&real).args(args));
        }
    };
    let env: Vec<(String, String)> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    let Some(out_dir) = get(&env, "OUT_DIR").map(PathBuf::from) else {
        return exec(Command::new(&real).args(args));
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let rel = Rel::for_package(&cwd, &out_dir, get(&env, "CARGO_MANIFEST_DIR").as_deref());
    let base = match key::gather(&real, &env, &cwd, &rel) {
        Ok(b) => b,
        Err(e) => {
            log::record_kind(
                Kind::BuildScript,
                &crate_name,
                None,
                &format!("error:key:{}", oneword(&e)),
                t0.elapsed(),
                None,
            );
            report::send(&mnt, &Event::Error);
            return exec(Command::new(&real).args(args));
        }
    };
    let mkey = cache_key::manifest_key(&base);
    // The run's build set, as for rustc compiles (src/build_sets.rs): its keys are fetched
    // with the rest of the build on a machine that starts empty.
    let set = build_set_of(&env, &out_dir);
    if let Some(set) = set {
        report::send(&mnt, &Event::Begin(set));
    }
    let used = |rkey: Key| set.map(|s| Event::Used(s, vec![mkey, rkey]));
    let manifest = crate::wrapper::read_object(&mnt, &mkey).and_then(|b| Manifest::decode(&b).ok());
    for v in manifest.iter().flat_map(|m| m.variants.iter()) {
        let Some(rkey) = result_key_now(&base, v, &rel, None) else { continue };
        let Some(bytes) = crate::wrapper::read_object(&mnt, &rkey) else { continue };
        let Ok(r) = CompileResult::decode(&bytes) else {
            let _ = fs::remove_file(mnt.join(rkey.to_hex()));
            continue;
        };
        let out = out_dir.display().to_string();
        // Text files of OUT_DIR that name the folders the run was made in (a pkg-config file's
        // `prefix=`) are written naming this build's, as its stdout is replayed.
        let from = Rel::from_stored(&r.meta.roots);
        let fix = |b: &[u8]| -> Option<Vec<u8>> {
            if from == rel || from.found_in(b).is_empty() {
                return None;
            }
            Some(rel.relocate(std::str::from_utf8(b).ok()?, &from).into_bytes())
        };
        let replayed = outdir::restore(&out_dir, &r.files, &fix).and_then(|()| {
            io::stdout().write_all(&crate::wrapper::relocate(r.stdout, &r.meta, &out, &rel))?;
            io::stderr().write_all(&crate::wrapper::relocate(r.stderr, &r.meta, &out, &rel))
        });
        match replayed {
            Ok(()) => {
                let took = t0.elapsed();
                let compile_ns = r.meta.compile_ns;
                let hit = Event::Hit {
                    kind: Kind::BuildScript,
                    compile_ns,
                    took_ns: took.as_nanos() as u64,
                    bytes: bytes.len() as u64,
                };
                report::send_all(&mnt, &[Some(hit), used(rkey)].into_iter().flatten().collect::<Vec<_>>());
                let saved = Some(std::time::Duration::from_nanos(compile_ns));
                log::record_kind(Kind::BuildScript, &crate_name, Some(&rkey), "hit", took, saved);
                return 0;
            }
            Err(e) => {
                // Part of OUT_DIR may be written: the real script runs over it, as it would
                // over an earlier run's files.
                let what = format!("error:restore:{}", oneword(&e));
                log::record_kind(Kind::BuildScript, &crate_name, Some(&rkey), &what, t0.elapsed(), None);
                report::send(&mnt, &Event::Error);
                break;
            }
        }
    }
    // Miss: run the real script, its compilers routed through cairn-cc.
    let deps_file = out_dir.with_file_name(format!("cairn-cc-deps.{}", std::process::id()));
    let mut cmd = Command::new(&real);
    cmd.args(args);
    if std::env::var("CAIRN_CC").as_deref() != Ok("0") && route_compilers(&mut cmd, &env) {
        cmd.env(crate::cc::DEPS_VAR, &deps_file);
    }
    let ran = match compile::capture(cmd) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn-rustc: cannot run build script {}: {e}", real.display());
            return 101;
        }
    };
    let cc_deps = fs::read_to_string(&deps_file).unwrap_or_default();
    let _ = fs::remove_file(&deps_file);
    let compile_ns = ran.took.as_nanos() as u64;
    if !ran.status.success() {
        log::record_kind(Kind::BuildScript, &crate_name, None, "miss:failed", t0.elapsed(), Some(ran.took));
        report::send(&mnt, &Event::Miss { kind: Kind::BuildScript, compile_ns, bytes: 0 });
        return ran.status.code().unwrap_or(101);
    }
    let stored = (|| -> Result<(Key, u64), String> {
        let declared = inputs::declared(&ran.stdout);
        let mut entries: Vec<String> = declared.paths.iter().map(|p| inputs::entry_for(&cwd, p)).collect();
        // Files under OUT_DIR that its compiles read (cc-rs's flag probes, generated headers)
        // are the run's own output, restored with it: not inputs.
        let mut headers: Vec<String> = cc_deps
            .lines()
            .filter(|l| !l.is_empty() && !Path::new(l).starts_with(&out_dir))
            .map(|l| format!("f:{l}"))
            .collect();
        headers.sort();
        headers.dedup();
        headers.retain(|h| !entries.contains(h));
        entries.extend(headers);
        let files = outdir::snapshot(&out_dir).map_err(|e| e.to_string())?;
        // A binary file of OUT_DIR that names this machine's folders binds the run to them;
        // text files (a pkg-config file's `prefix=`, a cmake cache) and the output lines are
        // moved to the next build's folders when replayed, so they need not.
        let mut vars = declared.env;
        for f in files.iter().filter(|f| std::str::from_utf8(&f.bytes).is_err()) {
            crate::wrapper::bind_roots(&mut vars, &rel, &f.bytes);
        }
        let variant = Variant { files: entries.iter().map(|e| rel.rel(e)).collect(), env: vars };
        // Inputs that changed while the script ran are never recorded.
        if key::gather(&real, &env, &cwd, &rel).map_err(|e| e.to_string())? != base {
            return Err("package-changed-during-run".into());
        }
        let rkey = result_key_now(&base, &variant, &rel, Some(ran.started)).ok_or("input-changed-during-run")?;
        let result = CompileResult {
            meta: EntryMeta {
                crate_name: crate_name.clone(),
                crate_types: vec!["build-script-run".into()],
                target: get(&env, "TARGET").unwrap_or_default(),
                rustc_version: String::new(),
                compile_ns,
                created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                out_dir: out_dir.display().to_string(),
                exit_code: 0,
                roots: rel.stored(),
            },
            files,
            stdout: ran.stdout.clone(),
            stderr: ran.stderr.clone(),
        };
        let encoded = result.encode();
        crate::wrapper::put_object(&mnt, &rkey, &encoded, false).map_err(|e| e.to_string())?;
        let mut m = manifest.unwrap_or_default();
        if m.variants.first() != Some(&variant) || m.recent.first() != Some(&rkey) {
            m.push_front(variant);
            m.push_result(rkey);
            crate::wrapper::put_object(&mnt, &mkey, &m.encode(), true).map_err(|e| e.to_string())?;
        }
        Ok((rkey, encoded.len() as u64))
    })();
    match stored {
        Ok((rkey, bytes)) => {
            log::record_kind(Kind::BuildScript, &crate_name, Some(&rkey), "miss", t0.elapsed(), Some(ran.took));
            let miss = Event::Miss { kind: Kind::BuildScript, compile_ns, bytes };
            report::send_all(&mnt, &[Some(miss), used(rkey)].into_iter().flatten().collect::<Vec<_>>());
        }
        Err(why) => {
            let what = format!("error:store:{}", why.replace(char::is_whitespace, "_"));
            log::record_kind(Kind::BuildScript, &crate_name, None, &what, t0.elapsed(), Some(ran.took));
            report::send(&mnt, &Event::Miss { kind: Kind::BuildScript, compile_ns, bytes: 0 });
        }
    }
    0
}

/// The build set of a script run: its OUT_DIR and the toolchain cargo runs (`RUSTC`).
fn build_set_of(env: &[(String, String)], out_dir: &Path) -> Option<Key> {
    let rustc = get(env, "RUSTC")?;
    // As rustc is named for a compile without --target: a host build's set is one set.
    let target = get(env, "TARGET").filter(|t| get(env, "HOST").as_ref() != Some(t));
    let memo = mount::cache_base()?.join("toolchains");
    let tc = crate::wrapper::toolchain::identify(Path::new(&rustc), target.as_deref(), &memo).ok()?;
    Some(crate::wrapper::build_set(out_dir, &tc.digest))
}

/// Whether `CAIRN_BUILD_SCRIPT_EXCLUDE` names this package (either spelling).
fn excluded(pkg: &str) -> bool {
    let list = std::env::var("CAIRN_BUILD_SCRIPT_EXCLUDE").unwrap_or_default();
    list.split([',', ' ']).any(|p| !p.is_empty() && p.replace('-', "_") == pkg.replace('-', "_"))
}

fn get(env: &[(String, String)], k: &str) -> Option<String> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn oneword(e: &io::Error) -> String {
    e.to_string().split_whitespace().take(6).collect::<Vec<_>>().join("_")
}

fn exec(cmd: &mut Command) -> i32 {
    let err = cmd.exec();
    eprintln!("cairn-rustc: cannot run build script {:?}: {err}", cmd.get_program());
    127
}

/// The result key for a dependency set, from the files and variables as they are now; `None`
/// when an input changed after `since` (the run's start) or cannot be read.
fn result_key_now(base: &Key, v: &Variant, rel: &Rel, since: Option<SystemTime>) -> Option<Key> {
    let entries: Vec<String> = v.files.iter().map(|e| rel.abs(e)).collect();
    let hashed = inputs::hash_entries(&entries, since)?;
    let files: Vec<(String, Option<[u8; 32]>)> = hashed.into_iter().map(|(l, h)| (rel.rel(&l), h)).collect();
    let env = crate::wrapper::variant_env(&v.env, rel);
    Some(cache_key::result_key(base, &files, &env))
}

/// Points the compiler variables cc-rs will read at `cairn-cc` / `cairn-c++` (links to this
/// binary in `<cache>/bin`), with the compiler they stood for in `CAIRN_REAL_CC` /
/// `CAIRN_REAL_CXX`. `false` (and nothing set) when the links cannot be made.
fn route_compilers(cmd: &mut Command, env: &[(String, String)]) -> bool {
    let (Some(target), Some(host)) = (get(env, "TARGET"), get(env, "HOST")) else { return false };
    let Some(bin) = mount::cache_base().map(|b| b.join("bin")) else { return false };
    let Ok(exe) = std::env::current_exe() else { return false };
    let mut links = Vec::new();
    for name in [crate::cc::CC_NAME, crate::cc::CXX_NAME] {
        match ensure_link(&bin, name, &exe) {
            Ok(p) => links.push(p),
            Err(_) => return false,
        }
    }
    for ((tool, real_var), link) in [("CC", crate::cc::REAL_CC_VAR), ("CXX", crate::cc::REAL_CXX_VAR)].iter().zip(links)
    {
        let c = env::compiler(env, tool, &target, &host);
        cmd.env(&c.var, link).env(real_var, &c.command);
    }
    true
}

/// `<bin>/<name>`, a symlink to `exe`, made (atomically) when missing or pointing elsewhere.
fn ensure_link(bin: &Path, name: &str, exe: &Path) -> io::Result<PathBuf> {
    let link = bin.join(name);
    if fs::read_link(&link).ok().as_deref() == Some(exe) {
        return Ok(link);
    }
    fs::create_dir_all(bin)?;
    let tmp = bin.join(format!(".{name}.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(exe, &tmp)?;
    fs::rename(&tmp, &link)?;
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launcher_runs_the_real_script_when_cairn_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let bin = "build_script_build-0123";
        fs::write(d.path().join(bin), "#!/bin/sh\necho real \"$@\"\n").unwrap();
        fs::set_permissions(d.path().join(bin), fs::Permissions::from_mode(0o755)).unwrap();
        install_launcher(d.path(), bin).unwrap();
        assert!(d.path().join(real_name(bin)).is_file());
        let text = fs::read_to_string(d.path().join(bin)).unwrap();
        assert!(text.starts_with("#!/bin/sh") && text.contains(FLAG), "{text}");
        // The test binary is the "cairn-rustc" named in it; point the launcher at a missing one.
        let exe = std::env::current_exe().unwrap().display().to_string();
        fs::write(d.path().join(bin), text.replace(&exe, "/nonexistent/cairn-rustc")).unwrap();
        let out = Command::new(d.path().join(bin)).arg("x").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "real x\n");
    }

    #[test]
    fn exclusion_matches_package_names_in_either_spelling() {
        std::env::set_var("CAIRN_BUILD_SCRIPT_EXCLUDE", "zstd-sys, ring");
        assert!(excluded("zstd-sys") && excluded("zstd_sys") && excluded("ring"));
        assert!(!excluded("libsqlite3-sys"));
        std::env::remove_var("CAIRN_BUILD_SCRIPT_EXCLUDE");
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(sh_quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}

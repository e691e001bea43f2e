//! Build-script runs, cached: a warm build runs no build script whose inputs are unchanged.
//!
//! When `cairn-rustc` has compiled (or restored) a build script, it renames the binary to
//! `cairn-real-<name>` and puts a small launcher in its place (`protocol::frontends::install_launcher`); cargo
//! runs that launcher as the build script. The launcher calls back into this binary
//! ([`run`]); the engine (`crate::engine`) does the rest with what this front end says: the run's key:
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

#[cfg(test)]
mod flow_tests;

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::engine::basedir::Rel;
use crate::engine::inputs::{NotNow, VariantInputs};
use crate::engine::process::{self, Ran};
use crate::engine::{self, keys, mount, toolchain, tree, Collected, FrontEnd, NotStored, Site, Unkeyable};
use crate::key::Key;
use crate::protocol::frontends::{self, FLAG};
use crate::protocol::object::{ResultView, Variant};
use crate::protocol::report::Kind;

/// The launcher's entry: `argv` is `[cairn-rustc, FLAG, launcher path, real name, args…]`.
pub fn run(argv: &[OsString]) -> i32 {
    let (Some(launcher), Some(real)) = (argv.get(2), argv.get(3)) else {
        eprintln!("cairn-rustc: {FLAG} LAUNCHER REAL [ARGS...] is written by cairn into build-script launchers");
        return 2;
    };
    let real = Path::new(launcher).parent().unwrap_or(Path::new(".")).join(real);
    let args = &argv[4..];
    let pkg = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    let env: Vec<(String, String)> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    if std::env::var("CAIRN_BUILD_SCRIPTS").as_deref() == Ok("0") {
        return exec(Command::new(&real).args(args));
    }
    if excluded(&pkg) {
        // Runs every time, but its C compiles are still cached.
        let mut cmd = Command::new(&real);
        cmd.args(args);
        if std::env::var("CAIRN_CC").as_deref() != Ok("0") {
            route_compilers(&mut cmd, &env);
        }
        return exec(&mut cmd);
    }
    let (Some(out_dir), Some(memo)) = (get(&env, "OUT_DIR"), mount::cache_base().map(|b| b.join("toolchains"))) else {
        return exec(Command::new(&real).args(args));
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let t0 = std::time::Instant::now();
    let manifest_dir = get(&env, "CARGO_MANIFEST_DIR");
    let version = get(&env, "CARGO_PKG_VERSION").unwrap_or_default();
    // Target-dir seeding (engine/seed): this run, once done, is a unit of its package, built
    // from the script's compile and the runs whose `DEP_*` variables it reads.
    // A run of the workspace's own package is recorded with its package's digest, taken
    // before the run and checked after it (its key takes the same), the script binary and
    // the `output` of each run whose `DEP_*` variables it read.
    let mut deps: Vec<String> = Path::new(launcher).parent().and_then(engine::seed::unit_hash).into_iter().collect();
    let mut built_on = vec![real.clone()];
    for p in env.iter().filter(|(k, _)| k.starts_with("DEP_")).flat_map(|(_, v)| v.split(':')).map(Path::new) {
        deps.extend(engine::seed::build_unit_hash(p));
        built_on.extend(engine::seed::run_output(p));
    }
    built_on.sort();
    built_on.dedup();
    let own = manifest_dir.as_deref().map(Path::new).filter(|d| !engine::seed::is_sourced(d));
    let before = own.filter(|_| engine::seed::marked(Path::new(&out_dir))).and_then(|d| tree::package_digest(d).ok());
    let mut fe = BuildScript::new(real, args.to_vec(), env, cwd, PathBuf::from(&out_dir), memo);
    let code = engine::run(&mut fe);
    let run_unit = Path::new(&out_dir).parent().and_then(|u| u.file_name()).and_then(|n| n.to_str());
    let (0, Some(unit), Some(dir)) = (code, run_unit, manifest_dir.as_deref().map(Path::new)) else { return code };
    let report = |own| {
        let took = engine::last_compile().max(t0.elapsed());
        engine::seed::report(Path::new(&out_dir), unit.to_string(), format!("{pkg} {version}"), took, deps, &[], own);
    };
    if engine::seed::is_sourced(dir) {
        report(None);
    } else if let Some(digest) = before.filter(|d| tree::package_digest(dir).ok().as_ref() == Some(d)) {
        report(Some(engine::seed::Own { built_on: &built_on, package: Some((dir, digest)) }));
    }
    code
}

fn exec(cmd: &mut Command) -> i32 {
    process::exec(cmd, "cairn-rustc: build script")
}

/// One build-script run.
pub struct BuildScript {
    /// The real script binary, and its arguments.
    real: PathBuf,
    args: Vec<OsString>,
    /// The variables cargo ran it with.
    env: Vec<(String, String)>,
    cwd: PathBuf,
    out_dir: PathBuf,
    site: Site,
    /// Toolchain memos.
    memo: PathBuf,
    /// Known once the base key is made.
    base: Option<Key>,
    set: Option<Key>,
    /// Where the run's C compiles list the files they read.
    cc_deps: PathBuf,
}

impl BuildScript {
    pub fn new(
        real: PathBuf,
        args: Vec<OsString>,
        env: Vec<(String, String)>,
        cwd: PathBuf,
        out_dir: PathBuf,
        memo: PathBuf,
    ) -> BuildScript {
        let crate_name = get(&env, "CARGO_PKG_NAME").unwrap_or_default().replace('-', "_");
        let rel = Rel::for_package(&cwd, &out_dir, get(&env, "CARGO_MANIFEST_DIR").as_deref());
        let cc_deps = out_dir.with_file_name(format!("cairn-cc-deps.{}", std::process::id()));
        BuildScript {
            site: Site { kind: Kind::BuildScript, crate_name, rel, out_dir: out_dir.display().to_string() },
            real,
            args,
            env,
            cwd,
            out_dir,
            memo,
            base: None,
            set: None,
            cc_deps,
        }
    }

    /// The script with its arguments and the variables its key was made from (the same as
    /// this process's when cargo runs it; set again so that they are the same by construction).
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.real);
        cmd.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// The build set of the run: its OUT_DIR and the toolchain cargo runs (`RUSTC`).
    fn build_set_of(&self) -> Option<Key> {
        let rustc = get(&self.env, "RUSTC")?;
        // As rustc is named for a compile without --target: a host build's set is one set.
        let target = get(&self.env, "TARGET").filter(|t| get(&self.env, "HOST").as_ref() != Some(t));
        let tc = toolchain::identify(Path::new(&rustc), target.as_deref(), &self.memo).ok()?;
        Some(keys::build_set(&self.out_dir, &tc.digest))
    }
}

impl FrontEnd for BuildScript {
    fn site(&self) -> &Site {
        &self.site
    }

    fn base_key(&mut self) -> Result<Key, Unkeyable> {
        let base = key::gather(&self.real, &self.env, &self.cwd, &self.site.rel, &self.memo)?;
        self.base = Some(base);
        self.set = self.build_set_of();
        Ok(base)
    }

    fn build_set(&self) -> Option<Key> {
        self.set
    }

    /// Declared paths may be absent (hashed as such), and a declared folder is walked.
    fn hash_variant(&self, v: &Variant, since: Option<SystemTime>) -> Result<VariantInputs, NotNow> {
        let entries: Vec<String> = v.files.iter().map(|e| self.site.rel.abs(e)).collect();
        let hashed = inputs::hash_entries(&entries, since)?;
        let files = hashed.into_iter().map(|(l, h)| (self.site.rel.rel(&l), h)).collect();
        Ok((files, engine::inputs::variant_env(&v.env, &self.site.rel)))
    }

    fn restore(&mut self, r: &ResultView<'_>, _v: &Variant) -> io::Result<()> {
        // Text files of OUT_DIR that name the folders the run was made in (a pkg-config file's
        // `prefix=`) are written naming this build's, as its stdout is replayed.
        let from = Rel::from_stored(&r.meta.roots);
        let rel = &self.site.rel;
        let fix = |b: &[u8]| -> Option<Vec<u8>> {
            if from == *rel || from.found_in(b).is_empty() {
                return None;
            }
            Some(rel.relocate(std::str::from_utf8(b).ok()?, &from).into_bytes())
        };
        outdir::restore(&self.out_dir, &r.files, &fix)
    }

    fn run(&mut self) -> io::Result<Ran> {
        let mut cmd = self.command();
        if std::env::var("CAIRN_CC").as_deref() != Ok("0") && route_compilers(&mut cmd, &self.env) {
            cmd.env(frontends::DEPS_VAR, &self.cc_deps);
        }
        process::capture(cmd)
    }

    fn run_uncached(&mut self) -> i32 {
        exec(&mut self.command())
    }

    fn collect(&mut self, ran: &Ran) -> Result<Collected, NotStored> {
        let cc_deps = fs::read_to_string(&self.cc_deps).unwrap_or_default();
        let _ = fs::remove_file(&self.cc_deps);
        if !ran.status.success() {
            return Err(io::Error::other("the script failed").into());
        }
        let declared = inputs::declared(&ran.stdout);
        let mut entries: Vec<String> = declared.paths.iter().map(|p| inputs::entry_for(&self.cwd, p)).collect();
        // Files under OUT_DIR that its compiles read (cc-rs's flag probes, generated headers)
        // are the run's own output, restored with it: not inputs.
        let mut headers: Vec<String> = cc_deps
            .lines()
            .filter(|l| !l.is_empty() && !Path::new(l).starts_with(&self.out_dir))
            .map(|l| format!("f:{l}"))
            .collect();
        headers.sort();
        headers.dedup();
        headers.retain(|h| !entries.contains(h));
        entries.extend(headers);
        // A binary file of OUT_DIR that names this machine's folders binds the run to them;
        // text files (a pkg-config file's `prefix=`, a cmake cache) and the output lines are
        // moved to the next build's folders when replayed, so they need not.
        let snap = outdir::snapshot(&self.out_dir, &self.site.rel).map_err(io::Error::other)?;
        let (files, mut vars) = (snap.files, declared.env);
        engine::bind(&mut vars, snap.bound);
        let variant = Variant { files: entries.iter().map(|e| self.site.rel.rel(e)).collect(), env: vars };
        // The package itself (and the script, the compilers …) must be as it was when the run
        // began.
        if Some(key::gather(&self.real, &self.env, &self.cwd, &self.site.rel, &self.memo)?) != self.base {
            return Err(NotStored::Changed(format!("the package {}", self.cwd.display())));
        }
        Ok(Collected {
            files,
            variant,
            listed: (self.site.crate_name.clone(), vec!["build-script-run".into()]),
            target: get(&self.env, "TARGET").unwrap_or_default(),
            rustc_version: String::new(),
        })
    }
}

/// Whether `CAIRN_BUILD_SCRIPT_EXCLUDE` names this package (either spelling).
fn excluded(pkg: &str) -> bool {
    excluded_in(&std::env::var("CAIRN_BUILD_SCRIPT_EXCLUDE").unwrap_or_default(), pkg)
}

/// Whether the list (`pkg,pkg` or `pkg pkg`) names this package.
fn excluded_in(list: &str, pkg: &str) -> bool {
    list.split([',', ' ']).any(|p| !p.is_empty() && p.replace('-', "_") == pkg.replace('-', "_"))
}

fn get(env: &[(String, String)], k: &str) -> Option<String> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

/// Points the compiler variables cc-rs will read at `cairn-cc` / `cairn-c++` (links to this
/// binary in `<cache>/bin`), with the compiler they stood for in `CAIRN_REAL_CC` /
/// `CAIRN_REAL_CXX`. `false` (and nothing set) when the links cannot be made.
fn route_compilers(cmd: &mut Command, env: &[(String, String)]) -> bool {
    let (Some(target), Some(host)) = (get(env, "TARGET"), get(env, "HOST")) else { return false };
    let Some(bin) = mount::cache_base().map(|b| b.join("bin")) else { return false };
    let Ok(exe) = std::env::current_exe() else { return false };
    let mut links = Vec::new();
    for name in [frontends::CC_NAME, frontends::CXX_NAME] {
        match ensure_link(&bin, name, &exe) {
            Ok(p) => links.push(p),
            Err(_) => return false,
        }
    }
    for ((tool, real_var), link) in [("CC", frontends::REAL_CC_VAR), ("CXX", frontends::REAL_CXX_VAR)].iter().zip(links)
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
    fn exclusion_matches_package_names_in_either_spelling() {
        let list = "zstd-sys, ring";
        assert!(excluded_in(list, "zstd-sys") && excluded_in(list, "zstd_sys") && excluded_in(list, "ring"));
        assert!(!excluded_in(list, "libsqlite3-sys"));
    }
}

//! The rustc front end of `cairn-rustc` (RUSTC_WRAPPER): what makes a rustc compile's key, and
//! how its outputs are found and put back. The life of the compile is the engine's
//! (`crate::engine`).
//!
//! - **base key** (cache_key.rs): the toolchain, the working directory, the arguments, each
//!   `--extern` by content, `-l static=` libraries, the crate's cargo variables, and for a
//!   compile that links, what the link can see (link.rs) and every rlib of the crate graph
//!   (graph.rs);
//! - **dependency set**: the sources and variables of rustc's dep-info, and the files the
//!   linker read (linkdeps.rs);
//! - **outputs**: every file rustc wrote for the crate in `--out-dir` (outputs.rs); dep-info is
//!   moved to this target dir on a hit.
//!
//! Artifacts name the roots (checkout, CARGO_HOME, target dir) by fixed prefixes
//! (`--remap-path-prefix`, engine/basedir.rs), so they are the same in every checkout. A
//! successful compile of an rlib records its dependency list (graph.rs); one of a build script
//! gets the launcher that caches its runs (`protocol::frontends`).

pub mod args;
pub mod cache_key;
pub mod clippy;
pub mod depinfo;
pub mod graph;
pub mod link;
pub mod linkdeps;
pub mod outputs;
pub mod remote;
pub mod why;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::basedir::Rel;
use crate::engine::inputs::VariantInputs;
use crate::engine::outcome::{oneword, Outcome};
use crate::engine::process::{self, Ran};
use crate::engine::{self, filehash, keys, log, mount, toolchain, Collected, FrontEnd, NotStored, Site, Unkeyable};
use crate::key::Key;
use crate::protocol::frontends;
use crate::protocol::object::{ResultView, Variant};
use crate::protocol::report::Kind;
use args::{Classified, Invocation};
use cache_key::BaseInputs;

/// Runs `rustc` with `args` (cargo's command line, after the wrapper) through the cache and
/// returns the exit code. A bare name is looked up on PATH once, so the key and the compile use
/// the same binary.
pub fn main(rustc: PathBuf, args: &[OsString]) -> i32 {
    main_with(None, rustc, args)
}

/// [`main`], with the compile run through `driver` (`cargo clippy`) when there is one.
pub(crate) fn main_with(driver: Option<clippy::Driver>, rustc: PathBuf, args: &[OsString]) -> i32 {
    let rustc = toolchain::resolve_program(&rustc).unwrap_or(rustc);
    let command = || command(driver.as_ref(), &rustc);
    if driver.is_none() && engine::seed::probe::is_probe(args) {
        engine::seed::on_probe(&rustc, args);
    }
    match args::classify(args) {
        Classified::NotCompilation => process::exec(command().args(args), "cairn-rustc"),
        Classified::NotCacheable(reason) => {
            let kind = if driver.is_some() { Kind::Clippy } else { Kind::Rustc };
            engine::not_cacheable(kind, &args::crate_name_of(args), &reason.as_str());
            uncached(command(), args, args::outline(args).as_ref())
        }
        Classified::Cacheable(inv) => {
            let Some(mut fe) = Rustc::new(rustc.clone(), args.to_vec(), *inv, mount::cache_base()) else {
                return process::exec(command().args(args), "cairn-rustc");
            };
            if driver.is_some() {
                fe.site.kind = Kind::Clippy;
            }
            fe.driver = driver;
            let t0 = std::time::Instant::now();
            let code = engine::run(&mut fe);
            if code == 0 {
                let took = engine::last_compile().max(t0.elapsed());
                if engine::seed::is_sourced(Path::new(&fe.inv.input)) {
                    seed_report(&fe.inv, &fe.read, took, false);
                } else {
                    // The workspace's own compile: the units it was built from go into the
                    // seed set before it returns (the build may end with it); then it is
                    // reported itself, with its sources (not clippy's: its lints are not a
                    // unit of the build cargo seeds).
                    engine::seed::settle(Path::new(&fe.inv.out_dir));
                    if fe.driver.is_none() {
                        seed_report(&fe.inv, &fe.read, took, true);
                    }
                }
            }
            code
        }
    }
}

/// Tells target-dir seeding (engine/seed) that this compile's unit (`<package>-<hash>`), a
/// registry or git package's or, `own`, the workspace's, is done, with the units it was
/// built from: its `--extern` crates and its build script's run (`OUT_DIR`).
fn seed_report(inv: &Invocation, read: &[String], took: std::time::Duration, own: bool) {
    let (Ok(name), Ok(version)) = (std::env::var("CARGO_PKG_NAME"), std::env::var("CARGO_PKG_VERSION")) else { return };
    let Some(hash) = inv.extra_filename.strip_prefix('-') else { return };
    let mut deps: Vec<String> = inv
        .externs
        .iter()
        .filter_map(|(_, p)| p.as_deref())
        .filter_map(|p| engine::seed::unit_hash(Path::new(p)))
        .collect();
    if let Some(out) = std::env::var_os("OUT_DIR") {
        deps.extend(engine::seed::unit_hash(Path::new(&out)));
    }
    let unit = format!("{name}-{hash}");
    let native = native_files(inv, read);
    // A workspace unit is built on its `--extern` files and on what its package's
    // build-script run told cargo (`rustc-env`, `rustc-cfg`, link flags: the run's `output`).
    let built_on: Vec<PathBuf> = match own {
        true => {
            let run = std::env::var_os("OUT_DIR").and_then(|o| engine::seed::run_output(Path::new(&o)));
            inv.externs.iter().filter_map(|(_, p)| p.as_deref()).map(PathBuf::from).chain(run).collect()
        }
        false => Vec::new(),
    };
    let own = own.then_some(engine::seed::Own { built_on: &built_on, package: None });
    engine::seed::report(Path::new(&inv.out_dir), unit, format!("{name} {version}"), took, deps, &native, own);
}

/// The native files a compile's outputs take in that cargo's fingerprint does not see (the
/// key sees them: `static_libs`, link.rs, and the linker's account, linkdeps.rs): the
/// `-l static=` libraries an rlib bundles, and for a compile that links, the libraries `-l`
/// names and the files `-C link-arg` names, as found on the native search path now, and every
/// file its dependency set lists outside its own package (`read`): the libraries the linker
/// found through `LIBRARY_PATH` or its default folders, its start files, the C library.
fn native_files(inv: &Invocation, read: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        inv.static_libs.iter().filter_map(|name| link::find_native(inv, &format!("lib{name}.a"))).collect();
    if inv.links() {
        for name in &inv.libs {
            out.extend(
                [format!("lib{name}.a"), format!("lib{name}.so")].iter().filter_map(|f| link::find_native(inv, f)),
            );
        }
        let files = inv.link_args.iter().flat_map(|a| a.split_whitespace()).map(PathBuf::from);
        out.extend(files.filter(|p| p.is_file()));
        let package = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
        out.extend(
            read.iter()
                .map(PathBuf::from)
                .filter(|p| p.is_absolute() && package.as_ref().is_none_or(|d| !p.starts_with(d)) && p.is_file()),
        );
    }
    out
}

/// The program a compile runs: rustc, or a driver given rustc's path first.
fn command(driver: Option<&clippy::Driver>, rustc: &Path) -> Command {
    match driver {
        Some(d) => {
            let mut c = Command::new(&d.program);
            c.arg(rustc);
            c
        }
        None => Command::new(rustc),
    }
}

/// Runs the compile without the cache. A compile that makes an rlib still gets its dependency
/// list (graph.rs), so the compiles that link it stay cacheable, and a build script still gets
/// its launcher; any other compile is simply replaced by the tool.
fn uncached(mut cmd: Command, args: &[OsString], inv: Option<&Invocation>) -> i32 {
    cmd.args(args);
    let Some(inv) = inv.filter(|i| graph::makes_rlib(i) || frontends::is_build_script(&i.crate_name, &i.crate_types))
    else {
        return process::exec(&mut cmd, "cairn-rustc");
    };
    match cmd.status() {
        Ok(status) => {
            if status.success() {
                after_success(inv);
            }
            status.code().unwrap_or(101)
        }
        Err(e) => {
            eprintln!("cairn-rustc: cannot run {:?}: {e}", cmd.get_program());
            127
        }
    }
}

/// What follows every successful compile, hit or miss: the rlib's dependency list, the build
/// script's launcher.
fn after_success(inv: &Invocation) {
    if let Err(e) = graph::record(inv) {
        let word = format!("error:deps-list:{}", oneword(&e.to_string()));
        log::record_kind(Kind::Rustc, &inv.crate_name, None, &word, Default::default(), None);
    }
    launcher(inv);
}

/// A build script just compiled or restored gets the launcher that caches its runs.
fn launcher(inv: &Invocation) {
    if !frontends::is_build_script(&inv.crate_name, &inv.crate_types)
        || std::env::var("CAIRN_BUILD_SCRIPTS").as_deref() == Ok("0")
    {
        return;
    }
    let bin = format!("{}{}", inv.crate_name, inv.extra_filename);
    let out_dir = Path::new(&inv.out_dir);
    // The script's hash, remembered when it was stored or restored, stays valid under its
    // new name: its run's key would hash it in full again otherwise.
    let carried = filehash::carry(&out_dir.join(&bin));
    let installed = frontends::install_launcher(out_dir, &bin);
    if let (Ok(()), Some(c)) = (&installed, carried) {
        c.onto(&out_dir.join(frontends::real_name(&bin)));
    }
    if let Err(e) = installed {
        let word = format!("error:launcher:{}", oneword(&e.to_string()));
        log::record_kind(Kind::Rustc, &inv.crate_name, None, &word, Default::default(), None);
    }
}

/// One cacheable rustc compile.
pub struct Rustc {
    rustc: PathBuf,
    args: Vec<OsString>,
    inv: Invocation,
    site: Site,
    /// `<cache>`: toolchain memos under `toolchains/`, `cairn why`'s records under `why/`.
    cache_base: PathBuf,
    /// Known once the base key is made.
    tc: Option<toolchain::Toolchain>,
    inputs: Option<BaseInputs>,
    set: Option<Key>,
    /// Where the linker writes the files it read, for a compile that links.
    link_deps: Option<PathBuf>,
    /// The driver the compile runs through (`cargo clippy`), if any.
    driver: Option<clippy::Driver>,
    /// For a compile that links, the files the dependency set it served or stored lists,
    /// absolute: the linker's own account of the libraries it read is among them
    /// (`native_files`). Empty for any other compile: a hit gathers nothing it will not use.
    read: Vec<String>,
}

impl Rustc {
    /// `None` without a cache folder (no HOME): then rustc runs as it is.
    pub fn new(rustc: PathBuf, args: Vec<OsString>, inv: Invocation, cache_base: Option<PathBuf>) -> Option<Rustc> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let rel = Rel::for_rustc(&cwd, Path::new(&inv.out_dir), &inv.input, inv.target.as_deref());
        let site = Site { kind: Kind::Rustc, crate_name: inv.crate_name.clone(), rel, out_dir: inv.out_dir.clone() };
        Some(Rustc {
            rustc,
            args,
            inv,
            site,
            cache_base: cache_base?,
            tc: None,
            inputs: None,
            set: None,
            link_deps: None,
            driver: None,
            read: Vec::new(),
        })
    }

    fn memo(&self) -> PathBuf {
        self.cache_base.join("toolchains")
    }

    /// Where the linker of a compile that links writes its dependency file (linkdeps.rs),
    /// when it can.
    fn link_deps_file(&self) -> Option<PathBuf> {
        let inv = &self.inv;
        let emits_link =
            inv.keyed_args.iter().any(|a| a.starts_with("--emit=") && a[7..].split(',').any(|e| e == "link"));
        if !inv.links() || !emits_link || std::env::var("CAIRN_LINK_DEPS").as_deref() == Ok("0") {
            return None;
        }
        let tc = self.tc.as_ref()?;
        linkdeps::supported(&self.rustc, inv, &tc.digest, &self.memo())
            .then(|| Path::new(&inv.out_dir).join(format!(".cairn-link-{}.d", std::process::id())))
    }
}

impl Rustc {
    /// The compile run on the remote execution engine, when it may go and the engine ran it
    /// (rustc/remote.rs); `None`: run it here.
    fn remote(&self, cmd: &Command) -> Option<Ran> {
        if !engine::remote::configured() {
            return None;
        }
        if let Some(why) = remote::stays_local(&self.inv, self.driver.is_some()) {
            engine::remote::skipped(why);
            return None;
        }
        let args: Option<Vec<String>> = cmd.get_args().map(|a| a.to_str().map(String::from)).collect();
        // The dependency list now, not after the compile: with pipelining, dependents start
        // on this crate's metadata and name their remote inputs from the lists (graph.rs).
        let _ = graph::record(&self.inv);
        let (req, places) = match remote::request(&self.rustc, &args?, &self.inv, &self.site.rel) {
            Ok(r) => r,
            Err(why) => {
                engine::remote::skipped(why);
                return None;
            }
        };
        let tried = engine::remote::run(&req, &places, &remote::check);
        engine::remote::report(&tried, Kind::Rustc);
        match tried {
            engine::remote::Tried::Ran(r, _) => Some(r),
            engine::remote::Tried::Local { .. } => None,
        }
    }
}

impl FrontEnd for Rustc {
    fn site(&self) -> &Site {
        &self.site
    }

    fn base_key(&mut self) -> Result<Key, Unkeyable> {
        let graph = if graph::needs_graph(&self.inv) {
            // Some rlib of the graph was built without cairn: what it links is unknown.
            graph::closure(&self.inv).map_err(|_| Unkeyable::NotCacheable("unknown-graph".into()))?
        } else {
            Vec::new()
        };
        let (base, tc, inputs) = base_key(&self.rustc, &self.inv, &graph, &self.site.rel, &self.memo())?;
        self.set = Some(keys::build_set(Path::new(&self.inv.out_dir), &tc.digest));
        self.tc = Some(tc);
        self.inputs = Some(inputs);
        match &self.driver {
            Some(d) => Ok(d.key(&base, &self.site.rel)?),
            None => Ok(base),
        }
    }

    fn build_set(&self) -> Option<Key> {
        self.set
    }

    fn restores_from_file(&self, name: &str) -> bool {
        // Dep-info is rewritten on its way out; every other output is copied as it is.
        !name.ends_with(".d")
    }

    fn accepts(&self, r: &ResultView<'_>) -> bool {
        // Stored before failed links stopped being stored: never replay one.
        r.meta.exit_code == 0 || !self.inv.links()
    }

    fn restore(&mut self, r: &ResultView<'_>, v: &Variant) -> io::Result<()> {
        if self.inv.links() {
            self.read = v.files.iter().map(|f| self.site.rel.abs(f)).collect();
        }
        let out_dir = Path::new(&self.inv.out_dir);
        fs::create_dir_all(out_dir)?;
        for f in &r.files {
            if f.name.ends_with(".d") {
                let moved = engine::relocate(f.bytes, &r.meta, &self.inv.out_dir, &self.site.rel);
                process::restore_file(out_dir, &f.name, f.mode, &moved)?;
            } else {
                match (r.source, f.at) {
                    (Some(src), Some((off, len))) => {
                        process::restore_file_from(out_dir, &f.name, f.mode, src, off, len)?
                    }
                    _ => process::restore_file(out_dir, &f.name, f.mode, f.bytes)?,
                }
                filehash::remember(&out_dir.join(&f.name), &f.hash);
            }
        }
        Ok(())
    }

    fn run(&mut self) -> io::Result<Ran> {
        self.link_deps = self.link_deps_file();
        let mut cmd = command(self.driver.as_ref(), &self.rustc);
        cmd.args(&self.args);
        // A user's own remapping is left alone.
        if !self.inv.keyed_args.iter().any(|a| a.contains("remap-path-prefix") || a.contains("remap-cwd-prefix")) {
            cmd.args(self.site.rel.remap_args());
        }
        if let Some(p) = &self.link_deps {
            cmd.args(linkdeps::args(p));
        }
        if let Some(ran) = self.remote(&cmd) {
            return Ok(ran);
        }
        process::capture(cmd)
    }

    fn run_uncached(&mut self) -> i32 {
        uncached(command(self.driver.as_ref(), &self.rustc), &self.args, Some(&self.inv))
    }

    /// A failure is stored only when the compile does not link: a link can fail for what the
    /// key does not see (a system library not yet installed), and replaying it would outlive
    /// the fix. Build scripts' compiler probes are pure compiles, and still replayed.
    fn stores_failures(&self) -> bool {
        !self.inv.links()
    }

    fn collect(&mut self, ran: &Ran) -> Result<Collected, NotStored> {
        // Some(None): the linker was asked for its list and wrote none.
        let linked = self.link_deps.take().map(|p| {
            let files = fs::read_to_string(&p).ok().map(|t| linkdeps::relevant(linkdeps::parse(&t), &self.inv.out_dir));
            let _ = fs::remove_file(&p);
            files
        });
        let linked = match linked {
            Some(None) if ran.status.success() => {
                return Err(io::Error::other("the linker wrote no dependency file").into());
            }
            Some(Some(files)) if ran.status.success() => files,
            _ => Vec::new(),
        };
        let inv = &self.inv;
        let out_dir = Path::new(&inv.out_dir);
        let dep_name = format!("{}{}.d", inv.crate_name, inv.extra_filename);
        // An output that still holds a root's absolute path (a string a proc-macro or `env!`
        // put there, C debuginfo) would name this machine's folders elsewhere: it is bound to
        // them.
        let mut scan = self.site.rel.scan();
        let (files, found): (Vec<_>, Vec<_>) =
            outputs::collect_outputs(out_dir, &inv.crate_name, &inv.extra_filename, ran.started, &dep_name, &mut scan)?
                .into_iter()
                .unzip();
        let dep = files.iter().find(|f| f.name == dep_name).ok_or_else(|| io::Error::other("no dep-info written"))?;
        let dep = dep.body.in_memory().ok_or_else(|| io::Error::other("dep-info not read"))?;
        let mut deps = depinfo::parse(&String::from_utf8_lossy(dep));
        deps.files.extend(linked);
        if inv.links() {
            self.read = deps.files.clone();
        }
        for f in files.iter().filter(|f| f.name != dep_name) {
            filehash::remember(&out_dir.join(&f.name), &f.hash);
        }
        let mut env = deps.env;
        engine::bind(&mut env, found.into_iter().flatten());
        let variant = Variant { files: deps.files.iter().map(|f| self.site.rel.rel(f)).collect(), env };
        let tc = self.tc.as_ref().ok_or_else(|| io::Error::other("no toolchain"))?;
        Ok(Collected {
            files,
            variant,
            listed: match self.driver {
                Some(_) => (inv.crate_name.clone(), vec!["clippy".into()]),
                None => listed_as(inv),
            },
            target: tc.target.clone(),
            rustc_version: tc.version.clone(),
        })
    }

    fn after_success(&mut self) {
        after_success(&self.inv);
    }

    fn after_miss(&mut self, outcome: &Outcome, stored: Option<&VariantInputs>) {
        let word = if *outcome == Outcome::MissFailed { "miss:failed" } else { "miss" };
        note_why(self, stored, word);
    }
}

/// Keeps the inputs of a miss for `cairn why` (why.rs). `stored`: the inputs of the dependency
/// set stored, as the engine hashed them, when there is one. Best effort: a failure here costs
/// only the explanation.
fn note_why(fe: &Rustc, stored: Option<&VariantInputs>, outcome: &str) {
    let (Some(inputs), Some(tc)) = (&fe.inputs, &fe.tc) else { return };
    let (files, env) = stored.cloned().unwrap_or_default();
    let (krate, crate_types) = listed_as(&fe.inv);
    let fp = why::Fingerprint {
        unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        crate_types,
        outcome: outcome.to_string(),
        fields: why::fields(inputs, &tc.version, &files, &env),
    };
    let _ = why::append(&fe.cache_base, &krate, fp);
}

/// Gathers the base key's inputs and hashes them.
/// `graph` is every rlib a linking compile pulls in (graph.rs), by name and content.
fn base_key(
    rustc: &Path,
    inv: &Invocation,
    graph: &[(String, [u8; 32])],
    rel: &Rel,
    memo: &Path,
) -> io::Result<(Key, toolchain::Toolchain, BaseInputs)> {
    let tc = toolchain::identify(rustc, inv.target.as_deref(), memo)?;
    let mut link: Vec<(String, Option<[u8; 32]>)> = if inv.links() {
        link::link_inputs(inv, memo)?.into_iter().map(|(label, h)| (rel.rel(&label), h)).collect()
    } else {
        Vec::new()
    };
    link.extend(graph.iter().map(|(name, h)| (name.clone(), Some(*h))));
    let cwd = rel.rel(&std::env::current_dir()?.display().to_string());
    let externs = inv
        .externs
        .iter()
        .map(|(name, path)| Ok((name.clone(), path.as_ref().map(|p| filehash::hash_file(Path::new(p))).transpose()?)))
        .collect::<io::Result<Vec<_>>>()?;
    let static_libs = inv
        .static_libs
        .iter()
        .map(|name| {
            let found = link::find_native(inv, &format!("lib{name}.a"));
            Ok((name.clone(), found.map(|p| filehash::hash_file(&p)).transpose()?))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let target_spec = match &inv.target {
        Some(t) if t.ends_with(".json") => Some(filehash::hash_file(Path::new(t))?),
        _ => None,
    };
    let mut env: Vec<(String, String)> =
        std::env::vars().filter(|(k, _)| cache_key::is_crate_env(k)).map(|(k, v)| (k, rel.rel(&v))).collect();
    env.sort();
    let inputs = BaseInputs {
        toolchain: tc.digest,
        cwd,
        input: rel.rel(&inv.input),
        args: engine::native_cpu::resolve_args(&inv.keyed_args, || {
            engine::native_cpu::resolve(rustc, inv.target.as_deref(), &tc.digest, memo)
        })?
        .iter()
        .map(|a| rel.rel(a))
        .collect(),
        cfgs: inv.cfgs.iter().map(|a| rel.rel(a)).collect(),
        externs,
        static_libs,
        target_spec,
        env,
        link,
    };
    Ok((cache_key::base_key(&inputs), tc, inputs))
}

/// The crate name and types an entry is listed under (`by-crate/`, xattrs). A build script's
/// compile is listed under its package, as type `build-script`, next to the package's other
/// entries; rustc calls every build script `build_script_build`, which says nothing.
fn listed_as(inv: &Invocation) -> (String, Vec<String>) {
    let package = std::env::var("CARGO_PKG_NAME").ok().filter(|p| !p.is_empty());
    match package {
        Some(p) if frontends::is_build_script(&inv.crate_name, &inv.crate_types) => {
            (p.replace('-', "_"), vec!["build-script".to_string()])
        }
        _ => (inv.crate_name.clone(), inv.crate_types.clone()),
    }
}

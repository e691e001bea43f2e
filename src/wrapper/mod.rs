//! `cairn-rustc`, the RUSTC_WRAPPER: hit, miss, or pass through — and never fail a build for a
//! cache reason.
//!
//! Must stay small and quick to start: std, blake3, serde/bincode and cairn's pure modules —
//! never tokio, the AWS SDK or fuser (`scripts/check-wrapper-deps` checks the binary).
//!
//! A cacheable compile:
//! 1. find the mount (starting the daemon if needed);
//! 2. compute the base key (toolchain, cwd, arguments, `--extern` contents, crate env);
//! 3. read the manifest named after it; for each dependency set it lists, hash those sources
//!    and variables now and try the result object of that key: a **direct hit**, with no rustc
//!    process at all;
//! 4. otherwise compile, passing output through; on success store the outputs as a result
//!    object and record the dependency set in the manifest.
//!
//! Every error on the cache side means "run rustc as if cairn were not there".

pub mod args;
pub mod basedir;
pub mod cache_key;
pub mod compile;
pub mod depinfo;
pub mod filehash;
pub mod graph;
pub mod link;
pub mod linkdeps;
pub mod log;
pub mod memo;
pub mod mount;
pub mod native_cpu;
pub mod toolchain;
pub mod why;

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::key::Key;
use crate::protocol::object::{CompileResult, EntryMeta, Manifest, ResultView, Variant};
use crate::protocol::report;
use args::{Classified, Invocation};
use basedir::Rel;
use cache_key::BaseInputs;

/// Runs the wrapper on its command line (`argv[0]` is the wrapper) and returns the exit code.
pub fn main(argv: Vec<OsString>) -> i32 {
    // The same binary is three front ends: the rustc wrapper, the build-script launcher's
    // target, and (under the names cairn-cc / cairn-c++) the C and C++ compiler wrapper.
    if argv.get(1).is_some_and(|a| a == crate::build_script::FLAG) {
        return crate::build_script::run(&argv);
    }
    if let Some(lang) = argv.first().and_then(|a| crate::cc::language_of(Path::new(a))) {
        return crate::cc::main(lang, &argv[1..]);
    }
    let Some(rustc) = argv.get(1).map(PathBuf::from) else {
        eprintln!("cairn-rustc: usage: cairn-rustc RUSTC [ARGS...]  (as RUSTC_WRAPPER=cairn-rustc)");
        return 2;
    };
    // A bare name is looked up on PATH once, so the key and the compile use the same binary.
    let rustc = toolchain::resolve_program(&rustc).unwrap_or(rustc);
    let args = &argv[2..];
    match args::classify(args) {
        Classified::NotCompilation => exec(&rustc, args),
        Classified::NotCacheable(reason) => {
            if let Some(mp) = mount::mountpoint().filter(|m| mount::probe(m) == mount::Probe::Live) {
                report::send(&mp, &report::Event::NotCacheable(reason.as_str()));
            }
            log::record(
                &args::crate_name_of(args),
                None,
                &format!("not-cacheable:{}", reason.as_str()),
                Default::default(),
                None,
            );
            uncached(&rustc, args, args::outline(args).as_ref())
        }
        Classified::Cacheable(inv) => cached(&rustc, args, &inv),
    }
}

/// Runs rustc without the cache. A compile that makes an rlib still gets its dependency list
/// (graph.rs), so the compiles that link it stay cacheable, and a build script still gets its
/// launcher; any other compile is simply replaced by rustc.
fn uncached(rustc: &Path, args: &[OsString], inv: Option<&Invocation>) -> i32 {
    let Some(inv) =
        inv.filter(|i| graph::makes_rlib(i) || crate::build_script::is_build_script(&i.crate_name, &i.crate_types))
    else {
        return exec(rustc, args);
    };
    match Command::new(rustc).args(args).status() {
        Ok(status) => {
            if status.success() {
                after_success(inv);
            }
            status.code().unwrap_or(101)
        }
        Err(e) => {
            eprintln!("cairn-rustc: cannot run {}: {e}", rustc.display());
            127
        }
    }
}

/// What follows every successful compile, hit or miss: the rlib's dependency list, the build
/// script's launcher.
fn after_success(inv: &Invocation) {
    if let Err(e) = graph::record(inv) {
        log::record(&inv.crate_name, None, &format!("error:deps-list:{}", oneword(&e)), Default::default(), None);
    }
    launcher(inv);
}

/// Replaces this process with rustc.
fn exec(rustc: &Path, args: &[OsString]) -> i32 {
    let err = Command::new(rustc).args(args).exec();
    eprintln!("cairn-rustc: cannot run {}: {err}", rustc.display());
    127
}

fn cached(rustc: &Path, args: &[OsString], inv: &Invocation) -> i32 {
    let t0 = Instant::now();
    let mnt = match mount::find_or_start() {
        Ok(m) => m,
        Err(why) => {
            mount::warn_once(&why);
            log::record(&inv.crate_name, None, "error:no-mount", t0.elapsed(), None);
            return uncached(rustc, args, Some(inv));
        }
    };
    let rel = Rel::for_rustc(
        &std::env::current_dir().unwrap_or_default(),
        Path::new(&inv.out_dir),
        &inv.input,
        inv.target.as_deref(),
    );
    let graph = if graph::needs_graph(inv) {
        match graph::closure(inv) {
            Ok(g) => g,
            Err(_) => {
                // Some rlib of the graph was built without cairn: what it links is unknown.
                log::record(&inv.crate_name, None, "not-cacheable:unknown-graph", t0.elapsed(), None);
                report::send(&mnt, &report::Event::NotCacheable("unknown-graph".into()));
                return uncached(rustc, args, Some(inv));
            }
        }
    } else {
        Vec::new()
    };
    let (base, tc, inputs) = match base_key(rustc, inv, &graph, &rel) {
        Ok(x) => x,
        Err(e) => {
            log::record(&inv.crate_name, None, &format!("error:key:{}", oneword(&e)), t0.elapsed(), None);
            report::send(&mnt, &report::Event::Error);
            return uncached(rustc, args, Some(inv));
        }
    };
    let mkey = cache_key::manifest_key(&base);
    // The build set this compile belongs to: the daemon fetches what the set's recent builds
    // used, once per build (src/build_sets.rs), before this compile's own lookups.
    let set = build_set(Path::new(&inv.out_dir), &tc.digest);
    report::send(&mnt, &report::Event::Begin(set));
    let manifest = read_object(&mnt, &mkey).and_then(|b| match Manifest::decode(&b) {
        Ok(m) => Some(m),
        Err(_) => {
            let _ = fs::remove_file(mnt.join(mkey.to_hex()));
            None
        }
    });
    if let Some(m) = &manifest {
        for v in &m.variants {
            let Some(rkey) = result_key_now(&base, v, &rel) else {
                continue;
            };
            let Some(bytes) = read_object(&mnt, &rkey) else {
                continue;
            };
            let result = match CompileResult::decode(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    // Damaged or of another format: remove it so the next store can replace it.
                    let _ = fs::remove_file(mnt.join(rkey.to_hex()));
                    log::record(
                        &inv.crate_name,
                        Some(&rkey),
                        &format!("error:object:{e}").replace(' ', "_"),
                        t0.elapsed(),
                        None,
                    );
                    continue;
                }
            };
            if result.meta.exit_code != 0 && inv.links() {
                // Stored before failed links stopped being stored: never replay one.
                continue;
            }
            match restore(inv, &result, &rel) {
                Ok(()) => {
                    let code = result.meta.exit_code;
                    if code == 0 {
                        after_success(inv);
                    }
                    report::send_all(
                        &mnt,
                        &[
                            report::Event::Hit {
                                kind: report::Kind::Rustc,
                                compile_ns: result.meta.compile_ns,
                                took_ns: t0.elapsed().as_nanos() as u64,
                                bytes: bytes.len() as u64,
                            },
                            report::Event::Used(set, vec![mkey, rkey]),
                        ],
                    );
                    log::record(
                        &inv.crate_name,
                        Some(&rkey),
                        if code == 0 { "hit" } else { "hit:failed" },
                        t0.elapsed(),
                        Some(std::time::Duration::from_nanos(result.meta.compile_ns)),
                    );
                    return code;
                }
                Err(e) => {
                    log::record(
                        &inv.crate_name,
                        Some(&rkey),
                        &format!("error:restore:{}", oneword(&e)),
                        t0.elapsed(),
                        None,
                    );
                    report::send(&mnt, &report::Event::Error);
                    break;
                }
            }
        }
    }
    // Miss: compile for real. A compile that links also has the linker list what it read.
    let link_deps = link_deps_file(rustc, inv, &tc);
    let mut full_args = args.to_vec();
    // Artifacts name the roots by fixed prefixes, so they are the same in every checkout
    // (basedir.rs). A user's own remapping is left alone.
    if !inv.keyed_args.iter().any(|a| a.contains("remap-path-prefix") || a.contains("remap-cwd-prefix")) {
        full_args.extend(rel.remap_args().into_iter().map(OsString::from));
    }
    if let Some(p) = &link_deps {
        full_args.extend(linkdeps::args(p));
    }
    let ran = match compile::run_and_capture(rustc, &full_args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn-rustc: cannot run {}: {e}", rustc.display());
            return 127;
        }
    };
    // Some(None): the linker was asked for its list and wrote none.
    let linked_files = link_deps.as_ref().map(|p| {
        let files = fs::read_to_string(p).ok().map(|t| linkdeps::relevant(linkdeps::parse(&t), &inv.out_dir));
        let _ = fs::remove_file(p);
        files
    });
    if !ran.status.success() {
        // A failure is stored only when rustc wrote dep-info (so its inputs are known) and
        // exited normally; a crash or a signal is never replayed. Nor is a failed compile that
        // links: a link can fail for what the key does not see (a system library not yet
        // installed), and replaying it would outlive the fix. Build scripts' compiler probes
        // are pure compiles, and still replayed.
        let stored = match ran.status.code() {
            Some(_) if !inv.links() => store(&mnt, inv, &base, &tc, manifest, &ran, &[], &rel).ok(),
            _ => None,
        };
        note_why(inv, &inputs, &tc, stored.as_ref().map(|s| &s.2), &rel, "miss:failed");
        let key = stored.map(|s| s.0);
        log::record(&inv.crate_name, key.as_ref(), "miss:failed", t0.elapsed(), Some(ran.took));
        report::send(
            &mnt,
            &report::Event::Miss { kind: report::Kind::Rustc, compile_ns: ran.took.as_nanos() as u64, bytes: 0 },
        );
        return ran.status.code().unwrap_or(101);
    }
    let stored = match linked_files {
        // What the linker read is unknown: do not record this result.
        Some(None) => Err(io::Error::other("the linker wrote no dependency file")),
        files => store(&mnt, inv, &base, &tc, manifest, &ran, &files.flatten().unwrap_or_default(), &rel),
    };
    after_success(inv);
    note_why(inv, &inputs, &tc, stored.as_ref().ok().map(|s| &s.2), &rel, "miss");
    match stored {
        Ok((rkey, bytes, _)) => {
            log::record(&inv.crate_name, Some(&rkey), "miss", t0.elapsed(), Some(ran.took));
            report::send_all(
                &mnt,
                &[
                    report::Event::Miss { kind: report::Kind::Rustc, compile_ns: ran.took.as_nanos() as u64, bytes },
                    report::Event::Used(set, vec![mkey, rkey]),
                ],
            );
        }
        Err(e) if changed_during_compile(&e) => {
            log::record(&inv.crate_name, None, "miss:changed", t0.elapsed(), Some(ran.took));
            report::send(
                &mnt,
                &report::Event::Miss { kind: report::Kind::Rustc, compile_ns: ran.took.as_nanos() as u64, bytes: 0 },
            );
        }
        Err(e) => {
            log::record(&inv.crate_name, None, &format!("error:store:{}", oneword(&e)), t0.elapsed(), Some(ran.took));
            report::send(&mnt, &report::Event::Error);
        }
    }
    0
}

/// Keeps the inputs of a miss for `cairn why` (why.rs). `variant`: the dependency set stored,
/// when there is one. Best effort: a failure here costs only the explanation.
fn note_why(
    inv: &Invocation,
    inputs: &BaseInputs,
    tc: &toolchain::Toolchain,
    variant: Option<&Variant>,
    rel: &Rel,
    outcome: &str,
) {
    let Some(dir) = mount::cache_base() else { return };
    let (files, env) = variant.and_then(|v| variant_inputs(v, rel)).unwrap_or_default();
    let (krate, crate_types) = listed_as(inv);
    let fp = why::Fingerprint {
        unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        crate_types,
        outcome: outcome.to_string(),
        fields: why::fields(inputs, &tc.version, &files, &env),
    };
    let _ = why::append(&dir, &krate, fp);
}

/// A build script just compiled or restored gets the launcher that caches its runs.
fn launcher(inv: &Invocation) {
    if !crate::build_script::is_build_script(&inv.crate_name, &inv.crate_types)
        || std::env::var("CAIRN_BUILD_SCRIPTS").as_deref() == Ok("0")
    {
        return;
    }
    let bin = format!("{}{}", inv.crate_name, inv.extra_filename);
    if let Err(e) = crate::build_script::install_launcher(Path::new(&inv.out_dir), &bin) {
        log::record(&inv.crate_name, None, &format!("error:launcher:{}", oneword(&e)), Default::default(), None);
    }
}

fn oneword(e: &io::Error) -> String {
    e.to_string().split_whitespace().take(6).collect::<Vec<_>>().join("_")
}

/// Gathers the base key's inputs and hashes them.
/// `graph` is every rlib a linking compile pulls in (graph.rs), by name and content.
fn base_key(
    rustc: &Path,
    inv: &Invocation,
    graph: &[(String, [u8; 32])],
    rel: &Rel,
) -> io::Result<(Key, toolchain::Toolchain, BaseInputs)> {
    let memo = mount::cache_base().ok_or_else(|| io::Error::other("no HOME"))?.join("toolchains");
    let tc = toolchain::identify(rustc, inv.target.as_deref(), &memo)?;
    let mut link: Vec<(String, Option<[u8; 32]>)> = if inv.links() {
        link::link_inputs(inv, &memo)?.into_iter().map(|(label, h)| (rel.rel(&label), h)).collect()
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
            let found =
                inv.native_paths.iter().map(|d| Path::new(d).join(format!("lib{name}.a"))).find(|p| p.is_file());
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
        args: native_cpu::resolve_args(&inv.keyed_args, || {
            native_cpu::resolve(rustc, inv.target.as_deref(), &tc.digest, &memo)
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

/// The result key for a dependency set, from the files and variables as they are now.
/// `None` when a listed file cannot be read (it was deleted: that set no longer applies).
/// Paths in `v` are stored relative to the checkout root (when `CAIRN_BASEDIR` applies).
pub(crate) fn result_key_now(base: &Key, v: &Variant, rel: &Rel) -> Option<Key> {
    let (files, env) = variant_inputs(v, rel)?;
    Some(cache_key::result_key(base, &files, &env))
}

/// Files and variables a result key hashes.
type VariantInputs = (Vec<(String, Option<[u8; 32]>)>, Vec<(String, Option<String>)>);

/// A dependency set's files with their contents' hashes and variables with their values, as
/// they are now; `None` when a file cannot be read.
fn variant_inputs(v: &Variant, rel: &Rel) -> Option<VariantInputs> {
    let mut files = Vec::with_capacity(v.files.len());
    for f in &v.files {
        files.push((f.clone(), Some(filehash::hash_file(Path::new(&rel.abs(f))).ok()?)));
    }
    Some((files, variant_env(&v.env, rel)))
}

/// The variables of a dependency set with their values now, root-relative. A name that is a
/// root's placeholder marks an output bound to that root (see `store`): its value is the
/// root's path here.
pub(crate) fn variant_env(names: &[String], rel: &Rel) -> Vec<(String, Option<String>)> {
    names
        .iter()
        .map(|k| match basedir::is_placeholder(k) {
            true => (k.clone(), Some(rel.abs(k))),
            false => (k.clone(), std::env::var(k).ok().map(|v| rel.rel(&v))),
        })
        .collect()
}

/// Adds to `env` the placeholder of every root whose absolute path occurs in `bytes`: an
/// output that names this machine's folders is only served under the same folders.
pub(crate) fn bind_roots(env: &mut Vec<String>, rel: &Rel, bytes: &[u8]) {
    for ph in rel.found_in(bytes) {
        if !env.iter().any(|e| e == ph) {
            env.push(ph.to_string());
        }
    }
}

/// Reads an object; any failure (absent, damaged, mount gone) is a miss.
pub(crate) fn read_object(mnt: &Path, key: &Key) -> Option<Vec<u8>> {
    match fs::read(mnt.join(key.to_hex())) {
        Ok(b) => Some(b),
        Err(e) => {
            if e.raw_os_error() == Some(libc::ENOTCONN) {
                mount::warn_once("the cairn mount stopped answering (daemon killed?)");
            }
            None
        }
    }
}

/// Puts a stored result in place: files into `--out-dir` (paths in dep-info rewritten to this
/// target dir), then stdout and stderr replayed byte for byte (with the same rewrite, which
/// affects only artifact notices).
fn restore(inv: &Invocation, r: &ResultView<'_>, rel: &Rel) -> io::Result<()> {
    let out_dir = Path::new(&inv.out_dir);
    fs::create_dir_all(out_dir)?;
    let fix = |bytes: &[u8]| relocate(bytes, &r.meta, &inv.out_dir, rel);
    for f in &r.files {
        if f.name.ends_with(".d") {
            compile::restore_file(out_dir, &f.name, f.mode, &fix(f.bytes))?;
        } else {
            compile::restore_file(out_dir, &f.name, f.mode, f.bytes)?;
            filehash::remember(&out_dir.join(&f.name), &f.hash);
        }
    }
    io::stdout().write_all(&fix(r.stdout))?;
    io::stderr().write_all(&fix(r.stderr))?;
    Ok(())
}

/// Stored bytes with paths naming the entry's original output folder, then its original
/// checkout, made to name this build's.
pub(crate) fn relocate(bytes: &[u8], meta: &EntryMeta, out_dir: &str, rel: &Rel) -> Vec<u8> {
    let b = depinfo::rewrite(bytes, &meta.out_dir, out_dir);
    let from = Rel::from_stored(&meta.roots);
    if from == *rel || meta.roots.is_empty() {
        return b;
    }
    match String::from_utf8(b) {
        Ok(s) => rel.relocate(&s, &from).into_bytes(),
        Err(e) => e.into_bytes(),
    }
}

/// Where the linker of a compile that links writes its dependency file (linkdeps.rs), when it
/// can.
fn link_deps_file(rustc: &Path, inv: &Invocation, tc: &toolchain::Toolchain) -> Option<PathBuf> {
    let emits_link = inv.keyed_args.iter().any(|a| a.starts_with("--emit=") && a[7..].split(',').any(|e| e == "link"));
    if !inv.links() || !emits_link || std::env::var("CAIRN_LINK_DEPS").as_deref() == Ok("0") {
        return None;
    }
    let memo = mount::cache_base()?.join("toolchains");
    linkdeps::supported(rustc, inv, &tc.digest, &memo)
        .then(|| Path::new(&inv.out_dir).join(format!(".cairn-link-{}.d", std::process::id())))
}

/// Stores a successful compile and records its dependency set in the manifest: the sources of
/// its dep-info, and `linked`, the files its linker read (linkdeps.rs).
#[allow(clippy::too_many_arguments)]
fn store(
    mnt: &Path,
    inv: &Invocation,
    base: &Key,
    tc: &toolchain::Toolchain,
    manifest: Option<Manifest>,
    ran: &compile::Ran,
    linked: &[String],
    rel: &Rel,
) -> io::Result<(Key, u64, Variant)> {
    let out_dir = Path::new(&inv.out_dir);
    let files = compile::collect_outputs(out_dir, &inv.crate_name, &inv.extra_filename, ran.started)?;
    let dep_name = format!("{}{}.d", inv.crate_name, inv.extra_filename);
    let dep = files.iter().find(|f| f.name == dep_name).ok_or_else(|| io::Error::other("no dep-info written"))?;
    let mut deps = depinfo::parse(&String::from_utf8_lossy(&dep.bytes));
    deps.files.extend(linked.iter().cloned());
    for f in &files {
        if f.name != dep_name {
            filehash::remember(&out_dir.join(&f.name), &f.hash);
        }
    }
    // A source modified after the compile started may not be what rustc read: the pair of
    // its new content and this output must never be recorded (ccache does the same).
    if let Some(f) = deps.files.iter().find(|f| modified_since(Path::new(f), ran.started)) {
        return Err(io::Error::other(ChangedDuringCompile(f.clone())));
    }
    // An output that still holds a root's absolute path (a string a proc-macro or `env!` put
    // there, C debuginfo) would name this machine's folders elsewhere: it is bound to them.
    let mut env = deps.env;
    for f in files.iter().filter(|f| f.name != dep_name) {
        bind_roots(&mut env, rel, &f.bytes);
    }
    let variant = Variant { files: deps.files.iter().map(|f| rel.rel(f)).collect(), env };
    let rkey =
        result_key_now(base, &variant, rel).ok_or_else(|| io::Error::other("a source vanished during the compile"))?;
    let listed = listed_as(inv);
    let result = CompileResult {
        meta: EntryMeta {
            crate_name: listed.0,
            crate_types: listed.1,
            target: tc.target.clone(),
            rustc_version: tc.version.clone(),
            compile_ns: ran.took.as_nanos() as u64,
            created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            out_dir: inv.out_dir.clone(),
            exit_code: ran.status.code().unwrap_or(0),
            roots: rel.stored(),
        },
        files,
        stdout: ran.stdout.clone(),
        stderr: ran.stderr.clone(),
    };
    let encoded = result.encode();
    put_object(mnt, &rkey, &encoded, false)?;
    let mut m = manifest.unwrap_or_default();
    if m.variants.first() != Some(&variant) || m.recent.first() != Some(&rkey) {
        m.push_front(variant.clone());
        m.push_result(rkey);
        put_object(mnt, &cache_key::manifest_key(base), &m.encode(), true)?;
    }
    Ok((rkey, encoded.len() as u64, variant))
}

/// Commits bytes under a key: write a temporary, rename it onto the key. `replace` swaps out
/// an existing object with different bytes (manifests); results are never replaced.
pub(crate) fn put_object(mnt: &Path, key: &Key, bytes: &[u8], replace: bool) -> io::Result<()> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let tmp = mnt.join(crate::protocol::names::temp_name_for(key, std::process::id(), nanos));
    let dest = mnt.join(key.to_hex());
    let result = (|| {
        fs::write(&tmp, bytes)?;
        match fs::rename(&tmp, &dest) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && replace => {
                // Another dependency set was recorded first; ours is newer. A reader that looks
                // in between sees no manifest: a miss, never a wrong hit.
                let _ = fs::remove_file(&dest);
                fs::rename(&tmp, &dest)
            }
            // Someone stored different bytes for the same result key (a compile that is not
            // bit-for-bit reproducible): theirs stays, ours is dropped.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// The crate name and types an entry is listed under (`by-crate/`, xattrs). A build script's
/// compile is listed under its package, as type `build-script`, next to the package's other
/// entries; rustc calls every build script `build_script_build`, which says nothing.
fn listed_as(inv: &args::Invocation) -> (String, Vec<String>) {
    let package = std::env::var("CARGO_PKG_NAME").ok().filter(|p| !p.is_empty());
    match package {
        Some(p) if crate::build_script::is_build_script(&inv.crate_name, &inv.crate_types) => {
            (p.replace('-', "_"), vec!["build-script".to_string()])
        }
        _ => (inv.crate_name.clone(), inv.crate_types.clone()),
    }
}

/// The build set of a compile or build-script run (src/build_sets.rs), from the folder its
/// outputs go to: the toolchain, the profile (the folder above `deps/` or `build/`, as cargo
/// lays out its target dir) and the name of the folder that holds the target dir (the one
/// with cargo's `CACHEDIR.TAG`): the workspace's, for the usual `<workspace>/target`.
pub(crate) fn build_set(out_dir: &Path, toolchain: &[u8; 32]) -> Key {
    let parts: Vec<&str> = out_dir.iter().filter_map(|c| c.to_str()).collect();
    let profile = parts.iter().rposition(|c| *c == "deps" || *c == "build").and_then(|i| i.checked_sub(1));
    let profile = profile.map(|i| parts[i]).unwrap_or("");
    let target = out_dir.ancestors().take(6).find(|d| d.join("CACHEDIR.TAG").is_file());
    let workspace = target.and_then(Path::parent).and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or("");
    crate::protocol::object::build_set_key(toolchain, profile, workspace)
}

/// A source (or header) that changed while its compile ran: the output is not recorded, since
/// it may not match the file's new text. Not a fault of the cache: the outcome is
/// `miss:changed`, a miss in `cairn stats`, never an error.
#[derive(Debug)]
pub(crate) struct ChangedDuringCompile(pub String);

impl std::fmt::Display for ChangedDuringCompile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} changed during the compile", self.0)
    }
}

impl std::error::Error for ChangedDuringCompile {}

/// Whether `e` is a [`ChangedDuringCompile`].
pub(crate) fn changed_during_compile(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|r| r.is::<ChangedDuringCompile>())
}

/// Whether `path` was written between `t` and now (a file that is gone counts as changed).
/// An mtime in the future is a skewed clock or a tarball's stamp, not an edit during the
/// compile.
pub(crate) fn modified_since(path: &Path, t: SystemTime) -> bool {
    match fs::metadata(path).and_then(|m| m.modified()) {
        Ok(m) => m >= t && m <= SystemTime::now(),
        Err(_) => true,
    }
}

//! Target-dir seeding (issue #21; docs/seeding.md): a fresh target dir gets the registry and
//! git units of earlier builds from the cache before cargo decides what is fresh, so cargo
//! runs nothing for them.
//!
//! Two halves, both best effort (nothing here fails or changes a build; a doubt is a unit
//! not seeded, which cargo then builds through the cache as before):
//! - **the probe** ([`on_probe`]): cargo's first request in a target dir (probe.rs). The
//!   wrapper computes the seed context (context.rs), writes the marker `<target>/.cairn-seed`
//!   naming the set keys, and, where the target dir is fresh, asks the daemon for the set and
//!   restores its units (restore.rs).
//! - **reports** ([`report`]): each registry or git unit compiled (or run) in a marked target
//!   dir tells the daemon, through its socket and with a descriptor of the target dir, that
//!   it is done and what it was built from. The daemon copies it into a unit object once
//!   cargo has written its fingerprint, and keeps the set (daemon/seeder.rs).

pub mod context;
pub mod probe;
pub mod restore;

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::basedir::Kind as Root;
use super::cache::Cache;
use super::{door::Door, filehash, log, mount};
use crate::key::Key;
use crate::protocol::report::{Event, Kind};
use crate::protocol::seed::{Capture, Marker, ResultOf, SeedSet, MARKER};
use crate::protocol::wire::{self, Op};

/// How long a probe may spend restoring before it lets cargo go on.
const DEADLINE: Duration = Duration::from_secs(20);

/// Whether seeding is on (`CAIRN_SEED=0` turns it off).
fn enabled() -> bool {
    std::env::var("CAIRN_SEED").as_deref() != Ok("0")
}

/// On cargo's target-info probe: marks the target dir and seeds it when fresh. Logs one line
/// (`seed:<n>-units` or `seed-none:<why>`); never fails.
pub fn on_probe(rustc: &Path, args: &[OsString]) {
    if !enabled() {
        return;
    }
    let t0 = Instant::now();
    let (target, (word, saved, set)) = match seed(rustc, args) {
        Ok(r) => r,
        Err((t, why)) => (t, (format!("seed-none:{why}"), None, None)),
    };
    log::record_kind(Kind::Seed, &target, set.as_ref(), &word, t0.elapsed(), saved);
}

/// The log's outcome word, the compile time the seeded units stood for, the set used.
type Seeded = (String, Option<Duration>, Option<Key>);

fn seed(rustc: &Path, args: &[OsString]) -> Result<(String, Seeded), (String, String)> {
    let cwd = std::env::current_dir().map_err(|_| (String::from("-"), "no-cwd".to_string()))?;
    let env = |k: &str| std::env::var(k).ok();
    let home = cargo_home();
    let place = probe::place(&cwd, &env, home.as_deref()).map_err(|w| ("-".to_string(), w.to_string()))?;
    let tname = place.target.display().to_string();
    let fail = |w: &str| (tname.clone(), w.to_string());
    let fresh = probe::fresh(&place.target);
    let memo = mount::cache_base().ok_or_else(|| fail("no-home"))?.join("toolchains");
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let (ctx, toolchain) =
        context::digest(rustc, args, &cwd, &vars, home.as_deref(), &memo).map_err(|_| fail("context"))?;
    let lock = fs::read_to_string(place.workspace.join("Cargo.lock")).map_err(|_| fail("lockfile"))?;
    let (sourced, local) = probe::lock_packages(&lock);
    let exact = keyed("exact", &ctx, lock.as_bytes());
    let latest = keyed("latest", &ctx, local.join("\n").as_bytes());
    let mut roots = vec![
        (Root::Checkout.placeholder().to_string(), place.workspace.display().to_string()),
        (Root::Target.placeholder().to_string(), place.target.display().to_string()),
    ];
    if let Some(h) = &home {
        roots.push((Root::CargoHome.placeholder().to_string(), h.display().to_string()));
    }
    let marker = Marker { exact, latest, roots };
    create_target_dir(&place.target).map_err(|_| fail("target-dir"))?;
    write_marker(&place.target, &marker).map_err(|_| fail("marker"))?;
    if !fresh {
        return Err(fail("built-before"));
    }
    let store = mount::daemon_store().ok_or_else(|| fail("no-store"))?;
    // The probe is the build's first request: start the daemon now if it is not running (as
    // the first compile would), so a fresh machine's first build is seeded too.
    let stream = match wire::connect(&store) {
        Ok(s) => s,
        Err(_) => {
            Door::find_or_start().map_err(|_| fail("no-daemon"))?;
            wire::connect(&store).map_err(|_| fail("no-daemon"))?
        }
    };
    let mut body = exact.0.to_vec();
    body.extend_from_slice(&latest.0);
    let reply = call(&stream, Op::Seed, &body).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => fail("no-set"),
        _ => fail("daemon"),
    })?;
    let (which, set_bytes) = reply.split_first().ok_or_else(|| fail("no-set"))?;
    let set = SeedSet::decode(set_bytes).map_err(|_| fail("damaged-set"))?;
    let set_key = if *which == 0 { exact } else { latest };
    // Registry and git units of this lockfile's packages, and units of this workspace's own
    // packages (each checked against its sources at the restore).
    let ours = |e: &crate::protocol::seed::SetEntry| match e.is_own() {
        false => sourced.binary_search(&e.package).is_ok(),
        true => e.package.split(' ').next().is_some_and(|n| local.binary_search(&n.to_string()).is_ok()),
    };
    let mut entries: Vec<_> = set.entries.into_iter().filter(ours).collect();
    if entries.is_empty() {
        return Err(fail("no-units-of-this-lockfile"));
    }
    // The workspace's own compiles follow the seed: on a fresh machine, the objects they will
    // look up are fetched now, beside the units (src/build_sets.rs), not one by one on
    // cargo's critical path once the first of them asks.
    let door = Door::at(None, Some(&store));
    if let Some(door) = &door {
        let mut profiles: Vec<&str> = entries.iter().map(|e| e.profile.as_str()).collect();
        profiles.sort();
        profiles.dedup();
        let begin: Vec<Event> = profiles
            .into_iter()
            .map(|p| Event::Begin(super::keys::build_set_in(Some(&place.target), p, &toolchain)))
            .collect();
        door.report(&begin);
    }
    // The biggest units first, in the order the daemon fetches them (protocol/object.rs
    // `prefetch_hints`): the last fetch to end is then a small one.
    entries.sort_by_key(|e| std::cmp::Reverse(e.bytes));
    let rel = super::basedir::Rel::from_stored(&marker.roots);
    // One connection per restoring thread, not one per unit.
    thread_local! {
        static DOOR: std::cell::RefCell<Option<Door>> = const { std::cell::RefCell::new(None) };
    }
    let fetch = |k: &Key| {
        DOOR.with_borrow_mut(|door| {
            if door.is_none() {
                *door = Door::at(None, Some(&store));
            }
            door.as_ref()?.open(&k.to_hex()).ok()
        })
    };
    let t0 = Instant::now();
    let r = restore::restore(&entries, &place.target, &rel, &fetch, 4, t0 + DEADLINE);
    if r.units > 0 {
        if let Some(door) = &door {
            door.report(&[Event::Seeded {
                units: r.units as u64,
                compile_ns: r.compile_ns,
                took_ns: t0.elapsed().as_nanos() as u64,
                bytes: r.bytes,
            }]);
        }
    }
    let mut word = format!("seed:{}-units", r.units);
    if !r.skipped.is_empty() {
        let mut whys: Vec<&str> = r.skipped.iter().map(|(_, w)| w.as_str()).collect();
        whys.sort();
        whys.dedup();
        let mut names: Vec<&str> = r.skipped.iter().map(|(u, _)| u.as_str()).collect();
        names.sort();
        word.push_str(&format!(",{}-not:{}:{}", r.skipped.len(), whys.join("+"), names.join("+")));
    }
    if *which != 0 {
        word.push_str(",from-another-lockfile");
    }
    Ok((tname, (word, Some(Duration::from_nanos(r.compile_ns)), Some(set_key))))
}

/// A set's key. The domain's version moves with the set's format (v2, 2026-12-07: entries
/// name their native files; v3, session 18: workspace units with their sources; v4, session
/// 19: workspace build-script runs, and units built on a run's text), so a set of an older
/// format is simply not found.
fn keyed(what: &str, ctx: &[u8; 32], data: &[u8]) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(b"cairn-seed-set-v4\0");
    h.update(what.as_bytes());
    h.update(ctx);
    h.update(data);
    Key(*h.finalize().as_bytes())
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// The target dir, made as cargo makes it: with a `CACHEDIR.TAG`, which cargo writes only
/// into a folder it creates itself. Backup tools skip a tagged folder, and so do the walks of
/// a package's files (a build script's inputs, build_script/inputs.rs).
fn create_target_dir(target: &Path) -> io::Result<()> {
    fs::create_dir_all(target)?;
    let tag = target.join("CACHEDIR.TAG");
    if !tag.exists() {
        let tmp = target.join(format!("CACHEDIR.TAG.{}", std::process::id()));
        fs::write(
            &tmp,
            "Signature: 8a477f597d28d172789f06886806bc55\n\
             # This file is a cache directory tag: cargo's target dir, made by cairn's seeding.\n\
             # For information about cache directory tags see https://bford.info/cachedir/\n",
        )?;
        fs::rename(&tmp, &tag)?;
    }
    Ok(())
}

fn write_marker(target: &Path, m: &Marker) -> io::Result<()> {
    let path = target.join(MARKER);
    if fs::read(&path).ok().and_then(|b| Marker::decode(&b).ok()).as_ref() == Some(m) {
        return Ok(());
    }
    let tmp = target.join(format!("{MARKER}.{}", std::process::id()));
    fs::write(&tmp, m.encode())?;
    fs::rename(&tmp, &path)
}

fn call(stream: &UnixStream, op: Op, body: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = stream;
    wire::write_frame(&mut s, op as u8, &[body])?;
    read_reply(stream)
}

fn read_reply(stream: &UnixStream) -> io::Result<Vec<u8>> {
    let mut s = stream;
    let (status, len) = wire::read_head(&mut s)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    let body = wire::read_body(&mut s, len)?;
    match status {
        0 => Ok(body),
        _ => Err(wire::parse_error(&body)),
    }
}

/// What a unit of the workspace's own packages is recorded with, besides its compile's (or
/// run's) dependency set ([`Capture::sources`]).
pub struct Own<'a> {
    /// Files of the target dir it was built on, each told to the unit that wrote it
    /// ([`Capture::externs`]): a compile's `--extern` files and the `output` of its package's
    /// build-script run (the `rustc-env`, `rustc-cfg` … it was compiled with); a run's script
    /// binary and the `output` of each run whose `DEP_*` variables it read.
    pub built_on: &'a [PathBuf],
    /// A build-script run's package folder and its digest (engine/tree.rs), taken before the
    /// run and found the same after it: the run's key takes every file of its package, and
    /// so does the check at a restore.
    pub package: Option<(&'a Path, [u8; 32])>,
}

/// After a unit's compile (or script run) succeeded in a marked target dir: tells the
/// daemon, with a descriptor of the target dir, that `unit` (`<package>-<hash>`, of
/// `package`, `<name> <version>`) is done there, built from `deps` (hashes), so it copies the
/// unit once cargo has written its fingerprint. `native`: files outside the target dir that
/// went into its outputs unseen by cargo's fingerprint ([`Capture::native`]); the unit is
/// only seeded again while each is the same. `own`: a unit of the workspace's own packages,
/// recorded with its sources ([`Capture::sources`]: the dependency set of the result just
/// served or stored, outside the target dir) and what it was built on ([`Own`]). Costs one
/// request (and a hash of each native file, memoized); never fails.
pub fn report(
    out_dir: &Path,
    unit: String,
    package: String,
    compile: Duration,
    deps: Vec<String>,
    native: &[PathBuf],
    own: Option<Own<'_>>,
) {
    if !enabled() {
        return;
    }
    let Some((target, profile, marker)) = find_marker(out_dir) else { return };
    let Some(store) = mount::daemon_store() else { return };
    let last = super::last_result();
    let rel = super::basedir::Rel::from_stored(&marker.roots);
    let (sources, externs) = match own {
        Some(own) => match last.as_ref().and_then(|r| own_record(r, &own, &rel, &target)) {
            Some(record) => record,
            None => return,
        },
        None => (Vec::new(), Vec::new()),
    };
    let (Ok(stream), Ok(dir)) = (wire::connect(&store), File::open(&target)) else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let base = target.join(&profile);
    let result = last.and_then(|r| {
        let rel = Path::new(&r.out_dir).strip_prefix(&base).ok()?.to_str()?.to_string();
        Some(ResultOf { key: r.key, dir: rel, bound: r.bound })
    });
    let mut natives = Vec::new();
    for p in native.iter().filter(|p| !p.starts_with(&target)) {
        // A native file that cannot be hashed now cannot be checked at a restore: no unit.
        let Ok(hash) = filehash::hash_file(p) else { return };
        natives.push((rel.rel(&p.display().to_string()), hash));
    }
    natives.sort();
    natives.dedup();
    let c = Capture {
        marker,
        profile,
        unit,
        package,
        compile_ns: compile.as_nanos() as u64,
        deps,
        result,
        native: natives,
        sources,
        externs,
    };
    if wire::write_frame_with_fd(&stream, Op::Capture as u8, &c.encode(), dir.as_fd()).is_ok() {
        let _ = read_reply(&stream);
    }
}

/// Whether seeding is on and `out_dir` (a compile's or a run's) is in a target dir a probe
/// marked: where a report would be sent.
pub fn marked(out_dir: &Path) -> bool {
    enabled() && find_marker(out_dir).is_some()
}

/// What a workspace unit is recorded with ([`Capture::sources`], [`Capture::externs`]), from
/// the result just served or stored (`last`) and [`Own`]: each file of its dependency set
/// outside the target dir, with the marker's roots (`rel`) as placeholders (a folder a run
/// declared as one entry, `dir:`, with the digest of its files; a run's package as `pkg:`);
/// and by the unit that wrote it, each file of the target dir it was built on: the
/// [`Own::built_on`] files and each file of the target dir the dependency set lists (what a
/// link read beyond the direct externs: the rlibs of indirect dependencies, a static library
/// in a build script's `OUT_DIR`; the headers a run's C compiles read in another run's), so
/// the check at a restore does not rest on each rlib naming its own dependencies' hashes.
/// Text a run left (`output`, text in `OUT_DIR`) is hashed with the roots as placeholders,
/// as the daemon keeps it ([`built_on_hash`]). `None` (no record) for a package outside the
/// checkout — cargo names the files of one in `../` relative to where it is, which another
/// checkout may have elsewhere with other contents — or when a file cannot be placed, hashed
/// or told to a unit.
type OwnRecord = (Vec<(String, Option<[u8; 32]>)>, Vec<(String, [u8; 32])>);

fn own_record(last: &super::LastResult, own: &Own<'_>, rel: &super::basedir::Rel, target: &Path) -> Option<OwnRecord> {
    let package = rel.rel(&std::env::var("CARGO_MANIFEST_DIR").ok()?);
    let inside = package.strip_prefix(Root::Checkout.placeholder()).is_some_and(|r| r.is_empty() || r.starts_with('/'));
    if !inside {
        return None;
    }
    let mut built_on = Vec::with_capacity(own.built_on.len());
    for p in own.built_on {
        built_on.push((owner(p)?, built_on_hash(p, None, rel)?));
    }
    let placed = |path: &Path| -> Option<String> {
        let stored = rel.rel(path.to_str()?);
        let placed = [Root::Checkout, Root::CargoHome].iter().any(|k| stored.starts_with(k.placeholder()));
        (stored.starts_with('/') || placed).then_some(stored)
    };
    let cwd = std::env::current_dir().ok()?;
    let mut sources = Vec::new();
    if let Some((dir, digest)) = own.package {
        sources.push((format!("pkg:{}", placed(dir)?), Some(digest)));
    }
    // A run's dependency set is tagged (build_script/inputs.rs): `d:` a declared folder,
    // followed by its files as walked; `f:` a file. A compile's is paths.
    let tagged = own.package.is_some();
    let untag = |label: &str| -> (char, String) {
        match (tagged, label.split_at_checked(2)) {
            (true, Some(("d:", rest))) => ('d', rest.to_string()),
            (true, Some(("f:", rest))) => ('f', rest.to_string()),
            _ => ('f', label.to_string()),
        }
    };
    let inputs = &last.inputs;
    let mut i = 0;
    while i < inputs.len() {
        let (kind, label) = untag(&inputs[i].0);
        let path = cwd.join(last.rel.abs(&label));
        i += 1;
        if kind == 'd' {
            // Its files as walked: under it, sorted, each once (a file declared besides,
            // after the folder, is an entry of its own).
            let mut listed: Vec<(PathBuf, Option<[u8; 32]>)> = Vec::new();
            while let Some((l, h)) = inputs.get(i) {
                let f = cwd.join(last.rel.abs(&untag(l).1));
                let Ok(under) = f.strip_prefix(&path) else { break };
                if listed.last().is_some_and(|(p, _)| p.as_path() >= under) {
                    break;
                }
                listed.push((under.to_path_buf(), *h));
                i += 1;
            }
            if path.starts_with(target) {
                return None;
            }
            let digest = super::tree::listing_digest(listed.iter().map(|(p, h)| (p.as_path(), *h)));
            sources.push((format!("dir:{}", placed(&path)?), Some(digest)));
            continue;
        }
        let hash = inputs[i - 1].1;
        if path.starts_with(target) {
            built_on.push((owner(&path)?, built_on_hash(&path, Some(hash?), rel)?));
            continue;
        }
        sources.push((placed(&path)?, hash));
    }
    built_on.sort();
    built_on.dedup();
    sources.sort();
    sources.dedup();
    (!sources.is_empty()).then_some((sources, built_on))
}

/// The unit a file of the target dir belongs to, by hash: `deps/libfoo-<hash>.rlib`, a file
/// under `build/foo-<hash>/out/`, or `build/foo-<hash>/<file>` (a run's `output`, a script's
/// binary).
fn owner(path: &Path) -> Option<String> {
    build_unit_hash(path).or_else(|| unit_hash(path)).or_else(|| path.parent().and_then(unit_hash))
}

/// A file of the target dir a workspace unit was built on, hashed as the daemon keeps it in
/// the unit that wrote it ([`filehash::portable_hash`]: text a run left, its `output` or
/// UTF-8 in its `OUT_DIR`, with the roots as placeholders, since a restore moves it to the
/// target dir it writes). `expect`: the BLAKE3 its bytes had when the compile read them (a
/// file that changed since is no record).
fn built_on_hash(path: &Path, expect: Option<[u8; 32]>, rel: &super::basedir::Rel) -> Option<[u8; 32]> {
    if expect.is_some_and(|h| filehash::hash_file(path).ok() != Some(h)) {
        return None;
    }
    filehash::portable_hash(path, rel).ok()
}

/// After a workspace compile succeeded in a marked target dir: waits (briefly; the daemon
/// bounds it) until the daemon has copied the registry and git units reported there. Their
/// compiles are done and cargo writes their fingerprints within milliseconds, but a build
/// that ends with this compile may be followed at once by `rm -rf target`, and a unit not yet
/// copied would then be missing from the next seed. Costs one request; never fails.
pub fn settle(out_dir: &Path) {
    if !enabled() {
        return;
    }
    let Some((_, _, marker)) = find_marker(out_dir) else { return };
    let Some(store) = mount::daemon_store() else { return };
    let Ok(stream) = wire::connect(&store) else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = call(&stream, Op::Settle, &marker.exact.0);
}

/// The target dir, profile folder and marker of a compile's output folder.
fn find_marker(out_dir: &Path) -> Option<(PathBuf, String, Marker)> {
    // deps → profile; build/<unit> → profile; build/<unit>/out → profile.
    let profile_dir = match out_dir.file_name()?.to_str()? {
        "deps" => out_dir.parent()?,
        "out" => out_dir.parent()?.parent()?.parent()?,
        _ => out_dir.parent()?.parent()?,
    };
    for target in profile_dir.ancestors().skip(1).take(2) {
        if let Ok(bytes) = fs::read(target.join(MARKER)) {
            let marker = Marker::decode(&bytes).ok()?;
            let profile = profile_dir.strip_prefix(target).ok()?.to_str()?.to_string();
            return Some((target.to_path_buf(), profile, marker));
        }
    }
    None
}

/// Whether a package folder or source file is a registry or git package's (under
/// `CARGO_HOME`'s `registry/src/` or `git/checkouts/`): only those are seeded, since a
/// workspace package's fingerprint trusts its sources' times, which a copy cannot vouch for.
pub fn is_sourced(path: &Path) -> bool {
    let Some(home) = cargo_home() else { return false };
    path.is_absolute() && (path.starts_with(home.join("registry/src")) || path.starts_with(home.join("git/checkouts")))
}

/// The hash of a unit from one of its files' paths: `…/deps/libfoo-<hash>.rlib`,
/// `…/build/foo-<hash>/out`.
pub fn unit_hash(path: &Path) -> Option<String> {
    let name = if path.file_name()? == "out" { path.parent()?.file_name()? } else { path.file_name()? };
    let stem = name.to_str()?.split('.').next()?;
    let (_, hash) = stem.rsplit_once('-')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hash.to_string())
}

/// The hash of the build-script run whose `OUT_DIR` holds `path`
/// (`…/build/<pkg>-<hash>/out/…`), if it is one.
pub fn build_unit_hash(path: &Path) -> Option<String> {
    let mut parts = path.components().map(|c| c.as_os_str());
    while let Some(c) = parts.next() {
        if c == "build" {
            let mut ahead = parts.clone();
            if let (Some(unit), Some(out)) = (ahead.next(), ahead.next()) {
                if out == "out" {
                    if let Some(h) = unit_hash(Path::new(unit)) {
                        return Some(h);
                    }
                }
            }
        }
    }
    None
}

/// The `output` file of the build-script run whose folder holds `path`
/// (`…/build/<pkg>-<hash>/out/include` → `…/build/<pkg>-<hash>/output`): what cargo recorded
/// of the run, and what a unit built on it (through `OUT_DIR` or `DEP_*`) was given.
pub fn run_output(path: &Path) -> Option<PathBuf> {
    let mut dir = path;
    loop {
        let parent = dir.parent()?;
        if parent.file_name()? == "build" && unit_hash(dir).is_some() {
            return Some(dir.join("output"));
        }
        dir = parent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_hashes_come_from_cargo_file_names() {
        assert_eq!(
            unit_hash(Path::new("/t/debug/deps/libitoa-6c1e270c698fa6a6.rlib")).as_deref(),
            Some("6c1e270c698fa6a6")
        );
        assert_eq!(
            unit_hash(Path::new("/t/debug/build/zstd-sys-0123456789abcdef/out")).as_deref(),
            Some("0123456789abcdef")
        );
        assert_eq!(unit_hash(Path::new("/t/debug/deps/libfoo.rlib")), None);
        let dep = Path::new("/t/debug/build/zstd-sys-0123456789abcdef/out/include");
        assert_eq!(build_unit_hash(dep).as_deref(), Some("0123456789abcdef"));
        assert_eq!(build_unit_hash(Path::new("/usr/include")), None);
        assert_eq!(run_output(dep), Some(PathBuf::from("/t/debug/build/zstd-sys-0123456789abcdef/output")));
        assert_eq!(run_output(Path::new("/usr/include")), None);
        let real = Path::new("/t/debug/build/app-0123456789abcdef/cairn-real-build-script-build");
        assert_eq!(owner(real).as_deref(), Some("0123456789abcdef"));
    }
}

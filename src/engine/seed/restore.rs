//! Putting a set's units into a fresh target dir, before cargo looks at it.
//!
//! Per unit: its files in `deps/` and `build/` are written (to a temporary name, then renamed),
//! with their modes, text files moved to this target dir's roots and cairn's launcher written
//! anew; its fingerprint folder is written last, under a temporary name renamed into place,
//! so a unit cut off half way has no fingerprint and cargo rebuilds it. A unit whose
//! fingerprint folder is already there is left alone.
//!
//! The object comes as the stored file itself, checked by the daemon against its checksum
//! (engine/door.rs `open`): payloads are copied file to file (`copy_file_range`, which clones
//! extents where the filesystem can, and copies in the kernel elsewhere); only text files
//! are read, to move their paths. Bytes that came without a file are checked against the
//! unit's own checksum first. A file kept as a reference to a result object's output is
//! copied from that object the same way, after the object's checksum and the output's
//! name, length and BLAKE3 in its table are checked; a result that is gone or differs skips
//! the unit. A unit whose compile took in native files from outside the target dir (a bundled
//! static library, a library a link found) is restored only while each hashes as it did.
//!
//! Modification times: cargo rebuilds a unit whose dependencies' outputs are newer than its
//! own. A set gathers units from several builds, so recorded times are not comparable;
//! instead every file of a unit gets one time, 10 ms after the latest of the units it was
//! built from (its depth in the set's graph), all of them ending a second before now, so
//! anything cargo builds afterwards is newer.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::engine::basedir::Rel;
use crate::engine::door::Opened;
use crate::key::Key;
use crate::protocol::frontends;
use crate::protocol::object::{read_result_files, result_files, FileAt};
use crate::protocol::seed::{decode_unit, read_unit_header, Reference, SetEntry, Stored, UnitFile};

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    pub units: usize,
    pub bytes: u64,
    pub compile_ns: u64,
    /// Units left out, with why (one word each).
    pub skipped: Vec<(String, String)>,
}

/// Restores `entries` into `target` (roots `rel`), fetching each unit object with `fetch`
/// (called from several threads, each with its own connection); stops starting units at
/// `deadline`.
pub fn restore(
    entries: &[SetEntry],
    target: &Path,
    rel: &Rel,
    fetch: &(dyn Fn(&Key) -> Option<Opened> + Sync),
    threads: usize,
    deadline: Instant,
) -> Restored {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    let mut out = Restored::default();
    // The workspace's own units first: for each, the first of its variants (checkouts that
    // share a lockfile may differ) whose sources hash as they did and whose `--extern` files
    // are what the units restored here write; and the newest time of those sources, which
    // every unit's time must pass.
    let mut pick = Pick::new(entries, rel);
    let own: Vec<&str> = pick.variants.keys().copied().collect();
    for h in own {
        let _ = pick.resolve(h);
    }
    let mut kept: Vec<SetEntry> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        match e.is_own() {
            false => kept.push(e.clone()),
            true => {
                if hash_of(e).and_then(|h| pick.memo.get(h)) == Some(&Ok(i)) {
                    kept.push(e.clone());
                }
            }
        }
    }
    let mut gone: Vec<(String, &str)> = pick
        .memo
        .iter()
        .filter_map(|(h, c)| {
            let why = c.err()?;
            let first = pick.variants.get(h)?.first()?;
            Some((entries[*first].unit.clone(), why))
        })
        .collect();
    gone.sort();
    out.skipped.extend(gone.into_iter().map(|(u, why)| (u, why.to_string())));
    let newest = pick.newest;
    let top = |d: &[usize]| d.iter().copied().max().unwrap_or(0) as u64;
    let mut d = depths(&kept);
    let times = match schedule(now, newest, top(&d)) {
        Some(t) => t,
        None => {
            // Sources written in the last moments: the workspace's units are left to cargo.
            for e in kept.iter().filter(|e| e.is_own()) {
                out.skipped.push((e.unit.clone(), "source-just-written".into()));
            }
            kept.retain(|e| !e.is_own());
            d = depths(&kept);
            schedule(now, 0, top(&d)).unwrap_or((0, STEP_NS))
        }
    };
    restore_all(&kept, &d, target, rel, fetch, threads, deadline, times, out)
}

/// Restores `entries` (of depths `depths`), unit `i` at time `base + depths[i] * step`.
#[allow(clippy::too_many_arguments)]
fn restore_all(
    entries: &[SetEntry],
    depths: &[usize],
    target: &Path,
    rel: &Rel,
    fetch: &(dyn Fn(&Key) -> Option<Opened> + Sync),
    threads: usize,
    deadline: Instant,
    (base, step): (u64, u64),
    out: Restored,
) -> Restored {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(out);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(e) = entries.get(i) else { break };
                let result = if Instant::now() > deadline {
                    Err("deadline".to_string())
                } else {
                    one(e, target, rel, fetch, base + depths[i] as u64 * step)
                };
                let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(()) => {
                        o.units += 1;
                        o.bytes += e.bytes;
                        o.compile_ns += e.compile_ns;
                    }
                    Err(why) => o.skipped.push((e.unit.clone(), why)),
                }
            });
        }
    });
    out.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// The units' times, `(base, step)`: unit of depth `d` at `base + d * step`, all ending a
/// second before `now` (ns), so anything cargo builds afterwards is newer. With the
/// workspace's own units (`newest`: the newest time of their sources, else 0) every time must
/// also be later than `newest`, so cargo, which judges those sources by their times, finds
/// them older than the units; and earlier than `now` less a clock tick, so a source written
/// from the check on (file times come from a clock a tick coarser) is newer than the units it
/// feeds, and cargo rebuilds them. Sources written too recently for that leave `None`.
fn schedule(now: u64, newest: u64, top: u64) -> Option<(u64, u64)> {
    let usual = now.saturating_sub(1_000_000_000 + (top + 1) * STEP_NS);
    if newest < usual {
        return Some((usual, STEP_NS));
    }
    let (lo, end) = (newest + 1, now.saturating_sub(TICK_NS));
    let step = (end.saturating_sub(lo) / (top + 1)).min(STEP_NS);
    (step > 0).then_some((lo, step))
}

fn hash_of(e: &SetEntry) -> Option<&str> {
    e.unit.rsplit_once('-').map(|(_, h)| h)
}

/// The choice of each workspace unit's variant (see [`restore`]).
struct Pick<'a> {
    entries: &'a [SetEntry],
    rel: &'a Rel,
    /// Registry and git units, by hash.
    registry: HashMap<&'a str, usize>,
    /// Workspace units' variants, by hash, in the set's order.
    variants: HashMap<&'a str, Vec<usize>>,
    /// The variant taken, or why none.
    memo: HashMap<&'a str, Result<usize, &'static str>>,
    /// The newest time of the sources checked.
    newest: u64,
    /// Cargo's fingerprints of what is restored: every registry unit's, and the chosen
    /// variants'.
    fingerprints: std::collections::HashSet<u64>,
    /// This target dir's roots, as entries store them.
    here: Vec<(String, String)>,
}

impl<'a> Pick<'a> {
    fn new(entries: &'a [SetEntry], rel: &'a Rel) -> Pick<'a> {
        let (mut registry, mut variants) = (HashMap::new(), HashMap::<&str, Vec<usize>>::new());
        for (i, e) in entries.iter().enumerate() {
            let Some(h) = hash_of(e) else { continue };
            match e.is_own() {
                true => variants.entry(h).or_default().push(i),
                false => {
                    registry.insert(h, i);
                }
            }
        }
        let fingerprints = registry.values().filter_map(|&i| Some(entries[i].fingerprint.as_ref()?.0)).collect();
        let here = rel.stored();
        Pick { entries, rel, registry, variants, memo: HashMap::new(), newest: 0, fingerprints, here }
    }

    /// The variant of workspace unit `h` to restore: the first that can be placed here, whose
    /// sources are as they were, each of whose `--extern` files is what the unit of it
    /// restored here writes (a workspace unit's, chosen first; a registry unit's), and whose
    /// cargo fingerprint names its dependencies' as restored (else cargo rebuilds it).
    fn resolve(&mut self, h: &'a str) -> Result<usize, &'static str> {
        if let Some(r) = self.memo.get(h) {
            return *r;
        }
        // A unit reached again while being chosen: a cycle, which no build makes.
        self.memo.insert(h, Err("cycle"));
        let mut chosen = Err("source-changed");
        for i in self.variants.get(h).cloned().unwrap_or_default() {
            if !self.placed(i) {
                chosen = Err("other-roots");
                continue;
            }
            if !stamp_holds(&self.entries[i], self.rel) {
                chosen = Err("package-touched");
                continue;
            }
            let checked = sources_now(&self.entries[i], self.rel).and_then(|t| {
                self.newest = self.newest.max(t);
                self.built_on_what_is_restored(i)?;
                self.fingerprints_match(i)
            });
            match checked {
                Ok(()) => {
                    if let Some((fp, _)) = &self.entries[i].fingerprint {
                        self.fingerprints.insert(*fp);
                    }
                    chosen = Ok(i);
                    break;
                }
                Err(why) => chosen = Err(why),
            }
        }
        self.memo.insert(h, chosen);
        chosen
    }

    /// Whether entry `i` can be restored under this target dir's roots at all: a unit whose
    /// files hold another root's path where it cannot be moved cannot (`one` skips it), and
    /// neither can what is built on it, which cargo would rebuild after it.
    fn placed(&self, i: usize) -> bool {
        self.entries[i].bound.iter().all(|b| self.here.contains(b))
    }

    /// Whether the fingerprints cargo recorded for entry `i`'s dependencies are those of the
    /// units restored here (the workspace units it was built from are chosen first). Cargo's
    /// fingerprint of a build-script run that declared nothing holds its package's newest file
    /// time, so a program built in another checkout names another run: restored, cargo would
    /// compile it again.
    fn fingerprints_match(&mut self, i: usize) -> Result<(), &'static str> {
        let Some((_, deps)) = &self.entries[i].fingerprint else { return Ok(()) };
        for d in &self.entries[i].deps {
            if self.variants.contains_key(d.as_str()) {
                let _ = self.resolve(d.as_str());
            }
        }
        match deps.iter().all(|fp| self.fingerprints.contains(fp)) {
            true => Ok(()),
            false => Err("built-on-other-fingerprint"),
        }
    }

    /// Whether each file entry `i` was built on (its `--extern` files, what its package's run
    /// told cargo …) is what the unit restored here writes.
    fn built_on_what_is_restored(&mut self, i: usize) -> Result<(), &'static str> {
        let entries = self.entries;
        for (dep, hash) in &entries[i].externs {
            let j = match self.registry.get(dep.as_str()) {
                Some(j) if !self.placed(*j) => return Err("dependency-left-out"),
                Some(j) => *j,
                None if self.variants.contains_key(dep.as_str()) => {
                    self.resolve(dep.as_str()).map_err(|_| "dependency-left-out")?
                }
                // Not in the set: cargo builds it, and then this unit too.
                None => continue,
            };
            if !entries[j].made.contains(hash) {
                return Err("built-on-other-bytes");
            }
        }
        Ok(())
    }
}

/// Whether the file a run's [`SetEntry::stamp`] names has the time cargo recorded (else cargo
/// runs the script again, whatever is restored: nothing built on the run is worth writing).
fn stamp_holds(e: &SetEntry, rel: &Rel) -> bool {
    let Some((label, ns)) = &e.stamp else { return true };
    let t = fs::metadata(rel.abs(label)).and_then(|m| m.modified()).ok();
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).is_some_and(|d| d.as_nanos() as u64 == *ns)
}

/// More than the coarse clock's tick that file times are taken from.
const TICK_NS: u64 = 10_000_000;

/// Checks a workspace unit's sources against the hashes recorded with it; returns the newest
/// of their modification times (ns), or why not. A build-script run's package (`pkg:`) and
/// each folder it declared (`dir:`) are walked and checked whole (engine/tree.rs): a file
/// added there, which the run never saw, keeps it out too.
fn sources_now(e: &SetEntry, rel: &Rel) -> Result<u64, &'static str> {
    let mut newest = 0u64;
    for (label, hash) in &e.sources {
        let (folder, label) = match label.split_at_checked(4) {
            Some(("pkg:", rest)) => (Some(true), rest),
            Some(("dir:", rest)) => (Some(false), rest),
            _ => (None, label.as_str()),
        };
        let path = rel.abs(label);
        let path = Path::new(&path);
        if !path.is_absolute() {
            return Err("source-unplaced");
        }
        if let Some(package) = folder {
            let (digest, t) = crate::engine::tree::folder_now(path, package).map_err(|_| "source-changed")?;
            if Some(digest) != *hash {
                return Err("source-changed");
            }
            newest = newest.max(t);
            continue;
        }
        match (fs::metadata(path), hash) {
            (Err(e), None) if e.kind() == io::ErrorKind::NotFound => continue,
            (Ok(m), Some(h)) => {
                let t = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).ok_or("source-time")?;
                newest = newest.max(t.as_nanos() as u64);
                if crate::engine::filehash::hash_file(path).ok().as_ref() != Some(h) {
                    return Err("source-changed");
                }
            }
            _ => return Err("source-changed"),
        }
    }
    Ok(newest)
}

/// Time between a unit and the units it depends on.
const STEP_NS: u64 = 10_000_000;

/// Each entry's depth: 0 for a unit built from no unit of the set, else one more than the
/// deepest unit it was built from.
fn depths(entries: &[SetEntry]) -> Vec<usize> {
    let index: std::collections::HashMap<&str, usize> =
        entries.iter().enumerate().filter_map(|(i, e)| Some((e.unit.rsplit_once('-')?.1, i))).collect();
    let mut depth: Vec<Option<usize>> = vec![None; entries.len()];
    fn visit(
        i: usize,
        entries: &[SetEntry],
        index: &std::collections::HashMap<&str, usize>,
        depth: &mut Vec<Option<usize>>,
        guard: usize,
    ) -> usize {
        if let Some(d) = depth[i] {
            return d;
        }
        if guard > entries.len() {
            return 0;
        }
        let d = entries[i]
            .deps
            .iter()
            .filter_map(|h| index.get(h.as_str()).copied())
            .filter(|&j| j != i)
            .map(|j| visit(j, entries, index, depth, guard + 1) + 1)
            .max()
            .unwrap_or(0);
        depth[i] = Some(d);
        d
    }
    (0..entries.len()).map(|i| visit(i, entries, &index, &mut depth, 0)).collect()
}

/// Where a unit's payloads are: the checked file, or bytes.
enum Payloads<'a> {
    File(&'a fs::File),
    Bytes,
}

fn one(
    e: &SetEntry,
    target: &Path,
    rel: &Rel,
    fetch: &(dyn Fn(&Key) -> Option<Opened> + Sync),
    when: u64,
) -> Result<(), String> {
    let here = rel.stored();
    if e.bound.iter().any(|b| !here.contains(b)) {
        return Err("other-roots".into());
    }
    if e.unit.contains('/') || e.unit.starts_with('.') || e.profile.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err("bad-name".into());
    }
    // A native library (or link argument file) its outputs took in, which cargo would not
    // see change: the unit is only restored while each is what it was built with.
    for (path, hash) in &e.native {
        if crate::engine::filehash::hash_file(Path::new(&rel.abs(path))).ok().as_ref() != Some(hash) {
            return Err("native-changed".into());
        }
    }
    let profile = target.join(&e.profile);
    let fingerprint = profile.join(".fingerprint").join(&e.unit);
    if fingerprint.exists() {
        return Err("present".into());
    }
    let opened = fetch(&e.key).ok_or("absent")?;
    let (files, file, bytes): (Vec<(UnitFile, u64)>, Option<fs::File>, Vec<u8>) = match opened {
        Opened::File(f) => (read_unit_header(&f).map_err(|_| "damaged".to_string())?, Some(f), Vec::new()),
        Opened::Bytes(b) => {
            let unit = decode_unit(&b).map_err(|_| "damaged".to_string())?;
            let base = b.as_ptr() as usize;
            let files = unit.files.into_iter().map(|(f, p)| (f, (p.as_ptr() as usize - base) as u64)).collect();
            (files, None, b)
        }
    };
    let payloads = match &file {
        Some(f) => Payloads::File(f),
        None => Payloads::Bytes,
    };
    // The results its files name, each opened once, and every output found in its result's
    // table, before anything is written.
    let mut results: Vec<(Key, ResultObject)> = Vec::new();
    for (f, _) in &files {
        if let Stored::Result(r) = &f.stored {
            if !results.iter().any(|(k, _)| *k == r.key) {
                results.push((r.key, opened_result(fetch(&r.key).ok_or("absent-result")?)?));
            }
            locate(&results, r).ok_or("result-mismatch")?;
        }
    }
    let staging = profile.join(".fingerprint").join(format!(".cairn-{}-{}", e.unit, std::process::id()));
    let fp_prefix = format!(".fingerprint/{}/", e.unit);
    let mut launchers = Vec::new();
    let written = (|| -> io::Result<()> {
        fs::create_dir_all(&staging)?;
        for (f, off) in &files {
            if f.path.split('/').any(|c| c == ".." || c.is_empty()) || f.path.starts_with('/') {
                return Err(io::Error::other("a path out of the target dir"));
            }
            let dest = match f.path.strip_prefix(&fp_prefix) {
                Some(name) => staging.join(name),
                None => profile.join(&f.path),
            };
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            let range = || -> io::Result<Vec<u8>> {
                match payloads {
                    Payloads::File(file) => {
                        let mut buf = vec![0u8; f.len as usize];
                        std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, *off)?;
                        Ok(buf)
                    }
                    Payloads::Bytes => Ok(bytes[*off as usize..(*off + f.len) as usize].to_vec()),
                }
            };
            match (&f.stored, &payloads) {
                (Stored::Bytes, Payloads::File(file)) => copy_out(file, *off, f.len, &dest, f.mode, when)?,
                (Stored::Bytes, Payloads::Bytes) => write(&dest, &range()?, f.mode, when)?,
                (Stored::Relocated, _) => {
                    let text = String::from_utf8(range()?).map_err(io::Error::other)?;
                    write(&dest, rel.abs(&text).as_bytes(), f.mode, when)?;
                }
                (Stored::Launcher, _) => launchers.push(dest.clone()),
                (Stored::Result(r), _) => match locate(&results, r).ok_or_else(|| io::Error::other("located above"))? {
                    (ResultObject { file: Some(file), .. }, at) => {
                        copy_out(file, at.offset, at.len, &dest, f.mode, when)?
                    }
                    (ResultObject { bytes, .. }, at) => {
                        write(&dest, &bytes[at.offset as usize..(at.offset + at.len) as usize], f.mode, when)?
                    }
                },
            }
            // An output's BLAKE3 is the result's (checked above): remembered on the file, so
            // the compiles that read it (a link reads every rlib) do not hash it again.
            if let Stored::Result(r) = &f.stored {
                crate::engine::filehash::remember(&dest, &r.hash);
            }
        }
        for dest in &launchers {
            let dir = dest.parent().ok_or_else(|| io::Error::other("a launcher at the root"))?;
            let bin = dest.file_name().and_then(|n| n.to_str()).ok_or_else(|| io::Error::other("a launcher's name"))?;
            frontends::write_launcher(dir, bin)?;
            set_mtime(dest, when)?;
        }
        match fs::rename(&staging, &fingerprint) {
            Ok(()) => Ok(()),
            // Another build seeded it first.
            Err(_) if fingerprint.exists() => Ok(()),
            Err(e) => Err(e),
        }
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    written.map_err(|e| format!("write:{}", e.kind()))
}

/// A result object a unit names: its file table, and the checked file or bytes.
struct ResultObject {
    files: Vec<FileAt>,
    file: Option<fs::File>,
    bytes: Vec<u8>,
}

fn opened_result(opened: Opened) -> Result<ResultObject, String> {
    match opened {
        Opened::File(f) => Ok(ResultObject {
            files: read_result_files(&f).map_err(|_| "damaged-result")?,
            file: Some(f),
            bytes: Vec::new(),
        }),
        Opened::Bytes(b) => {
            Ok(ResultObject { files: result_files(&b).map_err(|_| "damaged-result")?, file: None, bytes: b })
        }
    }
}

/// The result `r` names and its output there, matched by name, length and BLAKE3.
fn locate<'a>(results: &'a [(Key, ResultObject)], r: &Reference) -> Option<(&'a ResultObject, &'a FileAt)> {
    let (_, o) = results.iter().find(|(k, _)| *k == r.key)?;
    let at = o.files.iter().find(|a| a.name == r.name && a.hash == r.hash && a.len == r.len)?;
    Some((o, at))
}

/// Copies `len` bytes at `off` of `src` to the new file `dest`, file to file (engine/process.rs
/// `copy_range`).
fn copy_out(src: &fs::File, off: u64, len: u64, dest: &Path, mode: u32, when: u64) -> io::Result<()> {
    create(dest, mode, when, &mut |out| crate::engine::process::copy_range(src, off, len, out))
}

fn write(dest: &Path, bytes: &[u8], mode: u32, when: u64) -> io::Result<()> {
    create(dest, mode, when, &mut |out| out.write_all(bytes))
}

/// Creates `dest`, which must not exist yet, fills it and gives it its mode and modification
/// time (`when`, ns since the epoch) before closing it.
///
/// Straight under its own name, not a temporary renamed over it: the unit's fingerprint
/// folder, renamed into place last, is what makes cargo take any of its files, so a file cut
/// off half way is rebuilt, like one never written. A file already there (another build
/// seeding the same fresh target dir at once, or one cut off before) fails the unit, which
/// cargo then builds. Every file of a unit half the directory operations of a temporary's
/// create and rename: four threads creating files in one `deps/` spent most of their time on
/// its lock.
fn create(dest: &Path, mode: u32, when: u64, fill: &mut dyn FnMut(&mut fs::File) -> io::Result<()>) -> io::Result<()> {
    let mut out = fs::OpenOptions::new().write(true).create_new(true).open(dest)?;
    let filled = (|| {
        fill(&mut out)?;
        out.set_permissions(fs::Permissions::from_mode(crate::engine::process::safe_mode(mode)))?;
        out.set_modified(UNIX_EPOCH + Duration::from_nanos(when))
    })();
    if filled.is_err() {
        let _ = fs::remove_file(dest);
    }
    filled
}

fn set_mtime(path: &Path, ns: u64) -> io::Result<()> {
    let when = UNIX_EPOCH + Duration::from_nanos(ns);
    fs::File::options().write(true).open(path).or_else(|_| fs::File::open(path))?.set_modified(when)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(unit: &str, deps: &[&str]) -> SetEntry {
        SetEntry {
            profile: "debug".into(),
            unit: unit.into(),
            package: "p 1".into(),
            key: Key([0; 32]),
            bound: vec![],
            bytes: 0,
            compile_ns: 0,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            refs: vec![],
            native: vec![],
            sources: vec![],
            externs: vec![],
            made: vec![],
            stamp: None,
            fingerprint: None,
        }
    }

    #[test]
    fn a_workspace_unit_is_taken_only_in_the_variant_built_from_these_sources_on_these_bytes() {
        use crate::engine::basedir::Kind;
        let d = tempfile::tempdir().unwrap();
        let rel = Rel::from_stored(&[(Kind::Checkout.placeholder().into(), d.path().display().to_string())]);
        std::fs::write(d.path().join("util.rs"), "7").unwrap();
        std::fs::write(d.path().join("main.rs"), "main").unwrap();
        let h = |b: &[u8]| *blake3::hash(b).as_bytes();
        let src = |f: &str, b: &[u8]| (format!("{}/{f}", Kind::Checkout.placeholder()), Some(h(b)));
        let util = |v: &[u8], lib: u8| SetEntry {
            sources: vec![src("util.rs", v)],
            made: vec![[lib; 32]],
            ..entry("util-00aa", &[])
        };
        let app = |lib: u8| SetEntry {
            sources: vec![src("main.rs", b"main")],
            externs: vec![("00aa".into(), [lib; 32]), ("00cc".into(), [3; 32])],
            ..entry("app-00bb", &["00aa", "00cc"])
        };
        let itoa = SetEntry { made: vec![[3; 32]], ..entry("itoa-00cc", &[]) };
        // The set's order: util 8 (newest first would not matter), app on util 8, util 7,
        // app on util 7, itoa.
        let es = vec![util(b"8", 8), app(8), util(b"7", 7), app(7), itoa.clone()];
        let mut p = Pick::new(&es, &rel);
        assert_eq!(p.resolve("00bb"), Ok(3), "app built on util 7");
        assert_eq!(p.memo.get("00aa"), Some(&Ok(2)), "util 7, whose source is here");
        assert!(p.newest > 0);
        // No variant of util has these sources: neither util nor app.
        std::fs::write(d.path().join("util.rs"), "9").unwrap();
        let mut p = Pick::new(&es, &rel);
        assert_eq!(p.resolve("00bb"), Err("dependency-left-out"));
        assert_eq!(p.memo.get("00aa"), Some(&Err("source-changed")));
        // app was built on another itoa than the set's: not taken.
        std::fs::write(d.path().join("util.rs"), "7").unwrap();
        let other = SetEntry { made: vec![[4; 32]], ..itoa };
        let es = vec![util(b"7", 7), app(7), other];
        assert_eq!(Pick::new(&es, &rel).resolve("00bb"), Err("built-on-other-bytes"));
        // A file that must stay absent.
        let gone =
            SetEntry { sources: vec![(format!("{}/gone.rs", Kind::Checkout.placeholder()), None)], ..util(b"7", 7) };
        assert!(sources_now(&gone, &rel).is_ok());
        std::fs::write(d.path().join("gone.rs"), "").unwrap();
        assert_eq!(sources_now(&gone, &rel), Err("source-changed"), "a file that appeared");
    }

    #[test]
    fn a_variant_is_taken_only_where_cargo_would_find_it_fresh() {
        use crate::engine::basedir::Kind;
        let d = tempfile::tempdir().unwrap();
        let ph = Kind::Checkout.placeholder();
        let rel = Rel::from_stored(&[(ph.into(), d.path().display().to_string())]);
        std::fs::write(d.path().join("main.rs"), "main").unwrap();
        let t = std::fs::metadata(d.path().join("main.rs")).unwrap().modified().unwrap();
        let t = t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        let src = vec![(format!("{ph}/main.rs"), Some(*blake3::hash(b"main").as_bytes()))];
        // A run that declared nothing, with cargo's record of its package (a file and its
        // time) and cargo's fingerprint; a program built on it.
        let run = |at: u64, fp: u64| SetEntry {
            sources: src.clone(),
            stamp: Some((format!("{ph}/main.rs"), at)),
            fingerprint: Some((fp, vec![])),
            ..entry("app-00a1", &[])
        };
        let bin = |on: u64| SetEntry {
            sources: src.clone(),
            fingerprint: Some((50 + on, vec![on])),
            ..entry("app-00b1", &["00a1"])
        };
        // Recorded in a checkout made at another time (fingerprint 11), and here (10).
        let es = vec![run(t + 1, 11), bin(11), run(t, 10), bin(10)];
        let mut p = Pick::new(&es, &rel);
        assert_eq!(p.resolve("00b1"), Ok(3), "the program built on this checkout's run");
        assert_eq!(p.memo.get("00a1"), Some(&Ok(2)));
        // Only the other checkout's: cargo would run the script again, and then compile the
        // program again; neither is written.
        let es = vec![run(t + 1, 11), bin(11)];
        let mut p = Pick::new(&es, &rel);
        assert_eq!(p.resolve("00b1"), Err("built-on-other-fingerprint"));
        assert_eq!(p.memo.get("00a1"), Some(&Err("package-touched")));
        // Bound to another checkout's path.
        let bound = SetEntry { bound: vec![(ph.into(), "/elsewhere".into())], ..run(t, 10) };
        assert_eq!(Pick::new(&[bound], &rel).resolve("00a1"), Err("other-roots"));
    }

    #[test]
    fn a_runs_package_and_declared_folders_are_checked_whole() {
        use crate::engine::basedir::Kind;
        let d = tempfile::tempdir().unwrap();
        let ph = Kind::Checkout.placeholder();
        let rel = Rel::from_stored(&[(ph.into(), d.path().display().to_string())]);
        std::fs::create_dir_all(d.path().join("pkg/data")).unwrap();
        std::fs::write(d.path().join("pkg/build.rs"), "fn main() {}").unwrap();
        std::fs::write(d.path().join("pkg/data/v.txt"), "7").unwrap();
        let (package, _) = crate::engine::tree::folder_now(&d.path().join("pkg"), true).unwrap();
        let (data, _) = crate::engine::tree::folder_now(&d.path().join("pkg/data"), false).unwrap();
        let e = SetEntry {
            sources: vec![(format!("dir:{ph}/pkg/data"), Some(data)), (format!("pkg:{ph}/pkg"), Some(package))],
            ..entry("pkg-01", &[])
        };
        assert!(sources_now(&e, &rel).is_ok_and(|t| t > 0));
        std::fs::write(d.path().join("pkg/data/new.txt"), "").unwrap();
        assert_eq!(sources_now(&e, &rel), Err("source-changed"), "a file added to a declared folder");
    }

    #[test]
    fn units_are_later_than_their_sources_and_earlier_than_the_check() {
        let s = 1_000_000_000u64;
        let now = 1_000 * s;
        // Sources long untouched: a second before now, as ever.
        assert_eq!(schedule(now, 10 * s, 4), Some((now - s - 5 * STEP_NS, STEP_NS)));
        // A checkout copied a moment ago: every unit after its newest source and before
        // the check (less a tick), the steps shrunk to fit.
        let newest = now - 100_000_000;
        let (base, step) = schedule(now, newest, 4).unwrap();
        assert!(base > newest && base + 4 * step < now - TICK_NS, "{base} {step}");
        assert!(step > 0 && step <= STEP_NS);
        // Written within the tick: no room.
        assert_eq!(schedule(now, now - TICK_NS / 2, 4), None);
    }

    #[test]
    fn a_unit_is_later_than_every_unit_it_was_built_from() {
        // c <- b <- a, and d <- a; e stands alone; a names a dependency not in the set.
        let es = vec![
            entry("a-0a", &["0b", "0d", "ff"]),
            entry("b-0b", &["0c"]),
            entry("c-0c", &[]),
            entry("d-0d", &[]),
            entry("e-0e", &[]),
        ];
        assert_eq!(depths(&es), vec![2, 1, 0, 0, 0]);
    }
}

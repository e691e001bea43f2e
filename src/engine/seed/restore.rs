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
    let depths = depths(entries);
    let top = depths.iter().copied().max().unwrap_or(0) as u64;
    let base = now.saturating_sub(1_000_000_000 + (top + 1) * STEP_NS);
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Restored::default());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(e) = entries.get(i) else { break };
                let result = if Instant::now() > deadline {
                    Err("deadline".to_string())
                } else {
                    one(e, target, rel, fetch, base + depths[i] as u64 * STEP_NS)
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
        }
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

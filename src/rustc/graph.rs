//! The crate graph behind a compile that links: every rlib it pulls in, however deep.
//!
//! A binary's `--extern`s name its direct dependencies only; rustc finds the rest through
//! `-L dependency=` by crate name and hash, and the linker then reads every one of those rlibs,
//! with the native static libraries bundled into them. A `-sys` crate two levels down whose C
//! changed has a new rlib, while the crate in between may keep the very same one: hashing the
//! direct externs alone would relink nothing and serve the old C code.
//!
//! So after each compile that produces an rlib (hit or miss), cairn-rustc writes next to it
//! a small list of what its own `--extern`s name:
//! `lib<crate><extra>.cairn-deps`, one path a line: rlibs, and proc-macro libraries (`.so`),
//! which nothing links but a compile of a dependent may load (a derive re-exported by a
//! library). A compile that links (or builds a staticlib) walks the rlibs of those lists from
//! its own externs and puts the content hash of every rlib reached into its key. A list that
//! is missing (the rlib was built without cairn) means the graph is unknown: that compile is
//! not cached. A compile sent to the remote execution engine walks them too, to send the
//! metadata of every crate it may load ([`reach_all`]).

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::args::Invocation;
use crate::engine::filehash::hash_file;

/// The extension of the dependency lists.
pub const EXT: &str = "cairn-deps";

/// Why a graph could not be walked.
#[derive(Debug)]
pub enum GraphError {
    /// An rlib of the graph has no dependency list (built without cairn).
    Unlisted(PathBuf),
    /// An rlib of the graph cannot be read.
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Unlisted(p) => write!(f, "{} has no dependency list (built without cairn)", p.display()),
            GraphError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

/// Whether this compile reads its whole dependency graph: it links, or it archives every
/// dependency into a staticlib.
pub fn needs_graph(inv: &Invocation) -> bool {
    inv.links() || inv.crate_types.iter().any(|t| t == "staticlib")
}

/// Whether this compile writes an rlib (whose list the compiles that link will read).
pub fn makes_rlib(inv: &Invocation) -> bool {
    inv.crate_types.iter().any(|t| t == "lib" || t == "rlib")
}

/// A proc-macro library an `--extern` or a list line names.
fn is_proc_macro(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "so")
}

/// The rlib an `--extern` path stands for: `.rmeta` (cargo's pipelining) and `.rlib` both mean
/// the rlib; anything else (a proc-macro or dylib `.so`) is not archived into what links.
fn rlib_of(extern_path: &str) -> Option<PathBuf> {
    let p = Path::new(extern_path);
    match p.extension()?.to_str()? {
        "rlib" => Some(p.to_path_buf()),
        "rmeta" => Some(p.with_extension("rlib")),
        _ => None,
    }
}

fn list_of(rlib: &Path) -> PathBuf {
    rlib.with_extension(EXT)
}

/// The rlibs the invocation's own externs name, sorted and without repeats.
fn direct(inv: &Invocation) -> BTreeSet<PathBuf> {
    inv.externs.iter().filter_map(|(_, p)| p.as_deref().and_then(rlib_of)).collect()
}

/// The rlibs and proc-macro libraries the invocation's own externs name.
fn direct_all(inv: &Invocation) -> BTreeSet<PathBuf> {
    let macros = inv.externs.iter().filter_map(|(_, p)| p.as_deref()).map(PathBuf::from).filter(|p| is_proc_macro(p));
    direct(inv).into_iter().chain(macros).collect()
}

/// Writes the dependency list of the rlib this compile produced. Nothing to do for compiles
/// that make no rlib. Temp file, then rename: a reader sees the old list or the new one.
pub fn record(inv: &Invocation) -> io::Result<()> {
    if !makes_rlib(inv) {
        return Ok(());
    }
    let rlib = Path::new(&inv.out_dir).join(format!("lib{}{}.rlib", inv.crate_name, inv.extra_filename));
    let mut text = String::new();
    for p in direct_all(inv) {
        text.push_str(&p.display().to_string());
        text.push('\n');
    }
    let path = list_of(&rlib);
    let tmp = path.with_extension(format!("{EXT}.tmp{}", std::process::id()));
    fs::write(&tmp, text)?;
    fs::rename(&tmp, &path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Every rlib reachable from the invocation's externs, by file name, with its content hash:
/// the entries a linking compile adds to its key. Sorted by name, so the order cargo passes
/// externs in does not matter.
pub fn closure(inv: &Invocation) -> Result<Vec<(String, [u8; 32])>, GraphError> {
    let mut out = Vec::new();
    for rlib in reach(inv)? {
        let hash = hash_file(&rlib).map_err(|e| GraphError::Io(rlib.clone(), e))?;
        out.push((format!("rlib:{}", rlib.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()), hash));
    }
    out.sort();
    Ok(out)
}

/// Every rlib reachable from the invocation's externs (the direct ones too), through the
/// dependency lists, sorted by path: what a compile that links reads.
pub fn reach(inv: &Invocation) -> Result<Vec<PathBuf>, GraphError> {
    Ok(walk(inv)?.0)
}

/// [`reach`]'s rlibs, and the proc-macro libraries the invocation and those rlibs name: what
/// a compile that does not link may load. A compile sent elsewhere (remote execution) sends
/// exactly these.
pub fn reach_all(inv: &Invocation) -> Result<Vec<PathBuf>, GraphError> {
    let (mut rlibs, macros) = walk(inv)?;
    rlibs.extend(macros);
    Ok(rlibs)
}

/// The rlibs reached, and the proc-macros named on the way (not walked into: what they
/// depend on is linked into them).
fn walk(inv: &Invocation) -> Result<(Vec<PathBuf>, Vec<PathBuf>), GraphError> {
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut macros: BTreeSet<PathBuf> = BTreeSet::new();
    let mut queue: VecDeque<PathBuf> = VecDeque::new();
    for p in direct_all(inv) {
        if is_proc_macro(&p) {
            macros.insert(p);
        } else {
            queue.push_back(p);
        }
    }
    while let Some(rlib) = queue.pop_front() {
        if seen.contains(&rlib) {
            continue;
        }
        let list = match fs::read_to_string(list_of(&rlib)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(GraphError::Unlisted(rlib)),
            Err(e) => return Err(GraphError::Io(list_of(&rlib), e)),
        };
        for line in list.lines().filter(|l| !l.is_empty()).map(PathBuf::from) {
            if is_proc_macro(&line) {
                macros.insert(line);
            } else {
                queue.push_back(line);
            }
        }
        seen.insert(rlib);
    }
    Ok((seen.into_iter().collect(), macros.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(out_dir: &Path, name: &str, types: &[&str], externs: &[(&str, PathBuf)]) -> Invocation {
        Invocation {
            crate_name: name.into(),
            crate_types: types.iter().map(|t| t.to_string()).collect(),
            input: "src/lib.rs".into(),
            out_dir: out_dir.display().to_string(),
            extra_filename: "-h".into(),
            externs: externs.iter().map(|(n, p)| (n.to_string(), Some(p.display().to_string()))).collect(),
            ..Invocation::default()
        }
    }

    /// sys ← mid ← bin, with mid naming sys's .rmeta as cargo's pipelining does.
    fn chain(dir: &Path) -> (Invocation, PathBuf) {
        let sys = dir.join("libsys-h.rlib");
        fs::write(&sys, b"sys v1").unwrap();
        record(&inv(dir, "sys", &["lib"], &[])).unwrap();
        fs::write(dir.join("libmid-h.rlib"), b"mid").unwrap();
        record(&inv(dir, "mid", &["lib"], &[("sys", dir.join("libsys-h.rmeta"))])).unwrap();
        let proc_macro = dir.join("libpm-h.so");
        fs::write(&proc_macro, b"pm").unwrap();
        let bin = inv(dir, "bin", &["bin"], &[("mid", dir.join("libmid-h.rlib")), ("pm", proc_macro)]);
        (bin, sys)
    }

    #[test]
    fn a_change_two_crates_down_changes_the_closure() {
        let dir = tempfile::tempdir().unwrap();
        let (bin, sys) = chain(dir.path());
        assert!(needs_graph(&bin));
        let before = closure(&bin).unwrap();
        let names: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["rlib:libmid-h.rlib", "rlib:libsys-h.rlib"], "the proc-macro is not linked");
        fs::write(&sys, b"sys v2").unwrap();
        assert_ne!(closure(&bin).unwrap(), before);
    }

    #[test]
    fn an_rlib_without_a_list_makes_the_graph_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let (bin, sys) = chain(dir.path());
        fs::remove_file(list_of(&sys)).unwrap();
        assert!(matches!(closure(&bin), Err(GraphError::Unlisted(p)) if p == sys));
    }

    #[test]
    fn a_proc_macro_a_library_names_is_loaded_by_its_dependents_never_linked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pm = d.join("libpm-h.so");
        fs::write(&pm, b"pm").unwrap();
        // A library that re-exports a proc-macro names it in its list.
        let lib = inv(d, "l", &["lib"], &[("pm", pm.clone())]);
        assert!(!needs_graph(&lib));
        fs::write(d.join("libl-h.rlib"), b"l").unwrap();
        record(&lib).unwrap();
        assert_eq!(fs::read_to_string(d.join("libl-h.cairn-deps")).unwrap(), format!("{}\n", pm.display()));
        // A dependent of the library: it may load the macro, and links only the library.
        let user = inv(d, "u", &["lib"], &[("l", d.join("libl-h.rmeta"))]);
        assert_eq!(reach_all(&user).unwrap(), vec![d.join("libl-h.rlib"), pm]);
        let bin = inv(d, "b", &["bin"], &[("l", d.join("libl-h.rlib"))]);
        let linked: Vec<String> = closure(&bin).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(linked, ["rlib:libl-h.rlib"]);
    }
}

//! A toolchain packaged to run on a worker that has none of it: the compiler, what it loads
//! (found by reading ELF headers, `elf.rs`) and the dynamic loader, laid out under one folder
//! of the input root and started through the packaged loader, so the worker needs no Rust, no
//! matching glibc and no path that matches this machine's.
//!
//! Layout (relative to the input root):
//! - `toolchain/<sysroot files>`: `bin/rustc`, `lib/*.so*` (librustc_driver, std's dylib),
//!   `lib/rustlib/<host>/lib/` (std's rlibs) — the sysroot as rustup lays it out, so rustc's
//!   `$ORIGIN/../lib` and `--sysroot toolchain` hold;
//! - `toolchain/sys/<soname>`: every other library the closure needs (libc, libm, libgcc_s,
//!   libz …), by the name the loader asks for, whatever it is a link to here;
//! - `toolchain/sys/ld.so`: the loader named by `PT_INTERP`, wherever it is here
//!   (`/lib64/…` or `/usr/lib64/…`: sccache #641).
//!
//! A program runs as `toolchain/sys/ld.so --library-path toolchain/lib:toolchain/sys
//! toolchain/<prog> …` ([`Toolchain::launch`]). Files are named by SHA-256 content, so a
//! `rustup update` uploads only the files that changed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::digest;
use super::elf;
use super::proto::Digest;
use super::tree::{InputTree, Node, TreeError};

/// The folder of the input root the toolchain lives in.
pub const DIR: &str = "toolchain";

/// One file of the package: where it goes, where it comes from here, its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub path: String,
    pub source: PathBuf,
    pub digest: Digest,
    pub executable: bool,
}

#[derive(Debug, Clone)]
pub struct Toolchain {
    pub files: Vec<Packed>,
    /// The packaged program (`toolchain/bin/rustc`).
    pub program: String,
}

#[derive(Debug)]
pub enum PackError {
    Io(PathBuf, io::Error),
    Elf(PathBuf, elf::ElfError),
    /// A library no search path holds.
    Missing(String, PathBuf),
    Tree(TreeError),
}

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackError::Io(p, e) => write!(f, "reading {}: {e}", p.display()),
            PackError::Elf(p, e) => write!(f, "{}: {e}", p.display()),
            PackError::Missing(lib, by) => write!(f, "{lib}, needed by {}, is in no library folder", by.display()),
            PackError::Tree(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PackError {}

/// Where the loader looks when a program says nothing (glibc's trusted folders and
/// `/etc/ld.so.conf`).
pub fn system_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut confs = VecDeque::from([PathBuf::from("/etc/ld.so.conf")]);
    let mut seen = BTreeSet::new();
    while let Some(c) = confs.pop_front() {
        if !seen.insert(c.clone()) {
            continue;
        }
        let Ok(text) = fs::read_to_string(&c) else { continue };
        for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()) {
            if let Some(pat) = line.strip_prefix("include ") {
                confs.extend(glob_conf(pat.trim()));
            } else if line.starts_with('/') {
                dirs.push(PathBuf::from(line));
            }
        }
    }
    for d in
        ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
    {
        dirs.push(PathBuf::from(d));
    }
    for d in ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// `include /etc/ld.so.conf.d/*.conf`: only a `*` in the last part is understood.
fn glob_conf(pat: &str) -> Vec<PathBuf> {
    let p = Path::new(pat);
    let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else { return Vec::new() };
    let (pre, post) = name.split_once('*').unwrap_or((name, ""));
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(pre) && n.ends_with(post)))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn expand(entry: &str, origin: &Path) -> PathBuf {
    let o = origin.display().to_string();
    PathBuf::from(entry.replace("${ORIGIN}", &o).replace("$ORIGIN", &o))
}

/// Where the launcher goes in the package (`cairn-rustc --cairn-remote-launch`).
pub const LAUNCHER: &str = "toolchain/bin/cairn-rustc";

/// Packages the rustc at `sysroot/bin/rustc` for `host` (its std rlibs), and `launcher` when
/// given, finding libraries in `system` where the programs' own paths do not hold them.
pub fn package_rustc(
    sysroot: &Path,
    host: &str,
    launcher: Option<&Path>,
    system: &[PathBuf],
) -> Result<Toolchain, PackError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| PackError::Io(p, e)
    };
    let mut files: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    let rustc = sysroot.join("bin/rustc");
    files.insert(format!("{DIR}/bin/rustc"), (rustc.clone(), true));
    if let Some(l) = launcher {
        files.insert(LAUNCHER.to_string(), (l.to_path_buf(), true));
    }
    for dir in ["lib".to_string(), format!("lib/rustlib/{host}/lib")] {
        let d = sysroot.join(&dir);
        for e in fs::read_dir(&d).map_err(io(&d))? {
            let e = e.map_err(io(&d))?;
            let ft = e.file_type().map_err(io(&e.path()))?;
            if ft.is_file() || (ft.is_symlink() && e.path().is_file()) {
                let name = e.file_name().to_string_lossy().into_owned();
                files.insert(format!("{DIR}/{dir}/{name}"), (e.path(), false));
            }
        }
    }
    add_closure(&mut files, &rustc, system)?;
    finish(files, format!("{DIR}/bin/rustc"))
}

/// Packages `programs` (a C compiler's `cc1` and `as`, each at `toolchain/bin/<its name>`)
/// and `launcher`, with everything they load.
pub fn package_programs(programs: &[PathBuf], launcher: &Path, system: &[PathBuf]) -> Result<Toolchain, PackError> {
    let mut files: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    files.insert(LAUNCHER.to_string(), (launcher.to_path_buf(), true));
    for p in programs {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| PackError::Missing("a program name".into(), p.clone()))?;
        let place = program_place(name);
        if files.insert(place.clone(), (p.clone(), true)).is_some() {
            return Err(PackError::Missing(format!("one place for two programs at {place}"), p.clone()));
        }
    }
    add_closure(&mut files, launcher, system)?;
    finish(files, String::new())
}

/// Where a packaged program of [`package_programs`] is, relative to the input root.
pub fn program_place(name: &str) -> String {
    format!("{DIR}/bin/{name}")
}

/// Adds to `files` the libraries its programs and shared objects load (by the name the
/// loader asks for, under `toolchain/sys/`) and the loader (`toolchain/sys/ld.so`); `main`
/// is named when no program has an interpreter.
fn add_closure(
    files: &mut BTreeMap<String, (PathBuf, bool)>,
    main: &Path,
    system: &[PathBuf],
) -> Result<(), PackError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| PackError::Io(p, e)
    };
    let mut sys: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut interp: Option<PathBuf> = None;
    // (file, whether it must be ELF: a library found for a DT_NEEDED must; the sysroot's
    // `.so` files may be linker scripts, `INPUT(libLLVM.so.22.1-…)`, which nothing loads).
    let mut queue: VecDeque<(PathBuf, bool)> =
        files.values().filter(|(p, exec)| is_shared_object(p) || *exec).map(|(p, exec)| (p.clone(), *exec)).collect();
    let provided: BTreeSet<String> = files.keys().filter_map(|k| k.rsplit('/').next().map(String::from)).collect();
    let mut done = BTreeSet::new();
    while let Some((obj, must)) = queue.pop_front() {
        let real = fs::canonicalize(&obj).map_err(io(&obj))?;
        if !done.insert(real.clone()) {
            continue;
        }
        let bytes = fs::read(&real).map_err(io(&real))?;
        if !must && !bytes.starts_with(b"\x7fELF") {
            continue;
        }
        let d = elf::read(&bytes).map_err(|e| PackError::Elf(real.clone(), e))?;
        if let Some(i) = d.interp {
            // One loader for the package: programs that name the same file by other paths
            // (`/lib64/…`, `/usr/lib64/…`) agree; two different loaders cannot share it.
            let named = PathBuf::from(&i);
            let same = |a: &Path, b: &Path| fs::canonicalize(a).ok() == fs::canonicalize(b).ok();
            match &interp {
                None => interp = Some(named),
                Some(first) if same(first, &named) => {}
                Some(first) => {
                    return Err(PackError::Missing(
                        format!("one loader for {} and {}", first.display(), named.display()),
                        obj.clone(),
                    ))
                }
            }
        }
        let origin = obj.parent().unwrap_or(Path::new("/")).to_path_buf();
        let own: Vec<PathBuf> =
            if d.runpath.is_empty() { &d.rpath } else { &d.runpath }.iter().map(|e| expand(e, &origin)).collect();
        for lib in d.needed {
            if lib.contains('/') {
                return Err(PackError::Missing(lib, obj.clone()));
            }
            if provided.contains(&lib) || sys.contains_key(&lib) {
                continue;
            }
            let found = own
                .iter()
                .chain(system)
                .map(|dir| dir.join(&lib))
                .find(|p| p.is_file())
                .ok_or_else(|| PackError::Missing(lib.clone(), obj.clone()))?;
            sys.insert(lib, found.clone());
            queue.push_back((found, true));
        }
    }
    let interp =
        interp.ok_or_else(|| PackError::Missing("a program interpreter (PT_INTERP)".into(), main.to_path_buf()))?;
    // The loader's own needs: none for glibc's, but read it, so a loader that is not ELF fails here.
    let bytes = fs::read(&interp).map_err(io(&interp))?;
    elf::read(&bytes).map_err(|e| PackError::Elf(interp.clone(), e))?;
    files.insert(format!("{DIR}/sys/ld.so"), (interp, true));
    for (name, p) in sys {
        files.insert(format!("{DIR}/sys/{name}"), (p, false));
    }
    Ok(())
}

/// The package of `files`, each with its digest.
fn finish(files: BTreeMap<String, (PathBuf, bool)>, program: String) -> Result<Toolchain, PackError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| PackError::Io(p, e)
    };
    let mut out = Vec::with_capacity(files.len());
    for (path, (source, executable)) in files {
        let digest = digest::of_file(&source).map_err(io(&source))?;
        out.push(Packed { path, source, digest, executable });
    }
    Ok(Toolchain { files: out, program })
}

fn is_shared_object(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".so") || n.contains(".so."))
}

impl Toolchain {
    /// The arguments that start `program` (a path inside the package) through the packaged
    /// loader, with the package's libraries first.
    pub fn launch(&self, program: &str) -> Vec<String> {
        vec![format!("{DIR}/sys/ld.so"), "--library-path".into(), format!("{DIR}/lib:{DIR}/sys"), program.to_string()]
    }

    /// Adds the package to an input root.
    pub fn add_to(&self, tree: &mut InputTree) -> Result<(), PackError> {
        for f in &self.files {
            tree.add(&f.path, Node::File { digest: f.digest.clone(), executable: f.executable })
                .map_err(PackError::Tree)?;
        }
        Ok(())
    }

    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.digest.size_bytes as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rustc_sysroot() -> (PathBuf, String) {
        let out = std::process::Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
        let vv = std::process::Command::new("rustc").arg("-vV").output().unwrap();
        let host = String::from_utf8(vv.stdout)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(String::from))
            .unwrap();
        (PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()), host)
    }

    #[test]
    fn this_machines_rustc_packages_with_its_driver_libc_and_loader() {
        let (sysroot, host) = rustc_sysroot();
        let t = package_rustc(&sysroot, &host, None, &system_dirs()).unwrap();
        let names: Vec<&str> = t.files.iter().map(|f| f.path.as_str()).collect();
        assert!(names.contains(&"toolchain/bin/rustc"));
        assert!(names.contains(&"toolchain/sys/ld.so"));
        assert!(names.iter().any(|n| n.starts_with("toolchain/lib/librustc_driver")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("toolchain/sys/libc.so")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with(&format!("toolchain/lib/rustlib/{host}/lib/libstd-"))), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("rustlib/src") || n.contains("/etc/")), "{names:?}");
        let mut tree = InputTree::new();
        t.add_to(&mut tree).unwrap();
        assert_eq!(tree.len(), t.files.len());
    }

    #[test]
    fn the_package_runs_with_no_system_library_path_at_all() {
        // The packaged loader and libraries alone start rustc: copy the package to a fresh
        // folder and run it from there with an empty environment.
        let (sysroot, host) = rustc_sysroot();
        let t = package_rustc(&sysroot, &host, None, &system_dirs()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for f in &t.files {
            let dest = dir.path().join(&f.path);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(&f.source, &dest).unwrap();
        }
        let argv = t.launch(&t.program);
        let out = std::process::Command::new(dir.path().join(&argv[0]))
            .args(&argv[1..])
            .args(["--sysroot", "toolchain", "-vV"])
            .current_dir(dir.path())
            .env_clear()
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("host: {host}")));
    }

    #[test]
    fn a_program_whose_loader_is_named_under_usr_lib64_is_packaged_with_it_and_runs() {
        // sccache #641: the loader's path differs between distributions. A program whose
        // PT_INTERP says /usr/lib64 gets that loader in the package, and runs through it.
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("hi.c");
        fs::write(&src, "#include <stdio.h>\nint main(void) { puts(\"hi from the package\"); return 0; }\n").unwrap();
        let prog = dir.path().join("hi");
        let ok = std::process::Command::new("cc")
            .arg(&src)
            .arg("-o")
            .arg(&prog)
            .arg("-Wl,--dynamic-linker=/usr/lib64/ld-linux-x86-64.so.2")
            .status()
            .unwrap();
        assert!(ok.success());
        assert_eq!(
            elf::read(&fs::read(&prog).unwrap()).unwrap().interp.as_deref(),
            Some("/usr/lib64/ld-linux-x86-64.so.2")
        );
        let (sysroot, host) = rustc_sysroot();
        let t = package_rustc(&sysroot, &host, Some(&prog), &system_dirs()).unwrap();
        let ld = t.files.iter().find(|f| f.path == "toolchain/sys/ld.so").unwrap();
        assert_eq!(fs::canonicalize(&ld.source).unwrap(), fs::canonicalize("/usr/lib64/ld-linux-x86-64.so.2").unwrap());
        let out = dir.path().join("root");
        for f in &t.files {
            let dest = out.join(&f.path);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(&f.source, &dest).unwrap();
        }
        let argv = t.launch(LAUNCHER);
        let run = std::process::Command::new(out.join(&argv[0]))
            .args(&argv[1..])
            .current_dir(&out)
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            "hi from the package\n",
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }

    /// The driver's program for `name` (`cc1`, `as`), as a path.
    fn gcc_program(driver: &str, name: &str) -> PathBuf {
        let out = std::process::Command::new(driver).arg(format!("-print-prog-name={name}")).output().unwrap();
        let p = String::from_utf8(out.stdout).unwrap().trim().to_string();
        if p.contains('/') {
            return PathBuf::from(p);
        }
        let path = std::env::var_os("PATH").unwrap();
        std::env::split_paths(&path).map(|d| d.join(&p)).find(|c| c.is_file()).unwrap()
    }

    /// The build scripts' objects of cc/remote.rs: `source` (named `name`) preprocessed here
    /// by `driver`, then `proper` (`cc1`, `cc1plus`) and `as` from the package, through its
    /// loader, in an empty environment, in another folder; the object must be the driver's
    /// own one-step compile's, byte for byte.
    fn split_compile_is_the_drivers_own(driver: &str, proper: &str, lang: &str, name: &str, source: &str) {
        let (cc1, asm) = (gcc_program(driver, proper), gcc_program(driver, "as"));
        let launcher = std::env::current_exe().unwrap();
        let t = package_programs(&[cc1, asm], &launcher, &system_dirs()).unwrap();
        let names: Vec<&str> = t.files.iter().map(|f| f.path.as_str()).collect();
        for n in [&format!("toolchain/bin/{proper}"), "toolchain/bin/as", "toolchain/sys/ld.so", LAUNCHER] {
            assert!(names.contains(&n), "{n}: {names:?}");
        }
        assert!(names.iter().any(|n| n.starts_with("toolchain/sys/libc.so")), "{names:?}");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for f in &t.files {
            let dest = root.join(&f.path);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(&f.source, &dest).unwrap();
        }
        fs::write(dir.path().join(name), source).unwrap();
        let flags = ["-O1", "-g", "-fPIC", "-fdirectives-only"];
        let map = format!("-ffile-prefix-map={}=.", dir.path().display());
        let cc = |args: &[&str]| {
            let out =
                std::process::Command::new(driver).args(flags).arg(&map).args(args).current_dir(dir.path()).output();
            let out = out.unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            out
        };
        cc(&["-c", name, "-o", "direct.o"]);
        cc(&["-E", name, "-o", "v.i"]);
        let plan = cc(&["-c", "-x", lang, "v.i", "-o", "split.o", "-###"]);
        let steps = crate::cc::remote::parse_plan(&String::from_utf8_lossy(&plan.stderr)).unwrap();
        assert_eq!(steps.len(), 2, "{steps:?}");
        let tmp_s = steps[0].iter().skip_while(|a| *a != "-o").nth(1).unwrap().clone();
        for (i, step) in steps.iter().enumerate() {
            let program = if i == 0 { format!("toolchain/bin/{proper}") } else { "toolchain/bin/as".to_string() };
            let args: Vec<String> = step[1..]
                .iter()
                .map(|a| if *a == tmp_s { dir.path().join("v.s").display().to_string() } else { a.clone() })
                .collect();
            let out = std::process::Command::new(root.join("toolchain/sys/ld.so"))
                .arg("--library-path")
                .arg(root.join("toolchain/sys"))
                .arg(root.join(&program))
                .args(&args)
                .current_dir(dir.path())
                .env_clear()
                .output()
                .unwrap();
            assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let (direct, split) =
            (fs::read(dir.path().join("direct.o")).unwrap(), fs::read(dir.path().join("split.o")).unwrap());
        assert!(direct == split, "the split compile's object differs from the driver's own");
    }

    #[test]
    fn a_c_compilers_cc1_and_as_compile_from_the_package_alone_as_the_driver_does_here() {
        // Macros on a line of code: fully preprocessed text would move the columns after them.
        let c = "#include <stdio.h>\n#define A 40\n#define B (1 + 1)\n\
                 int v(void) { return A + B + printf(\"%s %d\", __FILE__, __LINE__); }\n";
        split_compile_is_the_drivers_own("cc", "cc1", "cpp-output", "v.c", c);
    }

    #[test]
    fn a_cxx_compilers_cc1plus_and_as_compile_from_the_package_alone_as_the_driver_does_here() {
        let cxx = "#include <cstdio>\n#define A 40\ntemplate <typename T> T twice(T x) { return x + x; }\n\
                   struct S { int v() const { return twice(A) + std::printf(\"%s\", __FILE__); } };\n\
                   int use() { return S{}.v(); }\n";
        split_compile_is_the_drivers_own("c++", "cc1plus", "c++-cpp-output", "v.cpp", cxx);
    }

    #[test]
    fn a_library_nowhere_to_be_found_is_an_error() {
        let (sysroot, host) = rustc_sysroot();
        // Without the system's folders, libc cannot be found.
        let e = package_rustc(&sysroot, &host, None, &[]).unwrap_err();
        assert!(matches!(e, PackError::Missing(..)), "{e}");
    }
}

//! `cairn-cc` and `cairn-c++`: C and C++ compiles of one object file, cached like rustc's
//! (ccache's "direct mode": the key is known from the sources and headers the compile read).
//!
//! A build script run by the launcher (`crate::build_script`) finds `CC`/`CXX` pointing at links
//! named `cairn-cc`/`cairn-c++` to this binary, with the compiler they stood for in
//! `CAIRN_REAL_CC`/`CAIRN_REAL_CXX`. cc-rs, cmake and make run them like any compiler.
//!
//! - **base key** (key.rs): the compiler's identity (its program, the `ld` it drives and
//!   `--version`, engine/linker.rs), the compiler command, the language, the working directory, every argument but
//!   the `-o` path, and the variables gcc and clang read (`CPATH`, `SOURCE_DATE_EPOCH` …);
//! - **result key**: the base key plus the contents of every file in the compile's dependency
//!   output (`-MD -MF`, which cairn adds), as remembered in a manifest.
//!
//! A hit writes the object file and replays the compiler's output; a miss compiles and stores
//! it, unless an input changed during the compile. Either way the sources and headers read are
//! appended to the file `CAIRN_CC_DEPS` names, so the build-script run that ran this compile
//! has them in its own key. Anything but `-c` of one source to one `-o` (linking, `-E`,
//! compiler probes) runs the compiler as it is. A dependency file the caller asks for
//! (`-MD`/`-MMD` with `-MF`, as cmake's generated rules do) is a second output, stored and
//! restored with the object.

pub mod args;
pub mod key;
pub mod remote;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::engine::basedir::Rel;
use crate::engine::process::{self, Ran};
use crate::engine::{self, filehash, linker, makedeps, memo, mount, Collected, FrontEnd, NotStored, Site, Unkeyable};
use crate::key::Key;
use crate::protocol::frontends::{Lang, DEPS_VAR, REAL_CC_VAR, REAL_CXX_VAR};
use crate::protocol::object::{Body, OutputFile, ResultView, Variant};
use crate::protocol::report::Kind;

/// Runs one compiler command line (everything after the compiler) and returns its exit code.
pub fn main(lang: Lang, args: &[OsString]) -> i32 {
    let (var, default) = match lang {
        Lang::C => (REAL_CC_VAR, "cc"),
        Lang::Cxx => (REAL_CXX_VAR, "c++"),
    };
    let mut real: Vec<String> = std::env::var(var).unwrap_or_default().split_whitespace().map(String::from).collect();
    // Never ourselves: that would loop.
    if real.is_empty() || real.iter().any(|w| crate::protocol::frontends::language_of(Path::new(w)).is_some()) {
        real = vec![default.to_string()];
    }
    let mut cmd = Command::new(&real[0]);
    cmd.args(&real[1..]);
    let inv = match args::classify(args) {
        args::Classified::Cacheable(c) => c,
        args::Classified::NotCacheable(_) => return exec(cmd.args(args)),
    };
    // -MMD becomes -MD: the key must see system headers too (args.rs, DepFile).
    let mmd_to_md = inv.depfile.as_ref().is_some_and(|d| d.user_headers_only);
    cmd.args(args.iter().map(|a| if mmd_to_md && a == "-MMD" { OsString::from("-MD") } else { a.clone() }));
    if ["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"].iter().any(|v| std::env::var_os(v).is_some()) {
        return exec(&mut cmd);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let Some(memo) = mount::cache_base().map(|b| b.join("toolchains")) else { return exec(&mut cmd) };
    match CcCompile::new(lang, real, cmd, inv, cwd, memo) {
        Ok(mut fe) => engine::run(&mut fe),
        Err(mut cmd) => exec(&mut cmd),
    }
}

fn exec(cmd: &mut Command) -> i32 {
    process::exec(cmd, "cairn-cc")
}

/// One C or C++ compile of one object file.
pub struct CcCompile {
    lang: Lang,
    /// The compiler command it stands for (`gcc`, `ccache gcc -m32`).
    real: Vec<String>,
    /// The command to run: the compiler and the caller's arguments (taken when it runs).
    cmd: Option<Command>,
    inv: args::Compile,
    cwd: PathBuf,
    /// The object file, its folder (as text too) and name.
    output: PathBuf,
    out_dir: PathBuf,
    out_name: String,
    /// The dependency file the caller asked for, if any; else ours, made for the key.
    depfile: Option<PathBuf>,
    ours: PathBuf,
    site: Site,
    memo: PathBuf,
    /// Whether the compiler is told to write the roots as fixed prefixes (known with the key).
    prefix_map: bool,
    /// The compile split into preprocessing and compiling the text (remote.rs): its flags
    /// without source, `-o` and `-c` (args.rs `flags`) when it can be, and so is run with
    /// `-fdirectives-only` here too; else why not. Known with the key.
    split: Result<Vec<String>, &'static str>,
}

impl CcCompile {
    /// The compile, or the command back when its object has no file name.
    pub fn new(
        lang: Lang,
        real: Vec<String>,
        cmd: Command,
        inv: args::Compile,
        cwd: PathBuf,
        memo: PathBuf,
    ) -> Result<CcCompile, Box<Command>> {
        let output = cwd.join(&inv.output);
        let out_dir = output.parent().unwrap_or(&cwd).to_path_buf();
        let Some(out_name) = output.file_name().and_then(|n| n.to_str()).map(String::from) else {
            return Err(Box::new(cmd));
        };
        let depfile = inv.depfile.as_ref().map(|d| cwd.join(&d.path));
        // The script's roots (its package, CARGO_HOME, the target dir above its OUT_DIR), which
        // the object names by fixed prefixes when the compiler can be told to.
        let script_out = std::env::var_os("OUT_DIR").map(PathBuf::from).unwrap_or_else(|| out_dir.clone());
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok();
        let rel = Rel::for_package(&cwd, &script_out, manifest_dir.as_deref());
        let crate_name = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "-".into()).replace('-', "_");
        Ok(CcCompile {
            lang,
            real,
            cmd: Some(cmd),
            inv,
            site: Site { kind: Kind::Cc, crate_name, rel, out_dir: out_dir.display().to_string() },
            ours: out_dir.join(format!("{out_name}.cairn-{}.d", std::process::id())),
            cwd,
            output,
            out_dir,
            out_name,
            depfile,
            memo,
            prefix_map: false,
            split: Err("no-key"),
        })
    }
}

impl FrontEnd for CcCompile {
    fn site(&self) -> &Site {
        &self.site
    }

    fn base_key(&mut self) -> Result<Key, Unkeyable> {
        let command = self.real.join(" ");
        let program = linker::program(&command).unwrap_or(&self.real[0]);
        let identity = linker::linker_identity(Path::new(program), &self.memo)?;
        self.prefix_map = !self.site.rel.is_empty()
            && !self.inv.keyed_args.iter().any(|a| a.contains("prefix-map="))
            && takes_prefix_map(&self.real, &identity, &self.memo);
        // Why not: no prefix maps, what args.rs `flags` refuses (a dependency file asked for,
        // `-x`, `-pipe`, `-g3`, assembler), or a compiler without `-fdirectives-only` (clang).
        self.split = match (self.prefix_map, self.inv.flags()) {
            (false, _) => Err("no-prefix-map"),
            (true, None) => Err("cannot-split"),
            (true, Some(_)) if !takes_directives_only(&self.real, &identity, &self.memo) => Err("compiler"),
            (true, Some(flags)) => Ok(flags),
        };
        let mut inputs = key::gather(self.lang, &self.real, identity, &self.inv, &self.cwd, &self.site.rel);
        inputs.prefix_map = self.prefix_map;
        inputs.directives_only = self.split.is_ok();
        Ok(key::base_key(&inputs))
    }

    /// The object, then the caller's dependency file if it asked for one.
    fn accepts(&self, r: &ResultView<'_>) -> bool {
        r.files.len() == 1 + self.depfile.is_some() as usize
    }

    fn restore(&mut self, r: &ResultView<'_>, v: &Variant) -> io::Result<()> {
        let f = &r.files[0];
        process::restore_file(&self.out_dir, &self.out_name, f.mode, f.bytes)?;
        if let (Some(p), Some(d)) = (&self.depfile, r.files.get(1)) {
            // The caller's dependency file names the folders it was made in: moved here.
            match std::str::from_utf8(d.bytes) {
                Ok(t) => restore_at(p, d.mode, self.site.rel.relocate(t, &Rel::from_stored(&r.meta.roots)).as_bytes())?,
                Err(_) => restore_at(p, d.mode, d.bytes)?,
            }
        }
        filehash::remember(&self.output, &f.hash);
        report_deps(&v.files.iter().map(|p| self.site.rel.abs(p)).collect::<Vec<_>>());
        Ok(())
    }

    /// Compiles, asking the compiler which files it read (into the caller's dependency file
    /// when it asked for one, else into a temporary of ours).
    fn run(&mut self) -> io::Result<Ran> {
        let mut cmd = self.cmd.take().ok_or_else(|| io::Error::other("run twice"))?;
        if self.depfile.is_none() {
            cmd.arg("-MD").arg("-MF").arg(&self.ours);
        }
        if self.prefix_map {
            cmd.args(self.site.rel.prefix_map_args());
        }
        if self.split.is_ok() {
            // Macros expanded by the compiler proper, not the preprocessor: the object is then
            // the same whether this runs here or as the two halves of remote.rs (without it,
            // the columns of the debug information would differ where macros expand).
            cmd.arg("-fdirectives-only");
        }
        if let Some(ran) = self.remote() {
            return Ok(ran);
        }
        process::capture(cmd)
    }

    fn run_uncached(&mut self) -> i32 {
        match self.cmd.take() {
            Some(mut cmd) => exec(&mut cmd),
            None => 127,
        }
    }

    fn collect(&mut self, ran: &Ran) -> Result<Collected, NotStored> {
        let deps_text = fs::read(self.depfile.as_ref().unwrap_or(&self.ours)).unwrap_or_default();
        let _ = fs::remove_file(&self.ours);
        let deps: Vec<String> = makedeps::parse(&String::from_utf8_lossy(&deps_text))
            .iter()
            .map(|d| self.cwd.join(d).display().to_string())
            .collect();
        // The build-script run has what this compile read in its own key, failed or not.
        report_deps(&deps);
        if !ran.status.success() {
            return Err(io::Error::other("the compile failed").into());
        }
        let bytes = fs::read(&self.output)?;
        // An object that still names this machine's folders is bound to them.
        let mut env = Vec::new();
        engine::bind_roots(&mut env, &self.site.rel, &bytes);
        let variant = Variant { files: deps.iter().map(|d| self.site.rel.rel(d)).collect(), env };
        let mode = fs::metadata(&self.output)?.permissions().mode() & 0o7777;
        let hash = *blake3::hash(&bytes).as_bytes();
        filehash::remember(&self.output, &hash);
        let mut files = vec![OutputFile { name: self.out_name.clone(), mode, hash, body: Body::Bytes(bytes) }];
        if let Some(p) = &self.depfile {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let hash = *blake3::hash(&deps_text).as_bytes();
            files.push(OutputFile { name, mode: 0o644, hash, body: Body::Bytes(deps_text) });
        }
        let kind = match self.lang {
            Lang::C => "c-object",
            Lang::Cxx => "c++-object",
        };
        Ok(Collected {
            files,
            variant,
            listed: (self.site.crate_name.clone(), vec![kind.into()]),
            target: std::env::var("TARGET").unwrap_or_default(),
            rustc_version: String::new(),
        })
    }
}

impl CcCompile {
    /// The compile run on the remote execution engine (remote.rs), when the daemon has one,
    /// the compile can be split into preprocessing here and compiling there, and the
    /// compiler is told the roots' prefixes (so the object is the same from any place);
    /// `None`: run it here.
    fn remote(&self) -> Option<Ran> {
        if !engine::remote::configured() {
            return None;
        }
        let flags = match &self.split {
            Ok(flags) => flags,
            Err(why) => {
                engine::remote::skipped(why);
                return None;
            }
        };
        let maps = self.site.rel.prefix_map_args();
        remote::run(&remote::Split {
            lang: self.lang,
            real: &self.real,
            flags,
            input: &self.inv.input,
            output: &self.output,
            cwd: &self.cwd,
            rel: &self.site.rel,
            prefix_maps: &maps,
            depfile: &self.ours,
        })
    }
}

/// Writes a restored file at `path` (temp name, then rename).
fn restore_at(path: &Path, mode: u32, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| io::Error::other("no file name"))?;
    process::restore_file(path.parent().unwrap_or(Path::new(".")), name, mode, bytes)
}

/// Whether the compiler takes `-ffile-prefix-map` (gcc 8 and later, clang 10 and later).
fn takes_prefix_map(real: &[String], identity: &[u8; 32], memo_dir: &Path) -> bool {
    takes(real, identity, memo_dir, "prefix-map", "-ffile-prefix-map=/cairn-probe=.", false)
}

/// Whether the compiler takes `-fdirectives-only` in a compile (gcc does; clang refuses it),
/// and says nothing of it.
fn takes_directives_only(real: &[String], identity: &[u8; 32], memo_dir: &Path) -> bool {
    takes(real, identity, memo_dir, "directives-only", "-fdirectives-only", true)
}

/// Whether the compiler compiles an empty C file with `flag` (and, when `quiet`, prints
/// nothing): asked once per compiler identity, and memoized under `name`.
fn takes(real: &[String], identity: &[u8; 32], memo_dir: &Path, name: &str, flag: &str, quiet: bool) -> bool {
    let path = memo_dir.join(format!("{name}-{}.bin", &blake3::hash(identity).to_hex()[..32]));
    if let Some(known) = memo::load::<bool>(&path) {
        return known;
    }
    let ok = Command::new(&real[0])
        .args(&real[1..])
        .args([flag, "-x", "c", "-c", "-o", "/dev/null", "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && (!quiet || o.stderr.is_empty()));
    memo::save(&path, &ok);
    ok
}

/// Appends the files a compile read to `CAIRN_CC_DEPS`, in one write (concurrent compiles
/// append to the same file).
fn report_deps(files: &[String]) {
    let Some(path) = std::env::var_os(DEPS_VAR).map(PathBuf::from) else { return };
    let mut text = String::new();
    for f in files {
        text.push_str(f);
        text.push('\n');
    }
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(text.as_bytes());
    }
}

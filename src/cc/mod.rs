//! `cairn-cc` and `cairn-c++`: C and C++ compiles of one object file, cached like rustc's
//! (ccache's "direct mode": the key is known from the sources and headers the compile read).
//!
//! A build script run by the launcher (build_script/) finds `CC`/`CXX` pointing at links
//! named `cairn-cc`/`cairn-c++` to this binary, with the compiler they stood for in
//! `CAIRN_REAL_CC`/`CAIRN_REAL_CXX`. cc-rs, cmake and make run them like any compiler.
//!
//! - **base key**: the compiler's identity (its program, the `ld` it drives and `--version`,
//!   link.rs), the compiler command, the language, the working directory, every argument but
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
pub mod makedeps;

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::key::Key;
use crate::protocol::object::{CompileResult, EntryMeta, Manifest, OutputFile, Variant};
use crate::protocol::report::{self, Event, Kind};
use crate::wrapper::basedir::Rel;
use crate::wrapper::cache_key::{self, KeyHasher};
use crate::wrapper::{compile, filehash, link, log, mount};

/// The link names the launcher gives this binary for C and C++.
pub const CC_NAME: &str = "cairn-cc";
pub const CXX_NAME: &str = "cairn-c++";
/// The compilers they stand for.
pub const REAL_CC_VAR: &str = "CAIRN_REAL_CC";
pub const REAL_CXX_VAR: &str = "CAIRN_REAL_CXX";
/// Where each compile appends the files it read (one absolute path per line).
pub const DEPS_VAR: &str = "CAIRN_CC_DEPS";

/// Variables gcc and clang read that change what they compile.
const KEYED_ENV: [&str; 8] = [
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "SOURCE_DATE_EPOCH",
    "GCC_COMPARE_DEBUG",
];

/// C or C++.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    C,
    Cxx,
}

/// The language this binary stands for when it is run as `cairn-cc` or `cairn-c++`.
pub fn language_of(argv0: &Path) -> Option<Lang> {
    match argv0.file_name()?.to_str()? {
        CC_NAME => Some(Lang::C),
        CXX_NAME => Some(Lang::Cxx),
        _ => None,
    }
}

/// Runs one compiler command line (everything after the compiler) and returns its exit code.
pub fn main(lang: Lang, args: &[OsString]) -> i32 {
    let (var, default) = match lang {
        Lang::C => (REAL_CC_VAR, "cc"),
        Lang::Cxx => (REAL_CXX_VAR, "c++"),
    };
    let mut real: Vec<String> = std::env::var(var).unwrap_or_default().split_whitespace().map(String::from).collect();
    // Never ourselves: that would loop.
    if real.is_empty() || real.iter().any(|w| language_of(Path::new(w)).is_some()) {
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
    let Ok(mnt) = mount::find_or_start() else { return exec(&mut cmd) };
    cached(&mnt, lang, &real, cmd, &inv)
}

fn exec(cmd: &mut Command) -> i32 {
    let err = cmd.exec();
    eprintln!("cairn-cc: cannot run {:?}: {err}", cmd.get_program());
    127
}

fn cached(mnt: &Path, lang: Lang, real: &[String], mut cmd: Command, inv: &args::Compile) -> i32 {
    let t0 = Instant::now();
    let crate_name = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "-".into()).replace('-', "_");
    let cwd = std::env::current_dir().unwrap_or_default();
    let output = cwd.join(&inv.output);
    let out_dir = output.parent().unwrap_or(&cwd).to_path_buf();
    let Some(out_name) = output.file_name().and_then(|n| n.to_str()).map(String::from) else {
        return exec(&mut cmd);
    };
    let depfile = inv.depfile.as_ref().map(|d| cwd.join(&d.path));
    // The script's roots (its package, CARGO_HOME, the target dir above its OUT_DIR), which
    // the object names by fixed prefixes when the compiler can be told to.
    let script_out = std::env::var_os("OUT_DIR").map(PathBuf::from).unwrap_or_else(|| out_dir.clone());
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok();
    let rel = Rel::for_package(&cwd, &script_out, manifest_dir.as_deref());
    let Some((identity, memo)) = compiler_identity(real) else { return exec(&mut cmd) };
    let prefix_map = !rel.is_empty()
        && !inv.keyed_args.iter().any(|a| a.contains("prefix-map="))
        && takes_prefix_map(real, &identity, &memo);
    let base = base_key(lang, real, &identity, inv, &cwd, &rel, prefix_map);
    let mkey = cache_key::manifest_key(&base);
    let manifest = crate::wrapper::read_object(mnt, &mkey).and_then(|b| Manifest::decode(&b).ok());
    for v in manifest.iter().flat_map(|m| m.variants.iter()) {
        let Some(rkey) = crate::wrapper::result_key_now(&base, v, &rel) else { continue };
        let Some(bytes) = crate::wrapper::read_object(mnt, &rkey) else { continue };
        let Ok(r) = CompileResult::decode(&bytes) else {
            let _ = fs::remove_file(mnt.join(rkey.to_hex()));
            continue;
        };
        // The object, then the caller's dependency file if it asked for one.
        if r.files.len() != 1 + depfile.is_some() as usize {
            continue;
        }
        let f = &r.files[0];
        let restored = compile::restore_file(&out_dir, &out_name, f.mode, f.bytes)
            .and_then(|()| match (&depfile, r.files.get(1)) {
                // The caller's dependency file names the folders it was made in: moved here.
                (Some(p), Some(d)) => match std::str::from_utf8(d.bytes) {
                    Ok(t) => restore_at(p, d.mode, rel.relocate(t, &Rel::from_stored(&r.meta.roots)).as_bytes()),
                    Err(_) => restore_at(p, d.mode, d.bytes),
                },
                _ => Ok(()),
            })
            .and_then(|()| {
                io::stdout().write_all(r.stdout)?;
                io::stderr().write_all(r.stderr)
            });
        if restored.is_ok() {
            filehash::remember(&output, &f.hash);
            report_deps(&v.files.iter().map(|p| rel.abs(p)).collect::<Vec<_>>());
            let took = t0.elapsed();
            let e = Event::Hit {
                kind: Kind::Cc,
                compile_ns: r.meta.compile_ns,
                took_ns: took.as_nanos() as u64,
                bytes: bytes.len() as u64,
            };
            report::send(mnt, &e);
            let saved = Some(std::time::Duration::from_nanos(r.meta.compile_ns));
            log::record_kind(Kind::Cc, &crate_name, Some(&rkey), "hit", took, saved);
            return 0;
        }
        break;
    }
    // Miss: compile, asking the compiler which files it read (into the caller's dependency
    // file when it asked for one, else into a temporary of ours).
    let ours = out_dir.join(format!("{out_name}.cairn-{}.d", std::process::id()));
    if depfile.is_none() {
        cmd.arg("-MD").arg("-MF").arg(&ours);
    }
    if prefix_map {
        cmd.args(rel.prefix_map_args());
    }
    let ran = match compile::capture(cmd) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn-cc: cannot run {}: {e}", real[0]);
            return 127;
        }
    };
    let deps_text = fs::read(depfile.as_ref().unwrap_or(&ours)).unwrap_or_default();
    let deps = makedeps::parse(&String::from_utf8_lossy(&deps_text));
    let _ = fs::remove_file(&ours);
    let deps: Vec<String> = deps.iter().map(|d| cwd.join(d).display().to_string()).collect();
    report_deps(&deps);
    let compile_ns = ran.took.as_nanos() as u64;
    if !ran.status.success() {
        log::record_kind(Kind::Cc, &crate_name, None, "miss:failed", t0.elapsed(), Some(ran.took));
        return ran.status.code().unwrap_or(1);
    }
    let stored = (|| -> io::Result<(Key, u64)> {
        // An input modified after the compile started may not be what was compiled.
        for d in &deps {
            if fs::metadata(d)?.modified()? > ran.started {
                return Err(io::Error::other(crate::wrapper::ChangedDuringCompile(d.to_string())));
            }
        }
        let bytes = fs::read(&output)?;
        // An object that still names this machine's folders is bound to them.
        let mut env = Vec::new();
        crate::wrapper::bind_roots(&mut env, &rel, &bytes);
        let variant = Variant { files: deps.iter().map(|d| rel.rel(d)).collect(), env };
        let rkey =
            crate::wrapper::result_key_now(&base, &variant, &rel).ok_or_else(|| io::Error::other("input vanished"))?;
        let mode = fs::metadata(&output)?.permissions().mode() & 0o7777;
        let hash = *blake3::hash(&bytes).as_bytes();
        filehash::remember(&output, &hash);
        let result = CompileResult {
            meta: EntryMeta {
                crate_name: crate_name.clone(),
                crate_types: vec![match lang {
                    Lang::C => "c-object".into(),
                    Lang::Cxx => "c++-object".into(),
                }],
                target: std::env::var("TARGET").unwrap_or_default(),
                rustc_version: String::new(),
                compile_ns,
                created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                out_dir: out_dir.display().to_string(),
                exit_code: 0,
                roots: rel.stored(),
            },
            files: {
                let mut files = vec![OutputFile { name: out_name.clone(), mode, hash, bytes }];
                if let Some(p) = &depfile {
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let hash = *blake3::hash(&deps_text).as_bytes();
                    files.push(OutputFile { name, mode: 0o644, hash, bytes: deps_text.clone() });
                }
                files
            },
            stdout: ran.stdout.clone(),
            stderr: ran.stderr.clone(),
        };
        let encoded = result.encode();
        crate::wrapper::put_object(mnt, &rkey, &encoded, false)?;
        let mut m = manifest.unwrap_or_default();
        if m.variants.first() != Some(&variant) || m.recent.first() != Some(&rkey) {
            m.push_front(variant);
            m.push_result(rkey);
            crate::wrapper::put_object(mnt, &mkey, &m.encode(), true)?;
        }
        Ok((rkey, encoded.len() as u64))
    })();
    match stored {
        Ok((rkey, bytes)) => {
            log::record_kind(Kind::Cc, &crate_name, Some(&rkey), "miss", t0.elapsed(), Some(ran.took));
            report::send(mnt, &Event::Miss { kind: Kind::Cc, compile_ns, bytes });
        }
        Err(e) => {
            let what = match crate::wrapper::changed_during_compile(&e) {
                true => "miss:changed".to_string(),
                false => format!("error:store:{}", e.to_string().replace(char::is_whitespace, "_")),
            };
            log::record_kind(Kind::Cc, &crate_name, None, &what, t0.elapsed(), Some(ran.took));
            report::send(mnt, &Event::Miss { kind: Kind::Cc, compile_ns, bytes: 0 });
        }
    }
    0
}

/// Writes a restored file at `path` (temp name, then rename).
fn restore_at(path: &Path, mode: u32, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| io::Error::other("no file name"))?;
    compile::restore_file(path.parent().unwrap_or(Path::new(".")), name, mode, bytes)
}

/// The compiler's identity (its program, the `ld` it drives and `--version`: link.rs) and the
/// memo folder it is kept in; `None` when it cannot be had (then the compile runs uncached).
fn compiler_identity(real: &[String]) -> Option<([u8; 32], PathBuf)> {
    let memo = mount::cache_base()?.join("toolchains");
    let command = real.join(" ");
    let program = crate::build_script::env::program(&command).unwrap_or(&real[0]);
    let identity = link::linker_identity(Path::new(program), &memo).ok()?;
    Some((identity, memo))
}

/// The base key of a compile.
fn base_key(
    lang: Lang,
    real: &[String],
    identity: &[u8; 32],
    inv: &args::Compile,
    cwd: &Path,
    rel: &Rel,
    prefix_map: bool,
) -> Key {
    let command = real.join(" ");
    let mut h = KeyHasher::new("cc-base");
    h.field("compiler", identity);
    h.field("command", command.as_bytes());
    h.field("lang", if lang == Lang::C { b"c" } else { b"c++" });
    h.field("prefix-map", if prefix_map { b"roots" } else { b"none" });
    h.field("cwd", rel.rel(&cwd.display().to_string()).as_bytes());
    for a in &inv.keyed_args {
        h.field("arg", rel.rel(a).as_bytes());
    }
    for k in KEYED_ENV {
        h.field("env", k.as_bytes());
        match std::env::var(k) {
            Ok(v) => h.field("env-value", rel.rel(&v).as_bytes()),
            Err(_) => h.field("env-unset", b""),
        }
    }
    h.finish()
}

/// Whether the compiler takes `-ffile-prefix-map` (gcc 8 and later, clang 10 and later):
/// asked once per compiler identity by compiling an empty C file with it, and memoized.
fn takes_prefix_map(real: &[String], identity: &[u8; 32], memo_dir: &Path) -> bool {
    let path = memo_dir.join(format!("prefix-map-{}.bin", &blake3::hash(identity).to_hex()[..32]));
    if let Some(known) = crate::wrapper::memo::load::<bool>(&path) {
        return known;
    }
    let ok = Command::new(&real[0])
        .args(&real[1..])
        .args(["-ffile-prefix-map=/cairn-probe=.", "-x", "c", "-c", "-o", "/dev/null", "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    crate::wrapper::memo::save(&path, &ok);
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

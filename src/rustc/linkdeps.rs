//! The files a link really read, from the linker's own dependency file.
//!
//! The linker finds much by itself: `libc.so` (a linker script) and `libc.so.6`, crt objects,
//! `libgcc`, a `-l dylib=` library a dependency's build script named, found on the default
//! search paths. None of it is on rustc's command line or in its dep-info, and all of it decides
//! what the binary is: linked against a newer glibc, a binary needs symbols an older machine
//! lacks. GNU ld ≥ 2.35, lld (rustc's default linker on x86_64 Linux since 1.90) and mold write
//! a make-style list of every file they read when given `--dependency-file`. So a compile that
//! links runs with `-C link-arg=-Wl,--dependency-file=<tmp>`, and the files listed — except
//! those other parts of the key already cover (rlibs: graph.rs; the toolchain's own files;
//! this compile's outputs and temporaries) — join its dependency set, hashed by content on
//! every lookup like sources.
//!
//! Whether the linker takes the flag is probed once per toolchain, linker and link arguments
//! with a one-line program, and remembered (`<cache>/toolchains/linkdeps-*.bin`): a linker
//! without it (gold, old binutils) links as before, with the residual risks of
//! docs/cache-key.md.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::args::Invocation;
use crate::engine::memo;

#[derive(Serialize, Deserialize)]
struct Memo {
    supported: bool,
}

/// The extra rustc arguments that make the linker write its dependency file to `path`.
pub fn args(path: &Path) -> [OsString; 2] {
    let mut v = OsString::from("link-arg=-Wl,--dependency-file=");
    v.push(path.as_os_str());
    [OsString::from("-C"), v]
}

/// Whether the link of `inv` (with rustc `rustc`, toolchain `toolchain`) accepts
/// `--dependency-file`. Asked once per toolchain, linker and link arguments.
pub fn supported(rustc: &Path, inv: &Invocation, toolchain: &[u8; 32], memo_dir: &Path) -> bool {
    let mut h = blake3::Hasher::new();
    h.update(toolchain);
    h.update(inv.linker.as_deref().unwrap_or("").as_bytes());
    h.update(inv.target.as_deref().unwrap_or("").as_bytes());
    for a in &inv.link_args {
        h.update(a.as_bytes());
        h.update(b"\0");
    }
    let memo_path = memo_dir.join(format!("linkdeps-{}.bin", &h.finalize().to_hex()[..32]));
    if let Some(m) = memo::load::<Memo>(&memo_path) {
        return m.supported;
    }
    let dir = memo_dir.join(format!("linkdeps-probe-{}", std::process::id()));
    let supported = fs::create_dir_all(&dir).and_then(|()| probe(rustc, inv, &dir)).unwrap_or(false);
    let _ = fs::remove_dir_all(&dir);
    memo::save(&memo_path, &Memo { supported });
    supported
}

/// Links `fn main() {}` in `dir` with the flag and the invocation's linker settings.
fn probe(rustc: &Path, inv: &Invocation, dir: &Path) -> std::io::Result<bool> {
    let deps = dir.join("probe.d");
    let mut cmd = Command::new(rustc);
    cmd.args(["-", "--crate-name", "cairn_probe", "--crate-type", "bin", "-o"])
        .arg(dir.join("probe"))
        .args(args(&deps))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(l) = &inv.linker {
        cmd.arg("-C").arg(format!("linker={l}"));
    }
    if let Some(t) = &inv.target {
        cmd.args(["--target", t]);
    }
    for a in &inv.link_args {
        cmd.arg("-C").arg(format!("link-arg={a}"));
    }
    let mut child = cmd.spawn()?;
    child.stdin.take().map(|mut s| s.write_all(b"fn main() {}\n")).transpose()?;
    let ok = child.wait()?.success();
    Ok(ok && fs::read_to_string(&deps).map(|t| !parse(&t).is_empty()).unwrap_or(false))
}

/// The prerequisites of the make-style dependency file ld writes (the same syntax as a C
/// compiler's `-MD` output, so the same reader).
pub fn parse(text: &str) -> Vec<String> {
    crate::engine::makedeps::parse(text)
}

/// The files of the list that the key must add: they exist now, they are not this compile's
/// outputs or temporaries (under `out_dir`), not rlibs (graph.rs covers those) and not the
/// toolchain's own files (its identity covers those). Sorted, without repeats.
pub fn relevant(files: Vec<String>, out_dir: &str) -> Vec<String> {
    let out_dir = Path::new(out_dir);
    let mut v: Vec<String> = files
        .into_iter()
        .filter(|f| {
            let p = Path::new(f);
            p.is_absolute()
                && p.is_file()
                && !p.starts_with(out_dir)
                && p.extension().is_none_or(|e| e != "rlib")
                && !f.contains("/lib/rustlib/")
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_rules_are_read_with_escapes_and_continuations() {
        let text = "/t/app: /usr/lib/crt1.o /usr/lib/my\\ lib.a \\\n  /usr/lib/libc.so\n\n/usr/lib/libc.so:\n";
        assert_eq!(parse(text), ["/usr/lib/crt1.o", "/usr/lib/my lib.a", "/usr/lib/libc.so"]);
    }

    #[test]
    fn outputs_rlibs_toolchain_files_and_vanished_files_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("sys/libz.a");
        let own = dir.path().join("out/app.app.1.rcgu.o");
        let rlib = dir.path().join("deps/libfoo-1.rlib");
        let tc = dir.path().join("tc/lib/rustlib/x/lib/libstd.rlib.o");
        for f in [&keep, &own, &rlib, &tc] {
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, b"x").unwrap();
        }
        let gone = dir.path().join("out/rustcXYZ/symbols.o");
        let all = [&keep, &own, &rlib, &tc, &gone, &keep].iter().map(|p| p.display().to_string()).collect();
        let out_dir = dir.path().join("out").display().to_string();
        assert_eq!(relevant(all, &out_dir), [keep.display().to_string()]);
    }

    #[test]
    fn this_machines_linker_writes_a_dependency_file() {
        let dir = tempfile::tempdir().unwrap();
        let inv = super::super::args::outline(&[
            "x.rs".into(),
            "--crate-name".into(),
            "x".into(),
            "--out-dir".into(),
            "/o".into(),
        ])
        .unwrap();
        assert!(supported(Path::new("rustc"), &inv, &[1; 32], dir.path()), "GNU ld ≥ 2.35 or lld is expected here");
        assert!(dir.path().read_dir().unwrap().count() == 1, "remembered");
    }
}

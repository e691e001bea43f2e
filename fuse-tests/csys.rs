//! End-to-end fixture for build scripts and C: a workspace with a local cc-rs crate
//! (`cnative`) whose every input a test can change, a light binary `app` that prints what
//! `cnative` compiled, `cdeep` which reaches it only through `cmid` (native code two crates
//! down), and a binary `heavy` over real published `-sys` crates (zstd-sys, libsqlite3-sys
//! bundled, ring).
//!
//! `cnative`'s script appends a line to the file `CNATIVE_RUNS` names each time it runs, and
//! the C compiler the tests name in `CC` (`mycc`, a shell script over `cc`) appends one to
//! `MYCC_LOG` per call: so a test sees whether a script or a compiler *ran*, not only what
//! the cache logged. Neither variable enters any key (they are not declared).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::common::{mount_store, Mount};
use crate::workspace::{cargo_in, ok};

pub struct Csys {
    pub root: PathBuf,
    pub store: PathBuf,
    pub xdg: PathBuf,
}

static LOCK: Mutex<()> = Mutex::new(());
static CSYS: OnceLock<Csys> = OnceLock::new();

/// Serializes the tests of this fixture (they share its store and workspace).
pub fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn csys() -> &'static Csys {
    CSYS.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("csys");
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("ws");
        write_workspace(&root);
        Csys { root, store: base.join("store"), xdg: base.join("xdg") }
    })
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `mycc`: a C compiler (a script over `cc`) with a tag the program prints, and a call log.
pub fn write_mycc(root: &Path, tag: u32) {
    let p = root.join("mycc");
    write(
        &p,
        &format!("#!/bin/sh\necho \"$@\" >> \"${{MYCC_LOG:-/dev/null}}\"\nexec cc -DCOMPILER_TAG={tag} \"$@\"\n"),
    );
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn write_workspace(root: &Path) {
    write(
        &root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"app\", \"heavy\", \"cnative\", \"capp\", \"cmk\", \"cmid\", \"cdeep\"]\nresolver = \"2\"\n",
    );
    // cmk: a build script that drives cmake (cmake-rs), whose Makefiles compile with -MD -MF.
    write(
        &root.join("cmk/Cargo.toml"),
        "[package]\nname = \"cmk\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[build-dependencies]\ncmake = \"0.1\"\n",
    );
    write(
        &root.join("cmk/build.rs"),
        "fn main() {\n    let dst = cmake::Config::new(\"c\").build();\n    \
         println!(\"cargo:rustc-link-search=native={}/lib\", dst.display());\n    \
         println!(\"cargo:rustc-link-lib=static=cmkv\");\n}\n",
    );
    write(
        &root.join("cmk/c/CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.10)\nproject(cmkv C)\nadd_library(cmkv STATIC v.c)\ninstall(TARGETS cmkv DESTINATION lib)\n",
    );
    write(&root.join("cmk/c/v.c"), "#include \"v.h\"\nint cmk_value(void) { return V; }\n");
    write(&root.join("cmk/c/v.h"), "#define V 7\n");
    write(
        &root.join("cmk/src/lib.rs"),
        "extern \"C\" {\n    fn cmk_value() -> i32;\n}\npub fn value() -> i32 {\n    unsafe { cmk_value() }\n}\n",
    );
    write(
        &root.join("capp/Cargo.toml"),
        "[package]\nname = \"capp\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ncmk = { path = \"../cmk\" }\n",
    );
    write(&root.join("capp/src/main.rs"), "fn main() {\n    println!(\"cmk={}\", cmk::value());\n}\n");
    write(
        &root.join("cnative/Cargo.toml"),
        "[package]\nname = \"cnative\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[features]\nextra = []\n\n\
         [build-dependencies]\ncc = \"1\"\n",
    );
    write(
        &root.join("cnative/build.rs"),
        r#"use std::io::Write;
fn main() {
    println!("cargo:rerun-if-changed=c");
    println!("cargo:rerun-if-env-changed=CNATIVE_MODE");
    if let Ok(p) = std::env::var("CNATIVE_RUNS") {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap();
        writeln!(f, "ran").unwrap();
    }
    let mode = std::env::var("CNATIVE_MODE").unwrap_or_else(|_| "plain".into());
    let mut b = cc::Build::new();
    b.file("c/value.c").include("c").include("include").define("MODE", Some(format!("\"{mode}\"").as_str()));
    if std::env::var_os("CARGO_FEATURE_EXTRA").is_some() {
        b.define("EXTRA", "1");
    }
    b.compile("cnative");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::create_dir_all(out.join("gen")).unwrap();
    std::fs::write(out.join("gen/mode.rs"), format!("pub const GEN_MODE: &str = {mode:?};\n")).unwrap();
    // As libz-sys's pkg-config file does: a text file that names OUT_DIR itself.
    std::fs::write(out.join("cnative.pc"), format!("prefix={}\n", out.display())).unwrap();
}
"#,
    );
    write(
        &root.join("cnative/c/value.c"),
        r#"#include "value.h"
#include "other.h"
#ifndef COMPILER_TAG
#define COMPILER_TAG 0
#endif
#ifdef EXTRA
#define EXTRA_VALUE 1000
#else
#define EXTRA_VALUE 0
#endif
#ifdef FROM_CFLAGS
#define CFLAGS_VALUE 100
#else
#define CFLAGS_VALUE 0
#endif
const char *cnative_mode(void) { return MODE; }
int cnative_value(void) { return VALUE + OTHER + EXTRA_VALUE + CFLAGS_VALUE; }
int cnative_tag(void) { return COMPILER_TAG; }
"#,
    );
    write(&root.join("cnative/c/value.h"), "#define VALUE 1\n");
    // Outside the declared folder: cargo would not rerun the script for it, a clean build does.
    write(&root.join("cnative/include/other.h"), "#define OTHER 10\n");
    write(
        &root.join("cnative/src/lib.rs"),
        r#"include!(concat!(env!("OUT_DIR"), "/gen/mode.rs"));
extern "C" {
    fn cnative_mode() -> *const std::os::raw::c_char;
    fn cnative_value() -> i32;
    fn cnative_tag() -> i32;
}
pub fn report() -> String {
    let mode = unsafe { std::ffi::CStr::from_ptr(cnative_mode()) }.to_string_lossy().into_owned();
    format!("mode={mode} gen={GEN_MODE} value={} tag={}", unsafe { cnative_value() }, unsafe { cnative_tag() })
}
"#,
    );
    write(
        &root.join("app/Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ncnative = { path = \"../cnative\" }\n",
    );
    write(&root.join("app/src/main.rs"), "fn main() {\n    println!(\"{}\", cnative::report());\n}\n");
    // cdeep reaches cnative's C only through cmid: two crates down.
    write(
        &root.join("cmid/Cargo.toml"),
        "[package]\nname = \"cmid\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ncnative = { path = \"../cnative\" }\n",
    );
    write(
        &root.join("cmid/src/lib.rs"),
        "pub fn report() -> String {\n    format!(\"via cmid: {}\", cnative::report())\n}\n",
    );
    write(
        &root.join("cdeep/Cargo.toml"),
        "[package]\nname = \"cdeep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ncmid = { path = \"../cmid\" }\n",
    );
    write(&root.join("cdeep/src/main.rs"), "fn main() {\n    println!(\"{}\", cmid::report());\n}\n");
    write(
        &root.join("heavy/Cargo.toml"),
        "[package]\nname = \"heavy\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\
         cnative = { path = \"../cnative\" }\nzstd = \"0.13\"\nrusqlite = { version = \"0.32\", features = [\"bundled\"] }\n\
         ring = \"0.17\"\n",
    );
    write(
        &root.join("heavy/src/main.rs"),
        r#"fn main() {
    let z = zstd::encode_all(&b"cairn cairn cairn cairn"[..], 3).unwrap();
    let back = zstd::decode_all(&z[..]).unwrap();
    let db = rusqlite::Connection::open_in_memory().unwrap();
    let v: String = db.query_row("select sqlite_version() || ':' || (6 * 7)", [], |r| r.get(0)).unwrap();
    let d = ring::digest::digest(&ring::digest::SHA256, b"cairn");
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    println!("{} zstd={}:{} sqlite={v} sha256={hex}", cnative::report(), z.len(), back.len());
}
"#,
    );
    write_mycc(root, 1);
}

/// Mounts a daemon over the fixture's store.
pub fn mount(test: &str) -> Option<Mount> {
    mount_store(test, Some(&csys().store), "8GiB", &[])
}

/// A daemon over the fixture's store, reached through `via`.
pub fn mount_via(test: &str, via: crate::common::Via) -> Option<Mount> {
    crate::common::mount_via(test, Some(&csys().store), "8GiB", &[], &[], via)
}

/// A cargo command in the fixture, with `mycc` as the C compiler and the run/call logs.
pub fn cargo(mnt: Option<&Mount>, target: &str, log: &Path, args: &[&str]) -> Command {
    let c = csys();
    let mut cmd = cargo_in(&c.root, &c.xdg, mnt, target, log, args);
    cmd.env("CC", c.root.join("mycc")).env("CNATIVE_RUNS", runs_file()).env("MYCC_LOG", mycc_log());
    cmd
}

pub fn runs_file() -> PathBuf {
    csys().root.parent().unwrap().join("cnative-runs")
}

pub fn mycc_log() -> PathBuf {
    csys().root.parent().unwrap().join("mycc.log")
}

/// How many lines a file has (0 when absent).
pub fn count_lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0)
}

/// A fresh log path.
pub fn log_path(name: &str) -> PathBuf {
    let p = csys().root.parent().unwrap().join("logs").join(format!("{name}.log"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&p);
    p
}

/// Cleans `target`, builds `bin` there (with the cache when `mnt` is given, with `tweak`
/// applied), and returns what the program prints.
pub fn clean_build_run(
    mnt: Option<&Mount>,
    target: &str,
    bin: &str,
    log: &Path,
    tweak: &dyn Fn(&mut Command),
) -> String {
    ok(cargo(None, target, log, &["clean"]));
    let mut c = cargo(mnt, target, log, &["build", "-p", bin]);
    tweak(&mut c);
    ok(c);
    let out = ok(Command::new(csys().root.join(target).join("debug").join(bin)));
    String::from_utf8(out.stdout).unwrap()
}

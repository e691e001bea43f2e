//! Inputs outside rustc's dep-info (issue #10), each on a real cargo build compared with plain
//! cargo's: native code two crates down, a link failure whose cause is later fixed.
//! (Same-size rewrites with the mtime put back, `target-cpu=native` and the toolchain's
//! self-contained linker are in wrapper_changes.rs, on that fixture.)

use std::path::Path;
use std::process::Command;

use crate::csys::{clean_build_run, csys, log_path, write};
use crate::workspace::{cargo_in, ok, read_log, read_log_all};

/// A test of its own: a temporary folder with a workspace root `w`, a side folder, a cache home,
/// and a mount over a fresh store.
struct Scratch {
    dir: tempfile::TempDir,
    m: crate::common::Mount,
    root: std::path::PathBuf,
    side: std::path::PathBuf,
    xdg: std::path::PathBuf,
}

fn scratch(test: &str, side: &str) -> Option<Scratch> {
    let dir = tempfile::tempdir().unwrap();
    let m = crate::common::mount_store(test, None, "1GiB", &[])?;
    let (root, side, xdg) = (dir.path().join("w"), dir.path().join(side), dir.path().join("xdg"));
    std::fs::create_dir_all(&side).unwrap();
    Some(Scratch { dir, m, root, side, xdg })
}

/// Puts a file's old text back when dropped, so a failing test leaves the fixture as it was.
struct Restore(std::path::PathBuf, String);
impl Drop for Restore {
    fn drop(&mut self) {
        std::fs::write(&self.0, &self.1).unwrap();
    }
}

#[test]
fn native_code_two_crates_down_reaches_the_binary() {
    let _g = crate::csys::lock();
    let Some(m) = crate::csys::mount("native_code_two_crates_down_reaches_the_binary") else { return };
    let no_tweak = |_: &mut Command| {};
    let header = csys().root.join("cnative/c/value.h");
    let before = clean_build_run(Some(&m), "t-deep", "cdeep", &log_path("deep-base"), &no_tweak);
    assert!(before.starts_with("via cmid: ") && before.contains("value="), "{before}");
    let _r = Restore(header.clone(), std::fs::read_to_string(&header).unwrap());
    write(&header, "#define VALUE 5\n");
    let plain = clean_build_run(None, "t-deep-plain", "cdeep", &log_path("deep-plain"), &no_tweak);
    let log = log_path("deep-changed");
    let cached = clean_build_run(Some(&m), "t-deep", "cdeep", &log, &no_tweak);
    assert_ne!(plain, before, "the C change shows in the program (else the test is weak)");
    assert_eq!(cached, plain, "the binary must carry the new C code");
    // The scenario is the real one: the crate in between kept its rlib (a hit), only the
    // graph below it changed.
    let lines = read_log(&log);
    let outcome = |k: &str| lines.iter().find(|l| l.krate == k).map(|l| l.outcome.clone());
    assert_eq!(outcome("cmid").as_deref(), Some("hit"), "{lines:?}");
    assert_eq!(outcome("cdeep").as_deref(), Some("miss"), "{lines:?}");
}

/// A tiny workspace: `nsys`, whose build script prints `script` (its link directives), and the
/// binary `linked` over it, which prints `nsys::value()`. The `-l` lives in nsys's rlib, so the
/// binary's own command line only carries what the script printed.
fn write_link_workspace(root: &Path, script: &str, lib: &str) {
    write(&root.join("Cargo.toml"), "[workspace]\nmembers = [\"nsys\", \"linked\"]\nresolver = \"2\"\n");
    write(&root.join("nsys/Cargo.toml"), "[package]\nname = \"nsys\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
    write(&root.join("nsys/build.rs"), &format!("fn main() {{\n{script}}}\n"));
    write(
        &root.join("nsys/src/lib.rs"),
        &format!(
            "extern \"C\" {{\n    fn {lib}_value() -> i32;\n}}\npub fn value() -> i32 {{\n    unsafe {{ {lib}_value() }}\n}}\n"
        ),
    );
    write(
        &root.join("linked/Cargo.toml"),
        "[package]\nname = \"linked\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nnsys = { path = \"../nsys\" }\n",
    );
    write(&root.join("linked/src/main.rs"), "fn main() {\n    println!(\"value={}\", nsys::value());\n}\n");
}

/// Compiles `int <lib>_value(void) { return <value>; }` into `<dir>/lib<lib>.a` or `.so`.
fn native_lib(dir: &Path, lib: &str, value: i32, shared: bool) {
    let source = format!("int {lib}_value(void) {{ return {value}; }}\n");
    if !shared {
        return crate::workspace::static_lib(dir, lib, &source);
    }
    let c = dir.join(format!("{lib}.c"));
    std::fs::write(&c, source).unwrap();
    let mut cc = Command::new("cc");
    cc.args(["-shared", "-fPIC", "-o"]).arg(dir.join(format!("lib{lib}.so"))).arg(&c);
    ok(cc);
}

#[test]
fn a_link_that_failed_for_a_missing_library_links_once_it_is_installed() {
    let Some(Scratch { dir, m, root, side: libdir, xdg }) = scratch("a_link_that_failed", "lib") else { return };
    let script = format!(
        "    println!(\"cargo:rustc-link-search=native={}\");\n    println!(\"cargo:rustc-link-lib=dylib=cairnmissing\");\n",
        libdir.display()
    );
    write_link_workspace(&root, &script, "cairnmissing");
    let build =
        |log: &Path| cargo_in(&root, &xdg, Some(&m), "target", log, &["build", "-p", "linked"]).output().unwrap();
    let log1 = dir.path().join("1.log");
    let failed = build(&log1);
    assert!(!failed.status.success(), "links without the library?");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("cairnmissing"), "fails for the missing library");
    assert!(read_log_all(&log1).iter().any(|l| l.krate == "linked" && l.outcome == "miss:failed"));
    // The user installs the library and builds again, from clean.
    native_lib(&libdir, "cairnmissing", 42, true);
    ok(cargo_in(&root, &xdg, None, "target", &dir.path().join("x.log"), &["clean"]));
    let log2 = dir.path().join("2.log");
    let out = build(&log2);
    assert!(out.status.success(), "the failure was replayed:\n{}", String::from_utf8_lossy(&out.stderr));
    // (A dependency's `rustc-link-arg` does not reach the binary, so no rpath: the loader is told.)
    let run = ok({
        let mut bin = Command::new(root.join("target/debug/linked"));
        bin.env("LD_LIBRARY_PATH", &libdir);
        bin
    });
    assert_eq!(String::from_utf8_lossy(&run.stdout), "value=42\n");
    let linked: Vec<_> = read_log_all(&log2).into_iter().filter(|l| l.krate == "linked").collect();
    assert!(
        !linked.is_empty() && linked.iter().all(|l| l.outcome == "miss"),
        "linked is compiled, and misses: {linked:?}"
    );
}

/// A static library the linker finds by itself, through `LIBRARY_PATH`, with no `-L` on any
/// command line: only the linker's own account of what it read (linkdeps.rs) can tell the
/// binary's key that the library changed.
#[test]
fn a_static_library_found_by_the_linker_alone_is_in_the_key() {
    let Some(Scratch { dir, m, root, side: libdir, xdg }) = scratch("a_static_library_found", "lib") else { return };
    write_link_workspace(&root, "    println!(\"cargo:rustc-link-lib=cairnfound\");\n", "cairnfound");
    let run = |value: i32, n: u32| {
        native_lib(&libdir, "cairnfound", value, false);
        ok(cargo_in(&root, &xdg, None, "target", &dir.path().join("x.log"), &["clean"]));
        let log = dir.path().join(format!("{n}.log"));
        let mut build = cargo_in(&root, &xdg, Some(&m), "target", &log, &["build", "-p", "linked"]);
        build.env("LIBRARY_PATH", &libdir);
        ok(build);
        let out = ok(Command::new(root.join("target/debug/linked")));
        let linked: Vec<_> = read_log_all(&log).into_iter().filter(|l| l.krate == "linked").collect();
        (String::from_utf8_lossy(&out.stdout).into_owned(), linked)
    };
    let (first, _) = run(42, 1);
    assert_eq!(first, "value=42\n");
    let (same, linked) = run(42, 2);
    assert_eq!(same, "value=42\n");
    assert!(
        !linked.is_empty() && linked.iter().all(|l| l.outcome == "hit"),
        "an unchanged library hits (and linked is in the log): {linked:?}"
    );
    let (changed, linked) = run(43, 3);
    assert_eq!(changed, "value=43\n", "the binary must carry the new library");
    assert!(
        !linked.is_empty() && linked.iter().all(|l| l.outcome == "miss"),
        "a changed library misses (and linked is in the log): {linked:?}"
    );
}

/// A workspace whose binary `gated` calls a proc-macro that, while rustc expands it, says it
/// started (a file) and then holds the compile until the test lets it go (another file). So
/// the test can edit the source at a known point inside the compile.
fn write_gate_workspace(root: &Path) {
    write(&root.join("Cargo.toml"), "[workspace]\nmembers = [\"gate\", \"gated\"]\nresolver = \"2\"\n");
    write(
        &root.join("gate/Cargo.toml"),
        "[package]\nname = \"gate\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\nproc-macro = true\n",
    );
    write(
        &root.join("gate/src/lib.rs"),
        "use proc_macro::TokenStream;\nuse std::path::Path;\n\n#[proc_macro]\npub fn gate(_: TokenStream) -> \
         TokenStream {\n    if let Ok(dir) = std::env::var(\"GATE_DIR\") {\n        let dir = Path::new(&dir);\n        \
         std::fs::write(dir.join(\"started\"), \"\").unwrap();\n        while !dir.join(\"go\").exists() {\n            \
         std::thread::sleep(std::time::Duration::from_millis(5));\n        }\n    }\n    TokenStream::new()\n}\n",
    );
    write(
        &root.join("gated/Cargo.toml"),
        "[package]\nname = \"gated\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ngate = { path = \"../gate\" }\n",
    );
    write(&root.join("gated/src/main.rs"), "gate::gate!();\nfn main() {\n    println!(\"one\");\n}\n");
}

/// A source edited while rustc compiles it: the output was made from the old text, so the
/// pair (new text, this output) must not be recorded. The next clean build compiles the new
/// text instead of restoring the old program.
#[test]
fn a_source_edited_during_its_compile_is_not_recorded() {
    let Some(Scratch { dir, m, root, side: gate, xdg }) = scratch("a_source_edited_during", "gate") else { return };
    write_gate_workspace(&root);
    let build = |log: &Path| {
        let mut c = cargo_in(&root, &xdg, Some(&m), "target", log, &["build", "-p", "gated"]);
        c.env("GATE_DIR", &gate);
        c
    };
    let log1 = dir.path().join("1.log");
    let mut child = build(&log1).stdout(std::process::Stdio::null()).spawn().unwrap();
    // Wait for the macro to report that rustc is expanding `gated` (bounded: a build that
    // failed early would never get there).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !gate.join("started").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended before the compile of gated began: {status}");
        }
        assert!(std::time::Instant::now() < deadline, "the compile of gated never began");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    write(&root.join("gated/src/main.rs"), "gate::gate!();\nfn main() {\n    println!(\"two\");\n}\n");
    std::fs::write(gate.join("go"), "").unwrap();
    assert!(child.wait().unwrap().success());
    let first = ok(Command::new(root.join("target/debug/gated")));
    assert_eq!(String::from_utf8_lossy(&first.stdout), "one\n", "rustc read the old text (else the test is weak)");
    let gated: Vec<_> = read_log_all(&log1).into_iter().filter(|l| l.krate == "gated").collect();
    assert!(
        !gated.is_empty() && gated.iter().all(|l| l.key == "-" && l.outcome == "miss:changed"),
        "recorded under some key: {gated:?}"
    );
    // From clean, the program must be the new text.
    ok(cargo_in(&root, &xdg, None, "target", &dir.path().join("x.log"), &["clean"]));
    let log2 = dir.path().join("2.log");
    ok(build(&log2));
    let second = ok(Command::new(root.join("target/debug/gated")));
    assert_eq!(String::from_utf8_lossy(&second.stdout), "two\n", "the old program came back");
    let gated: Vec<_> = read_log_all(&log2).into_iter().filter(|l| l.krate == "gated").collect();
    assert!(!gated.is_empty() && gated.iter().all(|l| l.outcome == "miss"), "gated is compiled, and misses: {gated:?}");
}

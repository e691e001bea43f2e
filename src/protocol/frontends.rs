//! How the front ends reach one another through a build, without importing one another: the
//! rustc front end puts a launcher in place of each build script it compiles, the launcher
//! calls this binary back with [`FLAG`], and the build-script front end points `CC`/`CXX` at
//! links named [`CC_NAME`]/[`CXX_NAME`] to this binary. The names and the launcher's text are
//! the contract; `src/wrapper.rs` dispatches on them.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The flag the launcher passes as `argv[1]`: `cairn-rustc --cairn-build-script LAUNCHER REAL ARGS…`.
pub const FLAG: &str = "--cairn-build-script";

/// What the real script is renamed to, next to the launcher.
pub fn real_name(bin: &str) -> String {
    format!("cairn-real-{bin}")
}

/// The script's own name, if `name` is what [`real_name`] made of it.
pub fn script_of_real(name: &str) -> Option<&str> {
    name.strip_prefix("cairn-real-")
}

/// Whether a rustc compile is a build script (cargo names them all `build_script_build`).
pub fn is_build_script(crate_name: &str, crate_types: &[String]) -> bool {
    crate_name == "build_script_build" && crate_types.iter().all(|t| t == "bin")
}

/// Puts a launcher in place of the build-script binary `out_dir/bin`, which becomes
/// `out_dir/cairn-real-<bin>`. On any failure the real binary is left (or put back) where it
/// was, so the build runs the script as it is.
pub fn install_launcher(out_dir: &Path, bin: &str) -> io::Result<()> {
    let (path, real) = (out_dir.join(bin), out_dir.join(real_name(bin)));
    fs::rename(&path, &real)?;
    if let Err(e) = write_launcher(out_dir, bin) {
        let _ = fs::rename(&real, &path);
        return Err(e);
    }
    Ok(())
}

/// The launcher's second line: how a launcher is told from a script (target-dir seeding
/// writes it anew rather than copying another machine's).
const LAUNCHER_MARK: &str = "# Written by cairn: runs this build script through the cache";

/// Whether `bytes` are a launcher this function wrote.
pub fn is_launcher(bytes: &[u8]) -> bool {
    bytes.starts_with(format!("#!/bin/sh\n{LAUNCHER_MARK}").as_bytes())
}

/// Writes the launcher of `bin` in `out_dir` (the real script is `real_name(bin)` beside it),
/// naming this process's binary: to a temporary name, then renamed over `bin`.
pub fn write_launcher(out_dir: &Path, bin: &str) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let tmp = out_dir.join(format!(".cairn-launcher-{}", std::process::id()));
    let text = format!(
        "#!/bin/sh\n\
         {LAUNCHER_MARK}; {real_name} is the script.\n\
         # CAIRN_BUILD_SCRIPTS=0 runs it as it is (docs/build-scripts.md).\n\
         if [ -x {exe} ]; then exec {exe} {FLAG} \"$0\" {real_name} \"$@\"; fi\n\
         exec \"$(dirname \"$0\")\"/{real_name} \"$@\"\n",
        exe = sh_quote(&exe.display().to_string()),
        real_name = sh_quote(&real_name(bin)),
    );
    fs::write(&tmp, text)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    if let Err(e) = fs::rename(&tmp, out_dir.join(bin)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The link names the launcher gives this binary for C and C++.
pub const CC_NAME: &str = "cairn-cc";
pub const CXX_NAME: &str = "cairn-c++";
/// The compilers they stand for.
pub const REAL_CC_VAR: &str = "CAIRN_REAL_CC";
pub const REAL_CXX_VAR: &str = "CAIRN_REAL_CXX";
/// Where each compile appends the files it read (one absolute path per line).
pub const DEPS_VAR: &str = "CAIRN_CC_DEPS";

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_launcher_runs_the_real_script_when_cairn_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let bin = "build_script_build-0123";
        fs::write(d.path().join(bin), "#!/bin/sh\necho real \"$@\"\n").unwrap();
        fs::set_permissions(d.path().join(bin), fs::Permissions::from_mode(0o755)).unwrap();
        install_launcher(d.path(), bin).unwrap();
        assert!(d.path().join(real_name(bin)).is_file());
        let text = fs::read_to_string(d.path().join(bin)).unwrap();
        assert!(text.starts_with("#!/bin/sh") && text.contains(FLAG), "{text}");
        // The test binary is the "cairn-rustc" named in it; point the launcher at a missing one.
        let exe = std::env::current_exe().unwrap().display().to_string();
        fs::write(d.path().join(bin), text.replace(&exe, "/nonexistent/cairn-rustc")).unwrap();
        let out = Command::new(d.path().join(bin)).arg("x").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "real x\n");
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(sh_quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}

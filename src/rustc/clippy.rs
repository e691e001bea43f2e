//! `cargo clippy` through the cache. Cargo runs each workspace crate as
//! `cairn-rustc …/clippy-driver …/rustc ARGS…` (`RUSTC_WORKSPACE_WRAPPER` inside
//! `RUSTC_WRAPPER`). clippy-driver is rustc with lints, so its compile is the rustc front
//! end's with another program; this file says only what differs: the key also holds everything
//! that decides which lints fire and how they read, so a warm `cargo clippy` replays exactly
//! the diagnostics a fresh run prints, and a changed lint level never replays stale ones:
//!
//! - the rustc compile's own base key (its arguments carry the `-W`/`-A`/`-D` flags cargo
//!   passes, including the `[lints]` table);
//! - the driver's contents (the clippy version; the toolchain's libraries are in the rustc key);
//! - every `CLIPPY_*` variable (`CLIPPY_ARGS` holds the flags after `cargo clippy --`,
//!   `CLIPPY_CONF_DIR` moves the configuration);
//! - every `clippy.toml` and `.clippy.toml` clippy could read: in `CLIPPY_CONF_DIR`, else in
//!   the package folder and each folder above it (clippy takes the nearest; all are keyed, so
//!   adding one anywhere on the way is a miss, never a stale hit).
//!
//! Dependencies outside the workspace are plain rustc compiles (cargo does not lint them), and
//! share their entries with `cargo check`. Entries are listed with the crate type `clippy`.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::engine::basedir::Rel;
use crate::engine::filehash::hash_file;
use crate::engine::keys::KeyHasher;
use crate::engine::{process, toolchain};
use crate::key::Key;

/// The configuration files clippy looks for, in its order.
const CONFIG_NAMES: [&str; 2] = [".clippy.toml", "clippy.toml"];

/// Whether the program cargo runs is clippy's driver.
pub fn is_driver(program: &Path) -> bool {
    program.file_stem().is_some_and(|s| s == "clippy-driver")
}

/// Runs `driver` on a rustc command line (`args[0]` is rustc) through the cache.
pub fn main(driver: PathBuf, args: &[OsString]) -> i32 {
    let Some(rustc) = args.first() else {
        return process::exec(&mut Command::new(&driver), "cairn-rustc");
    };
    let driver = Driver { program: toolchain::resolve_program(&driver).unwrap_or(driver) };
    super::main_with(Some(driver), PathBuf::from(rustc), &args[1..])
}

/// The clippy driver a compile runs through.
#[derive(Debug, Clone)]
pub struct Driver {
    pub program: PathBuf,
}

impl Driver {
    /// The compile's key: the rustc compile's base key and what decides the lints.
    pub fn key(&self, rustc_base: &Key, rel: &Rel) -> io::Result<Key> {
        let mut env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("CLIPPY_")).collect();
        env.sort();
        let configs = config_files(
            std::env::var_os("CLIPPY_CONF_DIR").map(PathBuf::from),
            std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        );
        let configs = configs
            .iter()
            .map(|p| Ok((rel.rel(&p.display().to_string()), hash_file(p)?)))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(clippy_key(rustc_base, &hash_file(&self.program)?, &env, &configs))
    }
}

/// Hashes the clippy key from its parts (see the module comment); values root-relative.
pub fn clippy_key(
    rustc_base: &Key,
    driver: &[u8; 32],
    env: &[(String, String)],
    configs: &[(String, [u8; 32])],
) -> Key {
    let mut h = KeyHasher::new("clippy-base");
    h.field("rustc-base", &rustc_base.0);
    h.field("driver", driver);
    for (k, v) in env {
        h.field("env", k.as_bytes());
        h.field("env-value", v.as_bytes());
    }
    for (path, hash) in configs {
        h.field("config", path.as_bytes());
        h.field("config-hash", hash);
    }
    h.finish()
}

/// Every clippy configuration file clippy could read: in `conf_dir` when set, else in the
/// package folder (or the working directory) and each folder above it.
pub fn config_files(conf_dir: Option<PathBuf>, manifest_dir: Option<PathBuf>) -> Vec<PathBuf> {
    let start = match conf_dir.or(manifest_dir) {
        Some(d) => d,
        None => std::env::current_dir().unwrap_or_default(),
    };
    start.ancestors().flat_map(|d| CONFIG_NAMES.iter().map(move |n| d.join(n))).filter(|p| p.is_file()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_driver_is_known_by_its_name_wherever_it_lives() {
        assert!(is_driver(Path::new("/h/.rustup/toolchains/stable/bin/clippy-driver")));
        assert!(is_driver(Path::new("clippy-driver")));
        assert!(!is_driver(Path::new("/usr/bin/rustc")));
    }

    #[test]
    fn config_files_are_found_in_the_package_and_above_it_or_only_in_the_conf_dir() {
        let d = tempfile::tempdir().unwrap();
        let pkg = d.path().join("ws/crates/a");
        fs::create_dir_all(&pkg).unwrap();
        fs::write(d.path().join("ws/clippy.toml"), "msrv = \"1.70\"").unwrap();
        fs::write(pkg.join(".clippy.toml"), "").unwrap();
        let found = config_files(None, Some(pkg.clone()));
        assert_eq!(found, [pkg.join(".clippy.toml"), d.path().join("ws/clippy.toml")]);
        let conf = d.path().join("conf");
        fs::create_dir_all(&conf).unwrap();
        fs::write(conf.join("clippy.toml"), "").unwrap();
        assert_eq!(config_files(Some(conf.clone()), Some(pkg))[0], conf.join("clippy.toml"));
    }

    #[test]
    fn every_part_of_the_clippy_key_changes_it() {
        let base = Key([1; 32]);
        let env = vec![("CLIPPY_ARGS".to_string(), "-W__CLIPPY_HACKERY__clippy::pedantic".to_string())];
        let conf = vec![("ws/clippy.toml".to_string(), [3; 32])];
        let k = clippy_key(&base, &[2; 32], &env, &conf);
        assert_ne!(k, base, "never the plain rustc key");
        assert_ne!(k, clippy_key(&Key([9; 32]), &[2; 32], &env, &conf));
        assert_ne!(k, clippy_key(&base, &[9; 32], &env, &conf));
        assert_ne!(k, clippy_key(&base, &[2; 32], &[], &conf));
        let mut e2 = env.clone();
        e2[0].1 = "-D__CLIPPY_HACKERY__clippy::pedantic".into();
        assert_ne!(k, clippy_key(&base, &[2; 32], &e2, &conf), "a changed lint level");
        assert_ne!(k, clippy_key(&base, &[2; 32], &env, &[]));
        assert_ne!(k, clippy_key(&base, &[2; 32], &env, &[("ws/clippy.toml".into(), [4; 32])]));
        assert_eq!(k, clippy_key(&base, &[2; 32], &env, &conf), "stable");
    }
}

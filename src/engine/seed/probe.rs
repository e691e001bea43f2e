//! Cargo's target-info probe, and the target dir and workspace it is for.
//!
//! The first thing cargo asks `RUSTC_WRAPPER` in a target dir is
//! `rustc - --crate-name ___ --print=file-names …`, before it decides which units are fresh;
//! it keeps the answer in `<target>/.rustc_info.json`, so a target dir without that file (and
//! without any unit's fingerprint) is one cargo has not built in yet. The probe runs in the
//! directory cargo was started in; the workspace is the nearest folder up from there with
//! both `Cargo.toml` and `Cargo.lock`, and the target dir is `CARGO_TARGET_DIR` or
//! `<workspace>/target`. A target dir moved by cargo's configuration files is not guessed
//! at: seeding is skipped (a doubt is a miss).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// Whether `args` (rustc's arguments, after the program) are cargo's target-info probe.
pub fn is_probe(args: &[OsString]) -> bool {
    let s: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    let named = s.windows(2).any(|w| w[0] == "--crate-name" && w[1] == "___");
    let file_names = s.contains(&"--print=file-names") || s.windows(2).any(|w| w == ["--print", "file-names"]);
    named && file_names && s.first() == Some(&"-")
}

/// Where a probe's build goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub workspace: PathBuf,
    pub target: PathBuf,
}

/// The workspace and target dir of a probe run in `cwd`, or why they are not known.
pub fn place(
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    cargo_home: Option<&Path>,
) -> Result<Place, &'static str> {
    let workspace = cwd
        .ancestors()
        .find(|d| d.join("Cargo.toml").is_file() && d.join("Cargo.lock").is_file())
        .ok_or("no-lockfile")?
        .to_path_buf();
    if env("CARGO_BUILD_BUILD_DIR").is_some() {
        return Err("build-dir-set");
    }
    let mut configs: Vec<PathBuf> =
        cwd.ancestors().flat_map(|d| [d.join(".cargo/config.toml"), d.join(".cargo/config")]).collect();
    if let Some(home) = cargo_home {
        configs.extend([home.join("config.toml"), home.join("config")]);
    }
    for c in configs {
        if let Ok(text) = fs::read_to_string(&c) {
            if text.contains("target-dir") || text.contains("build-dir") {
                return Err("target-dir-in-config");
            }
        }
    }
    let target = match env("CARGO_TARGET_DIR").or_else(|| env("CARGO_BUILD_TARGET_DIR")).filter(|v| !v.is_empty()) {
        Some(v) => cwd.join(v),
        None => workspace.join("target"),
    };
    Ok(Place { workspace, target })
}

/// Whether cargo has not built in `target` yet: no probe answer kept and no unit's
/// fingerprint in any profile folder (`<target>/<profile>/` or `<target>/<triple>/<profile>/`).
pub fn fresh(target: &Path) -> bool {
    if target.join(".rustc_info.json").exists() {
        return false;
    }
    let Ok(top) = fs::read_dir(target) else { return true };
    for e in top.flatten() {
        let p = e.path();
        if p.join(".fingerprint").exists() {
            return false;
        }
        if let Ok(inner) = fs::read_dir(&p) {
            if inner.flatten().any(|i| i.path().join(".fingerprint").exists()) {
                return false;
            }
        }
    }
    true
}

/// The packages of a lockfile: those with a `source` (registry and git) as `<name>
/// <version>`, and the names of the others (the workspace's own).
pub fn lock_packages(lock: &str) -> (Vec<String>, Vec<String>) {
    let (mut sourced, mut local) = (Vec::new(), Vec::new());
    let mut flush = |name: &mut Option<String>, version: &mut Option<String>, source: &mut bool| {
        if let Some(n) = name.take() {
            match (*source, version.take()) {
                (true, Some(v)) => sourced.push(format!("{n} {v}")),
                _ => local.push(n),
            }
        }
        *source = false;
    };
    let (mut name, mut version, mut source) = (None, None, false);
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            flush(&mut name, &mut version, &mut source);
        } else if let Some(v) = value(line, "name") {
            name = Some(v);
        } else if let Some(v) = value(line, "version") {
            version = Some(v);
        } else if value(line, "source").is_some() {
            source = true;
        }
    }
    flush(&mut name, &mut version, &mut source);
    sourced.sort();
    local.sort();
    (sourced, local)
}

fn value(line: &str, field: &str) -> Option<String> {
    let rest = line.strip_prefix(field)?.trim_start().strip_prefix('=')?.trim();
    Some(rest.strip_prefix('"')?.strip_suffix('"')?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_probe_is_told_from_compiles() {
        assert!(is_probe(&os(&["-", "--crate-name", "___", "--print=file-names", "--crate-type", "bin"])));
        assert!(is_probe(&os(&["-", "--crate-name", "___", "--print", "file-names"])));
        assert!(!is_probe(&os(&["src/lib.rs", "--crate-name", "foo", "--print=file-names"])));
        assert!(!is_probe(&os(&["-vV"])));
    }

    #[test]
    fn the_lockfile_separates_registry_packages_from_the_workspaces() {
        let lock = "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"itoa\",\n]\n\n\
                    [[package]]\nname = \"itoa\"\nversion = \"1.0.19\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"ab\"\n";
        let (sourced, local) = lock_packages(lock);
        assert_eq!(sourced, vec!["itoa 1.0.19".to_string()]);
        assert_eq!(local, vec!["app".to_string()]);
    }

    #[test]
    fn a_target_dir_is_fresh_until_cargo_probed_or_built_there() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("target");
        assert!(fresh(&t));
        fs::create_dir_all(t.join("debug/build")).unwrap();
        assert!(fresh(&t));
        fs::create_dir_all(t.join("x86_64-unknown-linux-gnu/debug/.fingerprint")).unwrap();
        assert!(!fresh(&t));
        fs::remove_dir_all(t.join("x86_64-unknown-linux-gnu")).unwrap();
        fs::write(t.join(".rustc_info.json"), "{}").unwrap();
        assert!(!fresh(&t));
    }

    #[test]
    fn a_target_dir_set_in_cargo_config_is_not_guessed() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().join("ws");
        fs::create_dir_all(ws.join(".cargo")).unwrap();
        fs::write(ws.join("Cargo.toml"), "").unwrap();
        fs::write(ws.join("Cargo.lock"), "").unwrap();
        let none = |_: &str| None;
        assert_eq!(place(&ws, &none, None).unwrap().target, ws.join("target"));
        let set = |k: &str| (k == "CARGO_TARGET_DIR").then(|| "out".to_string());
        assert_eq!(place(&ws, &set, None).unwrap().target, ws.join("out"));
        fs::write(ws.join(".cargo/config.toml"), "[build]\ntarget-dir = \"elsewhere\"\n").unwrap();
        assert_eq!(place(&ws, &none, None), Err("target-dir-in-config"));
        assert_eq!(place(&d.path().join("nowhere"), &none, None), Err("no-lockfile"));
    }
}

//! The base key of a rustc compile: toolchain, working directory, arguments, dependency
//! contents, crate environment — everything known before compiling, hashed in a fixed,
//! documented order (docs/cache-key.md, "rustc"). Pure: the caller gathers the inputs; this
//! file only hashes them. The result and manifest keys are the engine's (`engine::keys`).

use crate::engine::keys::KeyHasher;
use crate::key::Key;

/// Everything the base key covers, gathered by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseInputs {
    pub toolchain: [u8; 32],
    pub cwd: String,
    pub input: String,
    /// Arguments in order, normalized (see args.rs).
    pub args: Vec<String>,
    /// `--cfg`/`--check-cfg`, sorted.
    pub cfgs: Vec<String>,
    /// `--extern` name and content hash (None: a bare `--extern name`).
    pub externs: Vec<(String, Option<[u8; 32]>)>,
    /// `-l static=` libraries: name and content hash (None: not found on the search path).
    pub static_libs: Vec<(String, Option<[u8; 32]>)>,
    /// Contents of a `--target` spec file, when the target is a `.json` path.
    pub target_spec: Option<[u8; 32]>,
    /// Environment variables that describe the crate, sorted by name.
    pub env: Vec<(String, String)>,
    /// What a linking compile's link can see: the linker's identity, native libraries and
    /// link-arg files by content, `LIBRARY_PATH` (label, content hash or `None` when absent).
    pub link: Vec<(String, Option<[u8; 32]>)>,
}

/// The base key.
pub fn base_key(i: &BaseInputs) -> Key {
    let mut h = KeyHasher::new("base");
    h.field("toolchain", &i.toolchain);
    h.field("cwd", i.cwd.as_bytes());
    h.field("input", i.input.as_bytes());
    for a in &i.args {
        h.field("arg", a.as_bytes());
    }
    for c in &i.cfgs {
        h.field("cfg", c.as_bytes());
    }
    for (name, hash) in &i.externs {
        h.field("extern", name.as_bytes());
        h.field("extern-hash", hash.as_ref().map(|x| &x[..]).unwrap_or(b"none"));
    }
    for (name, hash) in &i.static_libs {
        h.field("static-lib", name.as_bytes());
        h.field("static-lib-hash", hash.as_ref().map(|x| &x[..]).unwrap_or(b"none"));
    }
    h.field("target-spec", i.target_spec.as_ref().map(|x| &x[..]).unwrap_or(b"none"));
    for (k, v) in &i.env {
        h.field("env", k.as_bytes());
        h.field("env-value", v.as_bytes());
    }
    for (label, hash) in &i.link {
        h.field("link", label.as_bytes());
        h.field("link-hash", hash.as_ref().map(|x| &x[..]).unwrap_or(b"none"));
    }
    h.finish()
}

/// Whether an environment variable describes the crate (and so enters the base key).
///
/// Variables cargo sets *for the crate* are in; cargo's own settings (`CARGO_TERM_COLOR`,
/// `CARGO_TARGET_DIR`, `CARGO_MAKEFLAGS`, `CARGO_BUILD_JOBS`, `CARGO_HOME`, `CARGO` …) are out,
/// so they cannot split the cache. Any other variable the crate reads at compile time is
/// recorded by rustc in dep-info (`# env-dep:`) and enters the result key.
pub fn is_crate_env(name: &str) -> bool {
    const PREFIXES: [&str; 5] = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_", "CARGO_CFG_", "CARGO_FEATURE_"];
    const EXACT: [&str; 5] = [
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "RUSTC_BOOTSTRAP",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || EXACT.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> BaseInputs {
        BaseInputs {
            toolchain: [1; 32],
            cwd: "/w".into(),
            input: "src/lib.rs".into(),
            args: vec!["--crate-name=a".into(), "--crate-type=lib".into()],
            cfgs: vec!["--cfg=feature=\"a\"".into()],
            externs: vec![("serde".into(), Some([2; 32]))],
            static_libs: vec![("z".into(), Some([3; 32]))],
            target_spec: None,
            env: vec![("CARGO_PKG_NAME".into(), "a".into())],
            link: vec![("linker".into(), Some([6; 32]))],
        }
    }

    #[test]
    fn changing_any_byte_of_any_input_changes_the_key() {
        let k = base_key(&inputs());
        type Change = Box<dyn Fn(&mut BaseInputs)>;
        let variants: Vec<Change> = vec![
            Box::new(|i| i.toolchain[31] ^= 1),
            Box::new(|i| i.cwd.push('x')),
            Box::new(|i| i.input = "src/lib.rs2".into()),
            Box::new(|i| i.args[0].push('x')),
            Box::new(|i| i.args.swap(0, 1)),
            Box::new(|i| i.cfgs[0].push('x')),
            Box::new(|i| i.externs[0].1.as_mut().unwrap()[0] ^= 1),
            Box::new(|i| i.externs[0].1 = None),
            Box::new(|i| i.externs[0].0.push('x')),
            Box::new(|i| i.static_libs[0].1.as_mut().unwrap()[5] ^= 1),
            Box::new(|i| i.target_spec = Some([0; 32])),
            Box::new(|i| i.env[0].1.push('x')),
            Box::new(|i| i.env.push(("CARGO_FEATURE_X".into(), "1".into()))),
            Box::new(|i| i.link[0].1.as_mut().unwrap()[0] ^= 1),
            Box::new(|i| i.link.push(("lib:z".into(), None))),
        ];
        for (n, change) in variants.iter().enumerate() {
            let mut i = inputs();
            change(&mut i);
            assert_ne!(base_key(&i), k, "change {n} did not change the key");
        }
        assert_eq!(base_key(&inputs()), k, "stable");
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let mut a = inputs();
        a.args = vec!["ab".into(), "c".into()];
        let mut b = inputs();
        b.args = vec!["a".into(), "bc".into()];
        assert_ne!(base_key(&a), base_key(&b));
    }

    #[test]
    fn user_settings_are_not_crate_env() {
        for v in ["CARGO_TERM_COLOR", "CARGO_TARGET_DIR", "CARGO_MAKEFLAGS", "CARGO_BUILD_JOBS", "CARGO_HOME", "CARGO"]
        {
            assert!(!is_crate_env(v), "{v}");
        }
        for v in ["CARGO_PKG_VERSION", "CARGO_MANIFEST_DIR", "CARGO_CRATE_NAME", "CARGO_FEATURE_STD"] {
            assert!(is_crate_env(v), "{v}");
        }
    }
}

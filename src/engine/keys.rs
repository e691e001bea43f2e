//! The keys every front end shares, and the hasher they are all made with.
//!
//! Each compile has two keys (docs/cache-key.md):
//! - the **base key**: everything known before the tool runs. Each front end makes its own
//!   (`rustc::cache_key`, `build_script::key`, `cc::key`, `clippy`) with [`KeyHasher`] in a
//!   domain of its own: `base`, `build-script-base`, `cc-base`, `clippy-base`;
//! - the **result key** ([`result_key`]): the base key plus the contents of every file and the
//!   value of every variable the run read (one dependency set, a `Variant`).
//!
//! The manifest object, named by [`manifest_key`], remembers the dependency sets seen for a
//! base key (protocol/object.rs).

use std::path::Path;

use crate::key::Key;

/// Bumped whenever anything about the keys or the object format changes.
pub const FORMAT: &str = "cairn-key-v6";

/// Length-prefixed fields, so no two different field lists can hash alike.
pub struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    /// Starts a key in a domain (`base`, `manifest`, `result`).
    pub fn new(domain: &str) -> KeyHasher {
        let mut h = KeyHasher(blake3::Hasher::new());
        h.field("format", FORMAT.as_bytes());
        h.field("domain", domain.as_bytes());
        h
    }

    /// Adds one named field.
    pub fn field(&mut self, name: &str, value: &[u8]) {
        self.0.update(&(name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
    }

    /// The key.
    pub fn finish(&self) -> Key {
        Key(*self.0.finalize().as_bytes())
    }
}

/// The name of the manifest object for a base key.
pub fn manifest_key(base: &Key) -> Key {
    let mut h = KeyHasher::new("manifest");
    h.field("base", &base.0);
    h.finish()
}

/// The result key: the base key plus every source file's contents and every read variable.
/// `files` pairs each dep-info path with its content hash (None: the file is missing).
pub fn result_key(base: &Key, files: &[(String, Option<[u8; 32]>)], env: &[(String, Option<String>)]) -> Key {
    let mut h = KeyHasher::new("result");
    h.field("base", &base.0);
    for (path, hash) in files {
        h.field("source", path.as_bytes());
        h.field("source-hash", hash.as_ref().map(|x| &x[..]).unwrap_or(b"missing"));
    }
    for (k, v) in env {
        h.field("env-dep", k.as_bytes());
        match v {
            Some(v) => h.field("env-dep-value", v.as_bytes()),
            None => h.field("env-dep-unset", b""),
        }
    }
    h.finish()
}

/// The build set of a compile or build-script run (src/build_sets.rs), from the folder its
/// outputs go to: the toolchain, the profile (the folder above `deps/` or `build/`, as cargo
/// lays out its target dir) and the name of the folder that holds the target dir (the one
/// with cargo's `CACHEDIR.TAG`): the workspace's, for the usual `<workspace>/target`.
pub fn build_set(out_dir: &Path, toolchain: &[u8; 32]) -> Key {
    let target = out_dir.ancestors().take(6).find(|d| d.join("CACHEDIR.TAG").is_file());
    build_set_in(target, &profile_of(out_dir), toolchain)
}

/// The build set of the compiles of profile folder `profile` (`debug`,
/// `x86_64-unknown-linux-gnu/release`: its last part counts) in target dir `target`: what
/// [`build_set`] gives every compile there, known before the first one (the seed probe).
pub fn build_set_in(target: Option<&Path>, profile: &str, toolchain: &[u8; 32]) -> Key {
    let profile = profile.rsplit('/').next().unwrap_or("");
    let workspace = target.and_then(Path::parent).and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or("");
    crate::protocol::object::build_set_key(toolchain, profile, workspace)
}

/// The profile folder's name of a compile's output folder: the folder above `deps/` or
/// `build/`.
fn profile_of(out_dir: &Path) -> String {
    let parts: Vec<&str> = out_dir.iter().filter_map(|c| c.to_str()).collect();
    let profile = parts.iter().rposition(|c| *c == "deps" || *c == "build").and_then(|i| i.checked_sub(1));
    profile.map(|i| parts[i]).unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_names_the_build_set_its_compiles_will_name() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("ws/target");
        std::fs::create_dir_all(target.join("x86_64-unknown-linux-gnu/release/build/foo-1/out")).unwrap();
        std::fs::write(target.join("CACHEDIR.TAG"), "").unwrap();
        let tc = [7; 32];
        let debug = build_set_in(Some(&target), "debug", &tc);
        assert_eq!(build_set(&target.join("debug/deps"), &tc), debug);
        let release = build_set_in(Some(&target), "x86_64-unknown-linux-gnu/release", &tc);
        assert_eq!(build_set(&target.join("x86_64-unknown-linux-gnu/release/build/foo-1/out"), &tc), release);
        assert_ne!(debug, release);
        assert_ne!(build_set_in(Some(&t.path().join("other/target")), "debug", &tc), debug, "another workspace");
        assert_ne!(build_set_in(Some(&target), "debug", &[8; 32]), debug, "another toolchain");
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let mut a = KeyHasher::new("t");
        a.field("arg", b"ab");
        a.field("arg", b"c");
        let mut b = KeyHasher::new("t");
        b.field("arg", b"a");
        b.field("arg", b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn result_key_covers_sources_and_env_deps() {
        let base = KeyHasher::new("base").finish();
        let files = vec![("src/lib.rs".to_string(), Some([4; 32]))];
        let env = vec![("MY".to_string(), Some("1".to_string()))];
        let k = result_key(&base, &files, &env);
        assert_ne!(k, result_key(&base, &[("src/lib.rs".into(), Some([5; 32]))], &env));
        assert_ne!(k, result_key(&base, &[("src/lib.rs".into(), None)], &env));
        assert_ne!(k, result_key(&base, &files, &[("MY".into(), Some("2".into()))]));
        assert_ne!(k, result_key(&base, &files, &[("MY".into(), None)]));
        assert_ne!(k, manifest_key(&base));
    }
}

//! The base key of a build-script run: everything known before it runs. The list is mirrored
//! in docs/cache-key.md ("Build-script runs").

use std::io;
use std::path::Path;

use super::env;
use crate::engine::basedir::Rel;
use crate::engine::filehash::{hash_file, portable_hash};
use crate::engine::keys::KeyHasher;
use crate::engine::tree;
use crate::engine::{linker, toolchain};
use crate::key::Key;

/// Everything the base key covers, gathered by [`gather`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInputs {
    /// The real script binary's contents.
    pub script: [u8; 32],
    /// Every file of the package (inputs::package_digest).
    pub package: [u8; 32],
    /// The working directory (the package), checkout-relative.
    pub cwd: String,
    /// The toolchain `RUSTC` names (toolchain.rs).
    pub rustc: [u8; 32],
    /// Identities of the C and C++ compilers cc-rs would run (`None`: not installed).
    pub cc: Option<[u8; 32]>,
    pub cxx: Option<[u8; 32]>,
    /// Keyed variables (env::is_keyed), sorted, values checkout-relative.
    pub env: Vec<(String, String)>,
    /// Contents of the files under folders that `DEP_*` variables name inside this build's
    /// `build/` folder (other scripts' `OUT_DIR`s): label and hash.
    pub dep_files: Vec<(String, [u8; 32])>,
}

/// Hashes the inputs.
pub fn base_key(i: &RunInputs) -> Key {
    let mut h = KeyHasher::new("build-script-base");
    h.field("script", &i.script);
    h.field("package", &i.package);
    h.field("cwd", i.cwd.as_bytes());
    h.field("rustc", &i.rustc);
    h.field("cc", i.cc.as_ref().map(|x| &x[..]).unwrap_or(b"none"));
    h.field("cxx", i.cxx.as_ref().map(|x| &x[..]).unwrap_or(b"none"));
    for (k, v) in &i.env {
        h.field("env", k.as_bytes());
        h.field("env-value", v.as_bytes());
    }
    for (label, hash) in &i.dep_files {
        h.field("dep-file", label.as_bytes());
        h.field("dep-file-hash", hash);
    }
    h.finish()
}

/// Gathers the inputs of the run of `script` in `cwd` with `vars`, and hashes them.
/// `memo`: where toolchain and compiler identities are memoized.
pub fn gather(script: &Path, vars: &[(String, String)], cwd: &Path, rel: &Rel, memo: &Path) -> io::Result<Key> {
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let target = get("TARGET").ok_or_else(|| io::Error::other("no TARGET"))?;
    let host = get("HOST").unwrap_or(target);
    let rustc = get("RUSTC").ok_or_else(|| io::Error::other("no RUSTC"))?;
    let package = get("CARGO_MANIFEST_DIR").map(Path::new).unwrap_or(cwd);
    let compiler = |tool: &str| {
        let c = env::compiler(vars, tool, target, host);
        let prog = linker::program(&c.command)?;
        linker::linker_identity(Path::new(prog), memo).ok()
    };
    let mut keyed: Vec<(String, String)> =
        vars.iter().filter(|(k, _)| env::is_keyed(k)).map(|(k, v)| (k.clone(), rel.rel(v))).collect();
    keyed.sort();
    let inputs = RunInputs {
        script: hash_file(script)?,
        package: tree::package_digest(package)?,
        cwd: rel.rel(&cwd.display().to_string()),
        rustc: toolchain::identify(Path::new(rustc), Some(target), memo)?.digest,
        cc: compiler("CC"),
        cxx: compiler("CXX"),
        env: keyed,
        dep_files: dep_files(vars, get("OUT_DIR").map(Path::new), rel)?,
    };
    Ok(base_key(&inputs))
}

/// Files under the folders `DEP_*` variables name inside this build's `build/` folder.
fn dep_files(vars: &[(String, String)], out_dir: Option<&Path>, rel: &Rel) -> io::Result<Vec<(String, [u8; 32])>> {
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let Some(build) = out_dir.and_then(|o| o.parent()).and_then(|p| p.parent()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut deps: Vec<&(String, String)> = vars.iter().filter(|(k, _)| k.starts_with("DEP_")).collect();
    deps.sort();
    for (_, v) in deps {
        let p = Path::new(v);
        if !p.is_absolute() || !p.starts_with(build) || !p.exists() {
            continue;
        }
        let files = if p.is_dir() { tree::walk(p, false)? } else { vec![p.to_path_buf()] };
        for f in files {
            if let Ok(h) = portable_hash(&f, rel) {
                out.push((rel.rel(&f.display().to_string()), h));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> RunInputs {
        RunInputs {
            script: [1; 32],
            package: [2; 32],
            cwd: "/reg/zstd-sys".into(),
            rustc: [3; 32],
            cc: Some([4; 32]),
            cxx: None,
            env: vec![("CFLAGS".into(), "-O2".into())],
            dep_files: vec![("/t/build/z-1/out/include/zlib.h".into(), [5; 32])],
        }
    }

    #[test]
    fn changing_any_input_changes_the_key() {
        let k = base_key(&inputs());
        type Change = Box<dyn Fn(&mut RunInputs)>;
        let changes: Vec<Change> = vec![
            Box::new(|i| i.script[0] ^= 1),
            Box::new(|i| i.package[0] ^= 1),
            Box::new(|i| i.cwd.push('x')),
            Box::new(|i| i.rustc[0] ^= 1),
            Box::new(|i| i.cc = None),
            Box::new(|i| i.cxx = Some([4; 32])),
            Box::new(|i| i.env[0].1.push('x')),
            Box::new(|i| i.env.push(("CC".into(), "clang".into()))),
            Box::new(|i| i.dep_files[0].1[0] ^= 1),
        ];
        for (n, c) in changes.iter().enumerate() {
            let mut i = inputs();
            c(&mut i);
            assert_ne!(base_key(&i), k, "change {n}");
        }
        assert_eq!(base_key(&inputs()), k);
    }
}

//! What a link can see, for crates that link (bin, proc-macro, dylib, cdylib): the linker's
//! identity, the native libraries `-l` names, files passed with `-C link-arg(s)`, the program
//! `-fuse-ld=` picks, and the variables the driver and linker read (`LIBRARY_PATH`,
//! `COMPILER_PATH`, `GCC_EXEC_PREFIX`, `LD_RUN_PATH`). Each enters the key by
//! content. The rlibs of the whole crate graph are added by graph.rs.
//!
//! The linker's identity is `engine::linker`'s. What a link can still depend on that the key
//! does not see is in docs/cache-key.md.

use std::io;
use std::path::{Path, PathBuf};

use super::args::Invocation;
use crate::engine::filehash::hash_file;
use crate::engine::linker::linker_identity;
use crate::engine::toolchain::resolve_program;

/// The native library file `file` (`libz.a`) where the compile's native search path finds it.
pub fn find_native(inv: &Invocation, file: &str) -> Option<PathBuf> {
    inv.native_paths.iter().map(|d| Path::new(d).join(file)).find(|p| p.is_file())
}

/// Labelled content hashes of the link's inputs, in a fixed order.
pub fn link_inputs(inv: &Invocation, memo_dir: &Path) -> io::Result<Vec<(String, Option<[u8; 32]>)>> {
    let linker = inv.linker.clone().unwrap_or_else(|| "cc".into());
    let mut out = vec![("linker".to_string(), Some(linker_identity(Path::new(&linker), memo_dir)?))];
    for name in &inv.libs {
        for file in [format!("lib{name}.a"), format!("lib{name}.so")] {
            let found = find_native(inv, &file);
            out.push((format!("lib:{file}"), found.map(|p| hash_file(&p)).transpose()?));
        }
    }
    for arg in &inv.link_args {
        for tok in arg.split_whitespace() {
            let p = Path::new(tok);
            if p.is_file() {
                out.push((format!("link-arg-file:{tok}"), Some(hash_file(p)?)));
            }
            // `-fuse-ld=lld` / `=mold` / a path: the linker the driver will really run.
            if let Some(ld) = tok.strip_prefix("-fuse-ld=").or_else(|| tok.strip_prefix("-Wl,-fuse-ld=")) {
                let found = fuse_ld(ld);
                out.push((format!("fuse-ld:{ld}"), found.map(|p| hash_file(&p)).transpose()?));
            }
        }
    }
    // What the driver and the linker read from the environment: search paths for libraries,
    // for the driver's own programs (collect2, ld), and the run path written into the binary.
    for var in LINK_ENV {
        let v = std::env::var(var).ok().map(|v| *blake3::hash(v.as_bytes()).as_bytes());
        out.push((format!("env:{var}"), v));
    }
    Ok(out)
}

/// Variables the C driver or the linker read that change what gets linked. Not
/// `LD_LIBRARY_PATH`: cargo sets it for every rustc call to paths inside the target dir, and
/// ld only uses it to check the dependencies of shared libraries, not to pick what it links.
const LINK_ENV: [&str; 4] = ["LIBRARY_PATH", "GCC_EXEC_PREFIX", "COMPILER_PATH", "LD_RUN_PATH"];

/// The program `-fuse-ld=NAME` selects: a path as it is, else `ld.NAME` on PATH (what gcc and
/// clang look for), else `NAME` itself.
fn fuse_ld(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|p| p.is_file());
    }
    resolve_program(Path::new(&format!("ld.{name}"))).or_else(|_| resolve_program(Path::new(name))).ok()
}

//! Finding what a rustc compile wrote into its `--out-dir`.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::protocol::object::OutputFile;

/// Every file in `out_dir` that rustc wrote for this crate: `<crate><extra>` itself (a
/// binary), or names that start with `lib<crate><extra>.` or `<crate><extra>.`, modified since
/// the compile started.
pub fn collect_outputs(
    out_dir: &Path,
    crate_name: &str,
    extra: &str,
    since: SystemTime,
) -> io::Result<Vec<OutputFile>> {
    let bin = format!("{crate_name}{extra}");
    let stems = [format!("lib{bin}."), format!("{bin}.")];
    let mut files = Vec::new();
    for e in fs::read_dir(out_dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name != bin && !stems.iter().any(|s| name.starts_with(s.as_str())) {
            continue;
        }
        // cairn's own dependency list of the rlib (graph.rs) names this machine's paths.
        if name.ends_with(&format!(".{}", super::graph::EXT)) {
            continue;
        }
        let meta = e.metadata()?;
        // Allow for coarse timestamps: a file older than the compile's start by more than a
        // second is a leftover of an earlier build, not ours.
        if !meta.is_file() || meta.modified()? + Duration::from_secs(1) < since {
            continue;
        }
        let bytes = fs::read(e.path())?;
        let hash = *blake3::hash(&bytes).as_bytes();
        files.push(OutputFile { name, mode: meta.permissions().mode() & 0o7777, hash, bytes });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

//! Finding what a rustc compile wrote into its `--out-dir`: each output is read once, a chunk
//! at a time through one buffer, to hash it and to see which roots' paths it names, and stays
//! in its file until the object is written (protocol/result_writer.rs). Only the dep-info is
//! kept in memory, to be parsed.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::engine::basedir::RootScan;
use crate::protocol::object::{Body, FileStamp, OutputFile};

/// How much of an output is read at once: a buffer on the stack, whose pages are touched once
/// (a buffer from the heap this large is a fresh mapping each time, faulted in and unmapped).
const CHUNK: usize = 64 << 10;

/// Every file in `out_dir` that rustc wrote for this crate: `<crate><extra>` itself (a
/// binary), or names that start with `lib<crate><extra>.` or `<crate><extra>.`, modified since
/// the compile started, by name, each with the placeholders of the roots whose paths it names
/// (found by `scan`; none for the one named `dep_info`, which is read into memory).
pub fn collect_outputs(
    out_dir: &Path,
    crate_name: &str,
    extra: &str,
    since: SystemTime,
    dep_info: &str,
    scan: &mut RootScan<'_>,
) -> io::Result<Vec<(OutputFile, Vec<&'static str>)>> {
    let bin = format!("{crate_name}{extra}");
    let stems = [format!("lib{bin}."), format!("{bin}.")];
    let mut files = Vec::new();
    let mut buf = [0u8; CHUNK];
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
        let mode = meta.permissions().mode() & 0o7777;
        if name == dep_info {
            let bytes = fs::read(e.path())?;
            let hash = *blake3::hash(&bytes).as_bytes();
            files.push((OutputFile { name, mode, hash, body: Body::Bytes(bytes) }, Vec::new()));
            continue;
        }
        let mut file = fs::File::open(e.path())?;
        let stamp = FileStamp::of(&file.metadata()?);
        let r = scan.read_file(&mut file, &mut buf, |_| true)?.ok_or_else(|| io::Error::other("a read stopped"))?;
        let (hash, len, found) = (r.hash, r.len, r.found);
        if len != stamp.len {
            return Err(io::Error::other(format!("{name} changed while it was read")));
        }
        let body = Body::File { path: e.path(), stamp };
        files.push((OutputFile { name, mode, hash, body }, found));
    }
    files.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(files)
}

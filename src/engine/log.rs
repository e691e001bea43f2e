//! One line per compile in the wrapper's log: when, which crate, which key, what happened, how
//! long. `CAIRN_LOG=FILE` chooses the file; the default is `<store>/cairn-rustc.log`.
//!
//! Columns, tab-separated: unix time, crate name, result key (the name to `rm` from the
//! mount; `-` when none), outcome (`hit`, `miss`, `not-cacheable:<reason>`, `error:<what>`),
//! milliseconds, compile milliseconds saved (hits) or spent (misses), kind (`rustc`,
//! `build-script`, `cc`; see `report::Kind`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::key::Key;

/// Where the log goes.
pub fn log_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_LOG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    Some(super::mount::store_dir()?.join("cairn-rustc.log"))
}

/// Appends one line to the log at its usual place ([`log_path`]).
pub fn record_kind(
    kind: crate::protocol::report::Kind,
    crate_name: &str,
    key: Option<&Key>,
    outcome: &str,
    took: Duration,
    compile: Option<Duration>,
) {
    record_in(log_path().as_deref(), kind, crate_name, key, outcome, took, compile)
}

/// Appends one line to the log at `path` (a single `write` with `O_APPEND`, so lines of
/// concurrent wrappers do not interleave). Logging never fails a build.
pub fn record_in(
    path: Option<&Path>,
    kind: crate::protocol::report::Kind,
    crate_name: &str,
    key: Option<&Key>,
    outcome: &str,
    took: Duration,
    compile: Option<Duration>,
) {
    let Some(path) = path else { return };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let line = format!(
        "{}.{:03}\t{}\t{}\t{}\t{:.1}\t{}\t{}\n",
        now.as_secs(),
        now.subsec_millis(),
        crate_name,
        key.map(|k| k.to_hex()).unwrap_or_else(|| "-".into()),
        outcome,
        took.as_secs_f64() * 1000.0,
        compile.map(|c| format!("{:.1}", c.as_secs_f64() * 1000.0)).unwrap_or_else(|| "-".into()),
        kind.as_str(),
    );
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

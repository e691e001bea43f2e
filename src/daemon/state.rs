//! What the daemon keeps across restarts besides the store's own index: the "since zero"
//! statistics and the entry metadata (so `by-crate/` needs no re-reading of headers); and, as
//! objects of the store, the build sets (src/build_sets.rs).
//! Written at clean shutdown and every 30 s; a lost file costs nothing but a re-read
//! (metadata) or the counters since the last save (stats).

use std::path::{Path, PathBuf};

use crate::fs::CacheFs;
use crate::key::Key;
use crate::protocol::object::EntryMeta;
use crate::stats::Stats;
use crate::store::Store;

fn paths(store_dir: &Path) -> (PathBuf, PathBuf) {
    let v1 = store_dir.join(crate::store::disk::LAYOUT_VERSION);
    (v1.join("stats.bin"), v1.join("entries.bin"))
}

/// Loads saved state into a fresh filesystem.
pub fn load<S: Store>(fs: &CacheFs<S>, store_dir: &Path) {
    let (stats, entries) = paths(store_dir);
    if let Some(s) = std::fs::read(stats).ok().and_then(|b| bincode::deserialize::<Stats>(&b).ok()) {
        fs.restore_stats(s);
    }
    if let Some(e) = std::fs::read(entries).ok().and_then(|b| bincode::deserialize::<Vec<(Key, EntryMeta)>>(&b).ok()) {
        fs.restore_entries(e);
    }
}

/// Saves state (temp file, then rename).
pub fn save<S: Store>(fs: &CacheFs<S>, store_dir: &Path) {
    // Build sets are objects (so they reach the bucket); before a shutdown's upload drain.
    fs.save_build_sets();
    let (stats, entries) = paths(store_dir);
    write(&stats, bincode::serialize(&fs.stats_snapshot()).ok());
    write(&entries, bincode::serialize(&fs.entries_snapshot()).ok());
}

fn write(path: &Path, bytes: Option<Vec<u8>>) {
    let Some(bytes) = bytes else { return };
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

//! What the engine needs of the cache: read an object, commit one, remove one, report an
//! outcome. [`super::door::Door`] is the real one (the mount, or the daemon's socket where
//! there is no FUSE); tests use a memory cache (engine/tests.rs).

use std::io;

use crate::key::Key;
use crate::protocol::object::CompileResult;
use crate::protocol::report::Event;

/// How the engine reaches the cache. Every failure to read is a miss (`None`): a read never
/// fails a build.
pub trait Cache {
    /// The object's bytes, checked by the daemon against their checksum; `None` when absent or
    /// unreadable.
    fn get(&self, key: &Key) -> Option<Vec<u8>>;
    /// The object, as the door gives it: a descriptor of its file (checked by the daemon,
    /// read without taking it whole into memory: protocol/result_file.rs), or its bytes.
    fn open(&self, key: &Key) -> Option<Fetched> {
        self.get(key).map(Fetched::Bytes)
    }
    /// Commits bytes under a key. `replace` swaps out an existing object with different bytes
    /// (manifests); a result is never replaced: the first writer's bytes stay.
    fn put(&self, key: &Key, bytes: &[u8], replace: bool) -> io::Result<()>;
    /// Commits a result (never replacing one), then, once it is committed, `then`: the
    /// manifest that names it, replacing the one there (through the socket both go in one
    /// request, so a miss stores in one round trip). Says how many bytes the result's object
    /// has. The doors hand over or stream its outputs from their files
    /// (protocol/result_writer.rs); this default encodes it in memory first.
    fn put_result(&self, key: &Key, result: &CompileResult, then: Option<(&Key, &[u8])>) -> io::Result<u64> {
        let bytes = result.encode()?;
        self.put(key, &bytes, false)?;
        if let Some((k, b)) = then {
            self.put(k, b, true)?;
        }
        Ok(bytes.len() as u64)
    }
    /// Removes a damaged object, so the next store can replace it.
    fn remove(&self, key: &Key);
    /// Tells the daemon what happened (stats, build sets); never fails.
    fn report(&self, events: &[Event]);
}

/// An object as [`Cache::open`] gives it.
pub enum Fetched {
    Bytes(Vec<u8>),
    File(std::fs::File),
}

//! The engine's door into the cache: read an object, commit one, remove one, report an
//! outcome. [`MountDir`] goes through the FUSE mount with ordinary file calls; tests use a
//! memory door (engine/tests.rs). A door other than the mount (a transport where FUSE cannot be
//! used) is one more implementation of [`Cache`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::mount;
use crate::key::Key;
use crate::protocol::names::temp_name_for;
use crate::protocol::report::{self, Event};

/// How the engine reaches the cache. Every failure to read is a miss (`None`): a read never
/// fails a build.
pub trait Cache {
    /// The object's bytes, checked by the daemon against their checksum; `None` when absent or
    /// unreadable.
    fn get(&self, key: &Key) -> Option<Vec<u8>>;
    /// Commits bytes under a key. `replace` swaps out an existing object with different bytes
    /// (manifests); a result is never replaced: the first writer's bytes stay.
    fn put(&self, key: &Key, bytes: &[u8], replace: bool) -> io::Result<()>;
    /// Removes a damaged object, so the next store can replace it.
    fn remove(&self, key: &Key);
    /// Tells the daemon what happened (stats, build sets); never fails.
    fn report(&self, events: &[Event]);
}

/// The cache through its mount point.
pub struct MountDir(pub PathBuf);

impl MountDir {
    /// The mount, starting the daemon when there is none (unless `CAIRN_AUTOSTART=0`).
    pub fn find_or_start() -> Result<MountDir, String> {
        mount::find_or_start().map(MountDir)
    }

    /// The mount if it is live now; never starts a daemon.
    pub fn live() -> Option<MountDir> {
        mount::mountpoint().filter(|m| mount::probe(m) == mount::Probe::Live).map(MountDir)
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.0.join(key.to_hex())
    }
}

impl Cache for MountDir {
    fn get(&self, key: &Key) -> Option<Vec<u8>> {
        match fs::read(self.path(key)) {
            Ok(b) => Some(b),
            Err(e) => {
                if e.raw_os_error() == Some(libc::ENOTCONN) {
                    mount::warn_once("the cairn mount stopped answering (daemon killed?)");
                }
                None
            }
        }
    }

    fn put(&self, key: &Key, bytes: &[u8], replace: bool) -> io::Result<()> {
        put_file(&self.0, key, bytes, replace)
    }

    fn remove(&self, key: &Key) {
        let _ = fs::remove_file(self.path(key));
    }

    fn report(&self, events: &[Event]) {
        report::send_all(&self.0, events);
    }
}

/// Commits bytes under a key in a folder that speaks the mount's protocol: write a temporary,
/// rename it onto the key.
fn put_file(dir: &Path, key: &Key, bytes: &[u8], replace: bool) -> io::Result<()> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let tmp = dir.join(temp_name_for(key, std::process::id(), nanos));
    let dest = dir.join(key.to_hex());
    let result = (|| {
        fs::write(&tmp, bytes)?;
        match fs::rename(&tmp, &dest) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && replace => {
                // Another dependency set was recorded first; ours is newer. A reader that looks
                // in between sees no manifest: a miss, never a wrong hit.
                let _ = fs::remove_file(&dest);
                fs::rename(&tmp, &dest)
            }
            // Someone stored different bytes for the same result key (a compile that is not
            // bit-for-bit reproducible): theirs stays, ours is dropped.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    })();
    let _ = fs::remove_file(&tmp);
    result
}

//! The commit protocol: renaming a temporary onto a key makes it an object; temporaries can
//! also be renamed among themselves; abandoned temporaries are reaped. The rules and errnos
//! are in docs/mount.md.

use std::ffi::{OsStr, OsString};
use std::sync::Arc;
use std::time::Duration;

use super::{entries, CacheFs, FsError, Handle, Node, BY_CRATE, CAIRN_DIR};
use crate::key::Key;
use crate::protocol::names::{classify, Name, NAME_RULE};
use crate::store::{Committed, Store, TempWrite};

/// How long a rename waits for the temporary's writers to close it. The kernel sends RELEASE
/// asynchronously after `close()`, so a rename can arrive just before it.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

impl<S: Store> CacheFs<S> {
    /// Renames. Renaming a temporary onto a key commits it; nothing else may change a key.
    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        noreplace: bool,
    ) -> Result<(), FsError> {
        if let Some(e) = self.special_parent(parent, "rename").or_else(|| self.special_parent(newparent, "rename")) {
            return Err(e);
        }
        Self::check_root(parent)?;
        Self::check_root(newparent)?;
        if classify(name) == Name::Invalid && [CAIRN_DIR, BY_CRATE].iter().any(|n| name == *n || newname == *n) {
            return Err(FsError::ReadOnly);
        }
        match (classify(name), classify(newname)) {
            (Name::Temp(_), Name::Object(key)) => self.commit(name, key, noreplace),
            (Name::Temp(_), Name::Temp(_)) => self.rename_temp(name, newname, noreplace),
            (Name::Object(a), Name::Object(b)) if a == b => {
                self.store.stat(&a)?.ok_or(FsError::NotFound)?;
                Ok(())
            }
            (Name::Object(key), _) => {
                self.store.stat(&key)?.ok_or(FsError::NotFound)?;
                Err(FsError::Immutable)
            }
            (Name::Temp(_), Name::Invalid) => {
                tracing::warn!(name = ?newname, "refused to rename onto a bad name: {NAME_RULE}");
                Err(FsError::InvalidName)
            }
            (Name::Invalid, _) => Err(FsError::NotFound),
        }
    }

    fn rename_temp(&self, from: &OsStr, to: &OsStr, noreplace: bool) -> Result<(), FsError> {
        let mut names = self.names();
        let from_committing = names.temps.get(from).ok_or(FsError::NotFound)?.committing;
        if from == to {
            return Ok(());
        }
        // A committing temporary is at work in the store, without the names lock; moving it
        // away, or replacing it, would take it from under its commit.
        if from_committing {
            return Err(FsError::Busy);
        }
        if let Some(old) = names.temps.get(to) {
            if noreplace {
                return Err(FsError::Exists);
            }
            if old.committing {
                return Err(FsError::Busy);
            }
            let old = names.temps.remove(to).expect("checked");
            names.nodes.remove(&old.ino);
            self.store.discard(&old.temp);
        }
        let t = names.temps.remove(from).expect("checked");
        names.nodes.insert(t.ino, Node::Temp(to.to_owned()));
        names.temps.insert(to.to_owned(), t);
        // Open handles keep their old name for bookkeeping; fix them.
        drop(names);
        for h in self.handles().values_mut() {
            if let Handle::Temp { name, .. } = h {
                if name == from {
                    *name = to.to_owned();
                }
            }
        }
        Ok(())
    }

    fn commit(&self, name: &OsStr, key: Key, noreplace: bool) -> Result<(), FsError> {
        // Mark the temporary as committing (no new writers), then wait for its writers to go.
        let (temp, sum) = {
            let mut names = self.names();
            let t = names.temps.get_mut(name).ok_or(FsError::NotFound)?;
            if t.committing {
                return Err(FsError::Busy);
            }
            t.committing = true;
            let deadline = std::time::Instant::now() + RELEASE_WAIT;
            loop {
                let t = names.temps.get(name).ok_or(FsError::NotFound)?;
                if t.writers == 0 {
                    break (Arc::clone(&t.temp), t.sum);
                }
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    if let Some(t) = names.temps.get_mut(name) {
                        t.committing = false;
                    }
                    tracing::warn!(?name, %key, "refused to commit a temporary that is still open for writing; close it first");
                    return Err(FsError::Busy);
                }
                names = self.released.wait_timeout(names, left).unwrap_or_else(|p| p.into_inner()).0;
            }
        };
        // What the entry is, from its header, while the bytes are still the temporary's.
        let meta = entries::read_meta(|off, len| temp.read_at(off, len));
        let result = if noreplace && self.store.stat(&key)?.is_some() {
            Err(FsError::Exists)
        } else {
            match sum {
                Some(sum) => self.store.commit_hashed(&temp, &key, sum),
                None => self.store.commit(&temp, &key),
            }
            .map_err(FsError::from)
        };
        let mut names = self.names();
        // `unlink` and `rename` refuse a committing temporary, so it is still under its name;
        // should a path forget that, the commit still ends (the object is in the store) rather
        // than panic, and a new temporary that took the name is left alone.
        let ours = names.temps.get(name).is_some_and(|t| Arc::ptr_eq(&t.temp, &temp));
        match result {
            Ok(outcome) => {
                if ours {
                    let t = names.temps.remove(name).expect("found above, under the same lock");
                    names.nodes.insert(t.ino, Node::Object(key));
                    names.key_ino.entry(key).or_insert(t.ino);
                } else {
                    tracing::warn!(?name, %key, "bug: the temporary left its name while it was committing; committed it anyway");
                }
                drop(names);
                self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(key, meta);
                match outcome {
                    Committed::New { meta, evicted } => {
                        tracing::debug!(%key, size = meta.size, "committed");
                        for k in &evicted {
                            tracing::info!(key = %k, "evicted to stay within the size limit");
                            self.invalidate(k);
                        }
                    }
                    Committed::AlreadyPresent(_) => {
                        tracing::debug!(%key, "commit of identical bytes; kept the existing object")
                    }
                }
                Ok(())
            }
            Err(e) => {
                if let Some(t) = names.temps.get_mut(name).filter(|_| ours) {
                    t.committing = false;
                }
                tracing::warn!(%key, errno = e.errno(), "commit failed: {e}");
                Err(e)
            }
        }
    }

    /// Records the BLAKE3 of a temporary's bytes, taken by the one writer that wrote them all
    /// in order (`put_bytes`); kept only if nobody else ever opened it.
    pub(super) fn note_temp_sum(&self, name: &OsStr, sum: [u8; 32]) {
        if let Some(t) = self.names().temps.get_mut(name).filter(|t| t.opened == 1 && !t.committing) {
            t.sum = Some(sum);
        }
    }

    /// Deletes temporaries that no one has open and no one touched for `max_idle`: their
    /// writers are gone. Returns how many.
    pub fn reap_idle_temps(&self, now_ns: u64, max_idle: Duration) -> usize {
        let mut names = self.names();
        let dead: Vec<OsString> = names
            .temps
            .iter()
            .filter(|(_, t)| {
                t.opens == 0 && !t.committing && now_ns.saturating_sub(t.last_active_ns) >= max_idle.as_nanos() as u64
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in &dead {
            if let Some(t) = names.temps.remove(n) {
                names.nodes.remove(&t.ino);
                self.store.discard(&t.temp);
            }
        }
        dead.len()
    }
}

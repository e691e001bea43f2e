//! A store wrapper that injects failures, so tests can check that every fault reaches the
//! caller as a clear error and loses nothing, and can hold a commit open, so tests can act on
//! the filesystem while one is in progress.

use std::io;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Committed, ObjectMeta, Store, StoreError, Usage};
use crate::key::Key;

/// Which operation to break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `open` fails with this errno.
    Open(i32),
    /// `create_temp` fails with this errno.
    CreateTemp(i32),
    /// `commit` fails with this errno (ENOSPC: a full disk).
    Commit(i32),
    /// `remove` fails with this errno.
    Remove(i32),
    /// `open` panics: a bug below the filesystem, for tests that a panic costs one request.
    PanicOnOpen,
    /// `commit` waits, before doing anything, until this fault is disarmed: the filesystem's
    /// commit stays in progress while a test does something else, with no timing guesses.
    /// [`FaultyStore::wait_for_held_commit`] says when a commit is waiting.
    HoldCommit,
}

/// Wraps a store; each armed fault fires on every call until disarmed.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    state: Mutex<State>,
    /// Signalled whenever `state` changes, for held commits and the tests waiting on them.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    faults: Vec<Fault>,
    /// How many commits are waiting on [`Fault::HoldCommit`] now.
    held: usize,
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner` with no faults armed.
    pub fn new(inner: S) -> FaultyStore<S> {
        FaultyStore { inner, state: Mutex::default(), changed: Condvar::new() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms a fault.
    pub fn arm(&self, fault: Fault) {
        self.state().faults.push(fault);
        self.changed.notify_all();
    }

    /// Disarms every fault, and lets held commits go on.
    pub fn heal(&self) {
        self.state().faults.clear();
        self.changed.notify_all();
    }

    /// Blocks until a commit is waiting on [`Fault::HoldCommit`].
    pub fn wait_for_held_commit(&self) {
        let s = self.state();
        drop(self.changed.wait_while(s, |s| s.held == 0).unwrap_or_else(|p| p.into_inner()));
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self, pick: impl Fn(Fault) -> Option<i32>) -> Result<(), StoreError> {
        match self.state().faults.iter().find_map(|f| pick(*f)) {
            Some(errno) => {
                Err(StoreError::Io { context: "injected fault", source: io::Error::from_raw_os_error(errno) })
            }
            None => Ok(()),
        }
    }
}

impl<S: Store> Store for FaultyStore<S> {
    type Reader = S::Reader;
    type Temp = S::Temp;

    fn stat(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.stat(key)
    }
    fn stat_local(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.stat_local(key)
    }
    fn list(&self) -> Result<Vec<(Key, ObjectMeta)>, StoreError> {
        self.inner.list()
    }
    fn keys(&self) -> Result<Vec<Key>, StoreError> {
        self.inner.keys()
    }
    fn open(&self, key: &Key) -> Result<Option<S::Reader>, StoreError> {
        if self.state().faults.contains(&Fault::PanicOnOpen) {
            panic!("injected panic in open");
        }
        self.check(|f| if let Fault::Open(e) = f { Some(e) } else { None })?;
        self.inner.open(key)
    }
    fn create_temp(&self) -> Result<S::Temp, StoreError> {
        self.check(|f| if let Fault::CreateTemp(e) = f { Some(e) } else { None })?;
        self.inner.create_temp()
    }
    fn commit(&self, temp: &S::Temp, key: &Key) -> Result<Committed, StoreError> {
        let mut s = self.state();
        if s.faults.contains(&Fault::HoldCommit) {
            s.held += 1;
            self.changed.notify_all();
            s = self
                .changed
                .wait_while(s, |s| s.faults.contains(&Fault::HoldCommit))
                .unwrap_or_else(|p| p.into_inner());
            s.held -= 1;
        }
        drop(s);
        self.check(|f| if let Fault::Commit(e) = f { Some(e) } else { None })?;
        self.inner.commit(temp, key)
    }
    fn discard(&self, temp: &S::Temp) {
        self.inner.discard(temp)
    }
    fn remove(&self, key: &Key) -> Result<bool, StoreError> {
        self.check(|f| if let Fault::Remove(e) = f { Some(e) } else { None })?;
        self.inner.remove(key)
    }
    fn usage(&self) -> Usage {
        self.inner.usage()
    }
    fn pin(&self, key: &Key) -> bool {
        self.inner.pin(key)
    }
    fn unpin(&self, key: &Key) {
        self.inner.unpin(key)
    }
    fn persist(&self) -> Result<(), StoreError> {
        self.inner.persist()
    }
}

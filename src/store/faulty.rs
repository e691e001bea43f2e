//! A store wrapper that injects failures, so tests can check that every fault reaches the
//! caller as a clear error and loses nothing.

use std::io;
use std::sync::Mutex;

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
}

/// Wraps a store; each armed fault fires on every call until disarmed.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    faults: Mutex<Vec<Fault>>,
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner` with no faults armed.
    pub fn new(inner: S) -> FaultyStore<S> {
        FaultyStore { inner, faults: Mutex::new(Vec::new()) }
    }

    /// Arms a fault.
    pub fn arm(&self, fault: Fault) {
        self.faults.lock().unwrap().push(fault);
    }

    /// Disarms every fault.
    pub fn heal(&self) {
        self.faults.lock().unwrap().clear();
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self, pick: impl Fn(Fault) -> Option<i32>) -> Result<(), StoreError> {
        match self.faults.lock().unwrap_or_else(|p| p.into_inner()).iter().find_map(|f| pick(*f)) {
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
        if self.faults.lock().unwrap_or_else(|p| p.into_inner()).contains(&Fault::PanicOnOpen) {
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

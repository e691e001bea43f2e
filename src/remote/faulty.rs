//! A remote wrapper that fails (or stalls) on demand, for tests of the tiered store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use super::{Found, Remote, RemoteError, RemoteErrorKind};
use crate::key::Key;

/// Wraps a remote; while a fault is armed every call fails with it; while stalled, calls wait.
#[derive(Debug)]
pub struct FaultyRemote<R> {
    inner: R,
    state: Mutex<(Option<RemoteErrorKind>, bool)>,
    /// A fault of puts and deletes only (a key that may read but not write).
    write_fault: Mutex<Option<RemoteErrorKind>>,
    resumed: Condvar,
    calls: AtomicU64,
}

impl<R: Remote> FaultyRemote<R> {
    /// Wraps `inner`, healthy.
    pub fn new(inner: R) -> FaultyRemote<R> {
        FaultyRemote {
            inner,
            state: Mutex::new((None, false)),
            write_fault: Mutex::new(None),
            resumed: Condvar::new(),
            calls: AtomicU64::new(0),
        }
    }
    /// Every call fails with `kind` until [`heal`](Self::heal).
    pub fn fail(&self, kind: RemoteErrorKind) {
        self.state.lock().unwrap().0 = Some(kind);
    }
    /// Puts and deletes fail with `kind` until [`heal`](Self::heal); reads work.
    pub fn fail_writes(&self, kind: RemoteErrorKind) {
        *self.write_fault.lock().unwrap() = Some(kind);
    }
    /// Calls wait until [`heal`](Self::heal) (a stalled server).
    pub fn stall(&self) {
        self.state.lock().unwrap().1 = true;
    }
    /// Back to normal.
    pub fn heal(&self) {
        *self.state.lock().unwrap() = (None, false);
        *self.write_fault.lock().unwrap() = None;
        self.resumed.notify_all();
    }
    /// The wrapped remote.
    pub fn inner(&self) -> &R {
        &self.inner
    }
    /// How many calls reached this remote.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
    fn gate(&self) -> Result<(), RemoteError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock().unwrap();
        while s.1 {
            s = self.resumed.wait(s).unwrap();
        }
        match s.0 {
            Some(kind) => Err(RemoteError::new(kind, "injected fault")),
            None => Ok(()),
        }
    }
    fn gate_write(&self) -> Result<(), RemoteError> {
        self.gate()?;
        match *self.write_fault.lock().unwrap() {
            Some(kind) => Err(RemoteError::new(kind, "injected write fault")),
            None => Ok(()),
        }
    }
}

impl<R: Remote> Remote for FaultyRemote<R> {
    fn get_into(&self, key: &Key, out: &mut dyn std::io::Write) -> Result<Option<Found>, RemoteError> {
        self.gate()?;
        self.inner.get_into(key, out)
    }
    fn put(
        &self,
        key: &Key,
        bytes: &[u8],
        checksum: &[u8; 32],
        signature: Option<&[u8; 32]>,
    ) -> Result<(), RemoteError> {
        self.gate_write()?;
        self.inner.put(key, bytes, checksum, signature)
    }
    fn delete(&self, key: &Key) -> Result<(), RemoteError> {
        self.gate_write()?;
        self.inner.delete(key)
    }
}

//! How the remote is doing: down for a while after an unreachable call, each kind of failure
//! explained once in the log, and the current problem kept for `cairn stats` until a call
//! succeeds.

use std::time::Instant;

use super::*;

/// The remote's state as calls find it.
pub(super) struct Health {
    pub(super) down_until: Mutex<Option<Instant>>,
    pub(super) explained: Mutex<HashSet<RemoteErrorKind>>,
    /// The latest failure, explained; cleared by a call that succeeds.
    pub(super) problem: Mutex<Option<String>>,
    /// A refusal to write from a bucket that reads fine (a read-only key), explained; cleared
    /// only by a write that succeeds, since the reads that succeed meanwhile do not fix it.
    pub(super) write_problem: Mutex<Option<String>>,
}

impl Health {
    pub(super) fn new() -> Health {
        Health {
            down_until: Mutex::new(None),
            explained: Mutex::new(HashSet::new()),
            problem: Mutex::new(None),
            write_problem: Mutex::new(None),
        }
    }
}

impl<L: Store, R: Remote> Shared<L, R> {
    pub(super) fn is_down(&self) -> bool {
        lock(&self.health.down_until).is_some_and(|t| Instant::now() < t)
    }

    /// Logs a failure's explanation once per kind; an unreachable remote is left alone a while.
    pub(super) fn note(&self, e: &RemoteError) {
        let text = e.explain(&self.label.bucket, &self.label.endpoint);
        let slot =
            if e.kind == RemoteErrorKind::WriteDenied { &self.health.write_problem } else { &self.health.problem };
        *lock(slot) = Some(text.clone());
        if lock(&self.health.explained).insert(e.kind) {
            tracing::warn!("{text}");
        } else {
            tracing::debug!("remote call failed: {e}");
        }
        if matches!(e.kind, RemoteErrorKind::Unreachable | RemoteErrorKind::Tls) {
            *lock(&self.health.down_until) = Some(Instant::now() + DOWN_FOR);
        }
    }

    /// A call succeeded: whatever was wrong with reaching the bucket is over.
    pub(super) fn healthy(&self) {
        let mut p = lock(&self.health.problem);
        if p.take().is_some() {
            tracing::info!("S3 calls succeed again");
        }
    }

    /// A write succeeded: writes are allowed again too.
    pub(super) fn healthy_write(&self) {
        self.healthy();
        if lock(&self.health.write_problem).take().is_some() {
            tracing::info!("S3 accepts writes again");
        }
    }

    /// What is wrong now, reading first.
    pub(super) fn current_problem(&self) -> Option<String> {
        lock(&self.health.problem).clone().or_else(|| lock(&self.health.write_problem).clone())
    }
}

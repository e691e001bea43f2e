//! cairn: a build cache for Rust that lives in a filesystem.
//!
//! # Layout
//! Pure modules (the wrapper may use these; they must not import fuser, tokio or the AWS SDK):
//! - [`key`] — the 32-byte BLAKE3 key and its 64-hex name.
//! - [`size`] — human sizes (`10GiB`).
//! - [`wrapper`] — `cairn-rustc`: argument classification, cache keys, toolchain identity,
//!   dep-info, the object format, and the hit/miss flow.
//! - [`build_script`] — build-script runs: the launcher put in place of each build script,
//!   the run's key, `OUT_DIR` snapshots.
//! - [`cc`] — `cairn-cc`/`cairn-c++`: C and C++ compiles of one object file, run by build
//!   scripts.
//!
//! Daemon modules (feature `daemon`):
//! - [`store`] — the `Store` trait and its disk, memory and fault-injecting versions; the LRU
//!   index and its journal.
//! - [`remote`] — the shared tier: the `Remote` trait (memory, fault-injecting and S3
//!   versions), the durable upload/delete queue; `store::tiered` puts it behind the local store.
//! - [`fs`] — the filesystem as plain Rust: names, inodes, handles, the commit protocol.
//! - [`fuse`] — the thin adapter from `fuser` callbacks to [`fs`].
//! - [`daemon`] — mounting, signals, background start, unmounting.
//! - [`config`] — flags, `CAIRN_*` variables, the config file and defaults.
//! - [`admin`] — `cairn stats`, `evict` and `clear`, working through the mount.
//! - [`doctor`] — `cairn doctor`: FUSE, the mount, and the S3 set-up, one check per line.
//! - [`stats`] — the counters behind `cairn stats`, fed by the wrapper's reports.
//!
//! docs/architecture.md explains the layers and why they are cut this way.

pub mod build_script;
pub mod cc;
pub mod key;
pub mod protocol;
pub mod size;
pub mod wrapper;

#[cfg(feature = "daemon")]
pub mod admin;
#[cfg(feature = "daemon")]
pub mod build_sets;
#[cfg(feature = "daemon")]
pub mod config;
#[cfg(feature = "daemon")]
pub mod daemon;
#[cfg(feature = "daemon")]
pub mod doctor;
#[cfg(feature = "daemon")]
pub mod fs;
#[cfg(feature = "daemon")]
pub mod fuse;
#[cfg(feature = "daemon")]
pub mod remote;
#[cfg(feature = "daemon")]
pub mod stats;
#[cfg(feature = "daemon")]
pub mod store;

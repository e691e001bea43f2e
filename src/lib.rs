//! cairn: a build cache for Rust that lives in a filesystem.
//!
//! # Layout
//! Pure modules (the wrapper binary links these; they must not import fuser, tokio or the AWS
//! SDK). They form layers, each importing only those above it:
//! - [`key`], [`size`] — the 32-byte BLAKE3 key and its 64-hex name; human sizes (`10GiB`).
//! - [`protocol`] — what the binaries agree on: objects, reports, names in the mount, config
//!   and paths, and how the front ends hand a build to one another (the launcher, the compiler
//!   links).
//! - [`engine`] — the life of a cached compile for every front end (look up, restore, run,
//!   store, report, log), its door into the cache, and the pieces every front end shares
//!   (roots, file hashes, toolchain and compiler identities, running a tool).
//! - Front ends, each importing the engine and `protocol` and never one another:
//!   [`rustc`] (rustc compiles, and `cargo clippy`'s driver, which is rustc with lints:
//!   `rustc::clippy`), [`build_script`] (build-script runs), [`cc`] (C and C++ objects
//!   compiled by build scripts).
//! - [`wrapper`] — `cairn-rustc`'s dispatch to the front ends, by argv[0] and flag.
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
//! - [`stats`] — the counters behind `cairn stats`, fed by the front ends' reports.
//!
//! docs/architecture.md explains the layers and why they are cut this way.

pub mod build_script;
pub mod cc;
pub mod engine;
pub mod key;
pub mod protocol;
pub mod rustc;
pub mod size;
pub mod wrapper;

#[cfg(test)]
mod layering;

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
pub mod reapi;
#[cfg(feature = "daemon")]
pub mod remote;
#[cfg(feature = "daemon")]
pub mod stats;
#[cfg(feature = "daemon")]
pub mod store;

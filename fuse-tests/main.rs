//! Tests against real FUSE mounts of the `cairn` daemon, one file per behaviour.
//!
//! Each test mounts a fresh store in a temporary folder. Where a test cannot run (no FUSE
//! device, no fusermount3, not root for the few that need it) it prints `SKIPPED` and why, and
//! passes; under `CI=true` it fails instead (`common::skip`, the one place that decides).

mod common;
mod csys;
mod garage;
mod s3server;
mod workspace;

mod access;
mod build_scripts;
mod ci;
mod clippy;

mod commit;
mod concurrency;
mod correctness;
mod corruption;
mod crash;
mod eviction;
mod full_disk;
mod immutability;
mod inspection;
mod names;
mod nofuse;
mod panics;
mod remote_exec;
mod restart;
mod s3;
mod s3_garage;
mod seed;
mod tools;
mod wrapper_autostart;
mod wrapper_changes;
mod wrapper_checkouts;
mod wrapper_daemon_killed;
mod wrapper_linker;
mod wrapper_paths;
mod wrapper_rm;
mod wrapper_warm;

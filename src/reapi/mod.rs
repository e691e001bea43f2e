//! Remote execution (issue #22, docs/remote-execution.md): the daemon sends compiles the cache
//! misses to a Remote Execution API v2 engine (BuildGrid, Buildbarn, BuildBuddy, NativeLink …)
//! and keeps what comes back as ordinary cache objects.
//!
//! - `proto.rs`: the protocol's messages, by hand from its field numbers;
//! - `client.rs`: a blocking gRPC client (capabilities, CAS, execution);
//! - `exec.rs`: one compile run remotely (the daemon's `EXECUTE`);
//! - `digest.rs`: SHA-256 digests (what engines take);
//! - `tree.rs`: an input root as the protocol's Merkle tree of folders;
//! - `elf.rs`, `toolchain.rs`: the toolchain packaged from its ELF headers, with its loader,
//!   so a bare worker runs it.
//!
//! Daemon only: the wrapper never links gRPC (`scripts/check-wrapper-deps`).

pub mod client;
pub mod digest;
pub mod elf;
pub mod exec;
pub mod proto;
pub mod toolchain;
pub mod tree;

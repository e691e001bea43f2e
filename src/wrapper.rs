//! `cairn-rustc`'s dispatch: one binary, four front ends, told apart by how it was called.
//!
//! - `cairn-rustc --cairn-build-script LAUNCHER REAL ARGS…`: a build script's launcher
//!   (`build_script`);
//! - run as `cairn-cc` or `cairn-c++` (links made for build scripts): a C or C++ compile (`cc`);
//! - `cairn-rustc …/clippy-driver rustc ARGS…`: `cargo clippy`'s driver (`rustc::clippy`);
//! - `cairn-rustc rustc ARGS…`: a rustc compile (`rustc`);
//! - `cairn-rustc --cairn-remote-launch …`: the launcher of a compile on a remote execution
//!   worker (`rustc::remote`, or `cc::remote` for a C/C++ compile's steps).
//!
//! This file is the only one that knows every front end. Must stay small and quick to start:
//! std, blake3, serde/bincode and cairn's pure modules — never tokio, the AWS SDK or fuser
//! (`scripts/check-wrapper-deps` checks the binary). Every front end's rule: a cache problem
//! never fails a build; the tool runs as if cairn were not there.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::protocol::frontends;

/// Runs the wrapper on its command line (`argv[0]` is the wrapper) and returns the exit code.
pub fn main(argv: Vec<OsString>) -> i32 {
    crate::engine::profile::started();
    if argv.get(1).is_some_and(|a| a == frontends::FLAG) {
        return crate::build_script::run(&argv);
    }
    if argv.get(1).is_some_and(|a| a == crate::protocol::remote::LAUNCH) {
        if crate::cc::remote::is_steps(&argv) {
            return crate::cc::remote::launch(&argv);
        }
        return crate::rustc::remote::launch(&argv);
    }
    if let Some(lang) = argv.first().and_then(|a| frontends::language_of(Path::new(a))) {
        return crate::cc::main(lang, &argv[1..]);
    }
    let Some(tool) = argv.get(1).map(PathBuf::from) else {
        eprintln!("cairn-rustc: usage: cairn-rustc RUSTC [ARGS...]  (as RUSTC_WRAPPER=cairn-rustc)");
        return 2;
    };
    if crate::rustc::clippy::is_driver(&tool) {
        return crate::rustc::clippy::main(tool, &argv[2..]);
    }
    crate::rustc::main(tool, &argv[2..])
}

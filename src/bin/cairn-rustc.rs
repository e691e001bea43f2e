//! `cairn-rustc`: the RUSTC_WRAPPER. For now it only runs rustc; caching is issue #3.
//!
//! Must stay small and quick to start: std, blake3 and cairn's pure modules only — never
//! tokio, the AWS SDK or fuser (checked by `scripts/check-wrapper-deps`).

use std::process::{exit, Command};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(rustc) = args.next() else {
        eprintln!("cairn-rustc: usage: cairn-rustc RUSTC [ARGS...] (set RUSTC_WRAPPER=cairn-rustc)");
        exit(2);
    };
    match Command::new(&rustc).args(args).status() {
        Ok(status) => exit(status.code().unwrap_or(1)),
        Err(e) => {
            eprintln!("cairn-rustc: cannot run {}: {e}", rustc.to_string_lossy());
            exit(1);
        }
    }
}

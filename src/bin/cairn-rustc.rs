//! `cairn-rustc`: the RUSTC_WRAPPER binary. All logic is in `cairn::wrapper`.
//!
//! Must stay small and quick to start: std, blake3 and cairn's pure modules only — never
//! tokio, the AWS SDK or fuser (checked by `scripts/check-wrapper-deps`).

fn main() {
    std::process::exit(cairn::wrapper::main(std::env::args_os().collect()));
}

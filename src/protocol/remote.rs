//! What the wrapper asks the daemon when a compile may run on the remote execution engine
//! (`EXECUTE`, issue #22), and what it gets back. The wrapper names local files and folders
//! only; the daemon packages the toolchain, builds the action, talks to the engine and checks
//! what comes back (`reapi/`). bincode on the wire.
//!
//! Paths in a request are the action's, not this machine's: each root of the compile (the
//! checkout, `CARGO_HOME`, the target dir; engine/basedir.rs) stands at a fixed folder under
//! [`ROOTS`] (`/home/a/ws/src/lib.rs` is `/.cairn-roots/checkout/src/lib.rs`), so the same
//! compile from another checkout path or home makes the same action, and the engine's action
//! cache answers it. A path under no root keeps its own. On the worker, the input root holds
//! every such path `P` at `fs/P`, and the toolchain at `toolchain/`. The launcher
//! (`cairn-rustc --cairn-remote-launch`, [`LAUNCH`]) moves the command's paths there, runs
//! rustc, and moves them back in what rustc wrote (dep-info, messages); the wrapper then puts
//! this machine's roots back, so outputs are byte for byte what the same compile writes here.

use serde::{Deserialize, Serialize};

/// The launcher's first argument.
pub const LAUNCH: &str = "--cairn-remote-launch";
/// A file in the store folder that says a daemon there has an engine configured, so a miss
/// names its inputs (a walk of its package folder) only when that can pay.
pub const CONFIGURED: &str = "remote-exec.on";
/// Where local paths are under the input root (`/home/a` at `fs/home/a`).
pub const FS_DIR: &str = "fs";
/// Where the toolchain is under the input root (`reapi/toolchain.rs`).
pub const TOOLCHAIN_DIR: &str = "toolchain";
/// The folder of the roots' fixed places in an action.
pub const ROOTS: &str = "/.cairn-roots";
/// The daemon's word when no engine is configured.
pub const NOT_CONFIGURED: &str = "not-configured";
/// The launcher's flag for an action of program steps (a C/C++ compile: `cc1`, then `as`),
/// and the word between two steps.
pub const STEPS: &str = "--steps";
pub const THEN: &str = "--cairn-then";
/// The launcher's exit code when an output names the worker's folder (a string rustc cannot
/// remap, like `env!("CARGO_MANIFEST_DIR")`): such a compile must run here.
pub const NAMES_WORKER_PATH: i32 = 86;

/// A compile to run remotely.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The rustc binary cargo named, and `--target` ("" for the host).
    pub rustc: String,
    pub target: String,
    /// The wrapper binary (packaged as the launcher).
    pub launcher: String,
    /// rustc's arguments, as the local compile would get them.
    pub args: Vec<String>,
    /// The environment rustc gets.
    pub env: Vec<(String, String)>,
    pub cwd: String,
    /// Top folders whose paths are moved under the input root (`/.cairn-roots`, `/usr` …).
    pub roots: Vec<String>,
    /// Input files: where the daemon reads each here, and its path in the action.
    pub files: Vec<(String, String)>,
    /// Output files expected (those rustc writes are sent back).
    pub outputs: Vec<String>,
    /// Outputs that are text naming paths (dep-info): the launcher moves them back.
    pub texts: Vec<String>,
    /// An action of program steps instead of rustc (a C/C++ compile, cc/remote.rs): the
    /// programs to package (local paths), and each step as a program of that list followed by
    /// its arguments (in the action's paths), run in order, each through the packaged loader.
    #[serde(default)]
    pub programs: Vec<String>,
    #[serde(default)]
    pub steps: Vec<Vec<String>>,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecReply {
    /// It ran: exit code, output, the files written (path in the action, mode, bytes), the
    /// worker that ran it, and whether the engine answered from its action cache.
    Ran {
        exit_code: i32,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        files: Vec<(String, u32, Vec<u8>)>,
        worker: String,
        cached: bool,
    },
    /// Run it here; why, as a short word and a sentence.
    Local { word: String, message: String },
}

impl ExecRequest {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).unwrap_or_default()
    }

    pub fn decode(b: &[u8]) -> Option<ExecRequest> {
        bincode::deserialize(b).ok()
    }
}

impl ExecReply {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).unwrap_or_default()
    }

    pub fn decode(b: &[u8]) -> Option<ExecReply> {
        bincode::deserialize(b).ok()
    }
}

/// `s` with every path under `roots` (at its start, or after its first `=`) moved under
/// `base` (`/x/y` → `<base>/x/y`). `roots` are folders like `/home`.
pub fn move_paths(s: &str, roots: &[String], base: &str) -> String {
    let moved = |p: &str| -> Option<String> {
        roots
            .iter()
            .find(|r| p.starts_with(r.as_str()) && matches!(p.as_bytes().get(r.len()), None | Some(b'/')))
            .map(|_| format!("{base}{p}"))
    };
    if let Some(m) = moved(s) {
        return m;
    }
    if let Some((head, tail)) = s.split_once('=') {
        if let Some(m) = moved(tail) {
            return format!("{head}={m}");
        }
    }
    s.to_string()
}

/// The top folder of an absolute path (`/home/a/b` → `/home`).
pub fn top(path: &str) -> Option<String> {
    let rest = path.strip_prefix('/')?;
    let first = rest.split('/').next().filter(|c| !c.is_empty())?;
    Some(format!("/{first}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_roots_move_at_the_start_or_after_the_first_equals_sign() {
        let roots = vec!["/home".to_string(), "/tmp".to_string()];
        let b = "/w/fs";
        assert_eq!(move_paths("/home/a/src/lib.rs", &roots, b), "/w/fs/home/a/src/lib.rs");
        assert_eq!(move_paths("dependency=/tmp/t/deps", &roots, b), "dependency=/w/fs/tmp/t/deps");
        assert_eq!(move_paths("serde=/home/t/libserde.rmeta", &roots, b), "serde=/w/fs/home/t/libserde.rmeta");
        // The remapping's right side stays: only the first path moves.
        assert_eq!(move_paths("/home/a=/cargo", &roots, b), "/w/fs/home/a=/cargo");
        assert_eq!(move_paths("--remap-path-prefix=/home/a=.", &roots, b), "--remap-path-prefix=/w/fs/home/a=.");
        // Not a root, not a path, or a root's name as a prefix of another folder.
        for same in ["/usr/lib", "src/lib.rs", "feature=\"std\"", "/homework/x", "--edition=2021"] {
            assert_eq!(move_paths(same, &roots, b), same);
        }
        assert_eq!(top("/home/a/b").as_deref(), Some("/home"));
        assert_eq!(top("relative"), None);
    }

    #[test]
    fn requests_and_replies_round_trip() {
        let r = ExecRequest { args: vec!["--crate-name".into(), "x".into()], ..Default::default() };
        assert_eq!(ExecRequest::decode(&r.encode()), Some(r));
        let a = ExecReply::Local { word: "unreachable".into(), message: "m".into() };
        assert_eq!(ExecReply::decode(&a.encode()), Some(a));
        assert_eq!(ExecReply::decode(b"\xff\xff"), None);
    }
}

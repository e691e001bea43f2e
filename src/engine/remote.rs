//! What every front end shares when a miss may run on the remote execution engine (issue #22;
//! docs/remote-execution.md): whether the daemon has an engine, where the compile's roots
//! stand in an action ([`Places`]), asking the daemon to run a request and writing what comes
//! back in place ([`run`]), and telling the counters what became of it ([`report`]). Each
//! front end names its own inputs and checks (rustc/remote.rs, cc/remote.rs).

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Instant, SystemTime};

use super::basedir::{replace_path, rewrite_bytes, Kind, Rel};
use super::cache::Cache;
use super::process::Ran;
use crate::protocol::remote::{
    ExecReply, ExecRequest, FS_DIR, LAUNCH, NAMES_WORKER_PATH, NOT_CONFIGURED, ROOTS, STEPS, TOOLCHAIN_DIR,
};
use crate::protocol::report::{Event, Kind as Front, Remote};
use crate::protocol::wire::{self, Op};

/// Whether remote execution may be tried at all (`CAIRN_REMOTE=0` turns it off for a build).
pub fn enabled() -> bool {
    std::env::var("CAIRN_REMOTE").as_deref() != Ok("0")
}

/// Whether the daemon has an engine (its store folder says so): one `stat`, before any
/// input is named.
pub fn configured() -> bool {
    enabled() && crate::engine::mount::store_dir().is_some_and(|s| s.join(crate::protocol::remote::CONFIGURED).exists())
}

/// Where the compile's roots are in the action (protocol/remote.rs): each at a fixed folder
/// under [`ROOTS`], named for its kind, so the action is the same from every checkout path.
#[derive(Debug, Clone, Default)]
pub struct Places {
    /// (this machine's root, its place in the action), the longest root first.
    pairs: Vec<(String, String)>,
}

impl Places {
    pub fn new(rel: &Rel) -> Places {
        let name = |k: Kind| match k {
            Kind::Checkout => "checkout",
            Kind::CargoHome => "cargo-home",
            Kind::Target => "target",
        };
        Places { pairs: rel.roots().map(|(k, p)| (p.to_string(), format!("{ROOTS}/{}", name(k)))).collect() }
    }

    /// A path or argument of this machine, as the action names it.
    pub fn to_action(&self, s: &str) -> String {
        self.pairs.iter().fold(s.to_string(), |s, (local, place)| replace_path(&s, local, place))
    }

    /// A path or argument of the action, as this machine names it.
    pub fn to_local(&self, s: &str) -> String {
        self.pairs.iter().fold(s.to_string(), |s, (local, place)| replace_path(&s, place, local))
    }

    /// What the worker wrote (dep-info, messages), with this machine's roots.
    pub fn bytes_to_local(&self, b: &[u8]) -> Vec<u8> {
        self.pairs.iter().fold(b.to_vec(), |b, (local, place)| rewrite_bytes(&b, place, local))
    }

    /// Bytes of this machine (a preprocessed C file's line markers), as the action names them.
    pub fn bytes_to_action(&self, b: &[u8]) -> Vec<u8> {
        self.pairs.iter().fold(b.to_vec(), |b, (local, place)| rewrite_bytes(&b, local, place))
    }
}

/// What became of a try: the run (and whether the engine's action cache answered it), or
/// why it stays here (and whether it was tried: a compile the engine never saw is not a
/// fallback).
pub enum Tried {
    Ran(Ran, bool),
    Local { word: String, tried: bool },
}

fn here(word: &str, tried: bool) -> Tried {
    Tried::Local { word: word.to_string(), tried }
}

/// What a front end checks in the files a remote run sent back before any is written (paths
/// are the action's): `Err(word)` runs the compile here.
pub type Check<'a> = &'a dyn Fn(&ExecRequest, &Places, &[(String, u32, Vec<u8>)]) -> Result<(), String>;

/// Asks the daemon to run `req`; on an answer that `check` accepts, writes the outputs in
/// place and passes the messages through (with this machine's roots back in them), as a
/// local run would have.
pub fn run(req: &ExecRequest, places: &Places, check: Check<'_>) -> Tried {
    if !enabled() {
        return here("off", false);
    }
    let Some(store) = crate::engine::mount::daemon_store() else { return here("no-store", false) };
    let Ok(stream) = wire::connect(&store) else { return here("no-daemon", false) };
    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut s = &stream;
    let body = req.encode();
    let reply = wire::write_frame(&mut s, Op::Execute as u8, &[&body]).and_then(|()| {
        let (status, len) = wire::read_head(&mut s)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let body = wire::read_body(&mut s, len)?;
        match status {
            0 => Ok(body),
            _ => Err(wire::parse_error(&body)),
        }
    });
    let reply = match reply {
        Ok(b) => match ExecReply::decode(&b) {
            Some(r) => r,
            None => return here("daemon", true),
        },
        // A daemon that predates remote execution.
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => return here("not-configured", false),
        Err(_) => return here("daemon", true),
    };
    let (exit_code, stdout, stderr, files, cached) = match reply {
        ExecReply::Local { word, .. } => {
            let tried = word != NOT_CONFIGURED;
            return Tried::Local { word, tried };
        }
        ExecReply::Ran { exit_code, stdout, stderr, files, cached, .. } => (exit_code, stdout, stderr, files, cached),
    };
    // An output holds the worker's folder (`env!` of a path): only a local compile makes it right.
    if exit_code == NAMES_WORKER_PATH {
        return here("names-worker-path", true);
    }
    // A failed compile is compiled here again: its messages are then this machine's own.
    if exit_code != 0 {
        return here("failed-remotely", true);
    }
    if let Err(why) = check(req, places, &files) {
        return here(&why, true);
    }
    for (path, mode, bytes) in &files {
        if !req.outputs.contains(path) {
            return here("output", true);
        }
        let moved;
        let bytes: &[u8] = if req.texts.contains(path) {
            moved = places.bytes_to_local(bytes);
            &moved
        } else {
            bytes
        };
        if write_output(Path::new(&places.to_local(path)), *mode, bytes).is_err() {
            return here("output", true);
        }
    }
    let (stdout, stderr) = (places.bytes_to_local(&stdout), places.bytes_to_local(&stderr));
    let _ = io::stdout().write_all(&stdout);
    let _ = io::stderr().write_all(&stderr);
    let ran =
        Ran { status: std::process::ExitStatus::from_raw(exit_code << 8), stdout, stderr, took: t0.elapsed(), started };
    Tried::Ran(ran, cached)
}

/// Says, with an engine configured, that a compile stays here by rule (`why`).
pub fn skipped(why: &str) {
    report(&Tried::Local { word: why.to_string(), tried: false }, Front::Rustc);
}

/// Tells the daemon's counters (`cairn stats`) what became of a try of a `kind` compile.
pub fn report(tried: &Tried, kind: Front) {
    let e = match tried {
        Tried::Ran(_, false) => Event::Remote(Remote::Ran(kind)),
        Tried::Ran(_, true) => Event::Remote(Remote::Cached(kind)),
        Tried::Local { word, tried: true } => Event::Remote(Remote::Local(word.clone())),
        // Not sent: counted by rule, unless there is no engine to send to (or it is turned off).
        Tried::Local { word, tried: false }
            if !["off", "not-configured", "no-store", "no-daemon"].contains(&word.as_str()) =>
        {
            Event::Remote(Remote::Skipped(word.clone()))
        }
        Tried::Local { .. } => return,
    };
    if let Some(door) = crate::engine::mount::daemon_store().and_then(|s| crate::engine::door::Door::at(None, Some(&s)))
    {
        door.report(&[e]);
    }
}

fn write_output(path: &Path, mode: u32, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("cairn-remote.{}", std::process::id()));
    fs::write(&tmp, bytes)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(crate::engine::process::safe_mode(mode)))?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// A launcher's command line on the worker (`cairn-rustc --cairn-remote-launch [--steps]
/// --cwd=C --roots=R1:R2 [--text=P]… [--out=P]… -- REST…`), and the input root it runs in:
/// what the rustc launcher (rustc/remote.rs) and the C steps (cc/remote.rs) share.
pub struct Launch {
    /// The action's working directory, and the top folders whose paths move under `base`.
    pub cwd: String,
    pub roots: Vec<String>,
    /// Outputs that are text naming paths, and every output.
    pub texts: Vec<String>,
    pub outs: Vec<String>,
    /// What follows `--`.
    pub rest: Vec<String>,
    /// The input root, where local paths are in it (`<root>/fs`), and the package.
    pub root: String,
    pub base: String,
    pub toolchain: String,
}

impl Launch {
    pub fn parse(argv: &[OsString]) -> io::Result<Launch> {
        let args: Vec<String> = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let pos = args.iter().position(|a| a == LAUNCH).ok_or_else(|| io::Error::other("not a launch"))?;
        let root = std::env::current_dir()?.display().to_string();
        let mut l = Launch {
            cwd: String::new(),
            roots: Vec::new(),
            texts: Vec::new(),
            outs: Vec::new(),
            rest: Vec::new(),
            base: format!("{root}/{FS_DIR}"),
            toolchain: format!("{root}/{TOOLCHAIN_DIR}"),
            root,
        };
        let mut it = args[pos + 1..].iter();
        for a in it.by_ref() {
            if a == "--" {
                break;
            } else if let Some(v) = a.strip_prefix("--cwd=") {
                l.cwd = v.to_string();
            } else if let Some(v) = a.strip_prefix("--roots=") {
                l.roots = v.split(':').filter(|r| !r.is_empty()).map(String::from).collect();
            } else if let Some(v) = a.strip_prefix("--text=") {
                l.texts.push(v.to_string());
            } else if let Some(v) = a.strip_prefix("--out=") {
                l.outs.push(v.to_string());
            } else if a != STEPS {
                return Err(io::Error::other(format!("unknown launcher flag {a}")));
            }
        }
        l.rest = it.cloned().collect();
        Ok(l)
    }

    /// What the worker's tool printed or wrote, with the input root's folder taken out.
    pub fn back(&self, b: &[u8]) -> Vec<u8> {
        replace(b, self.base.as_bytes(), b"")
    }

    /// The output that still names the worker's folder, if one does: a string the tool does
    /// not remap (`env!("CARGO_MANIFEST_DIR")`, a path in a C string) would carry it into the
    /// artifact, so the compile must run where the path is right.
    pub fn output_naming_worker(&self) -> Option<&str> {
        self.outs.iter().map(String::as_str).find(|o| {
            fs::read(format!("{}{o}", self.base))
                .is_ok_and(|b| memchr::memmem::find(&b, self.base.as_bytes()).is_some())
        })
    }
}

/// Runs a launcher (`run`, given its parsed command line) and returns its exit code: the
/// tool's, [`NAMES_WORKER_PATH`] when an output names the worker's folder, 101 when the
/// launcher itself failed.
pub fn launch_with(argv: &[OsString], run: impl FnOnce(&Launch) -> io::Result<i32>) -> i32 {
    let result = Launch::parse(argv).and_then(|l| {
        let code = run(&l)?;
        if code == 0 {
            if let Some(o) = l.output_naming_worker() {
                eprintln!("cairn remote launcher: {o} names this worker's folder {}; compile it locally", l.base);
                return Ok(NAMES_WORKER_PATH);
            }
        }
        Ok(code)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn remote launcher: {e}");
            101
        }
    }
}

/// The exit code of a finished process (128 + the signal that ended it).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// `hay` with every occurrence of `from` replaced by `to`.
pub fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut last = 0;
    for i in memchr::memmem::find_iter(hay, from) {
        if i < last {
            continue;
        }
        out.extend_from_slice(&hay[last..i]);
        out.extend_from_slice(to);
        last = i + from.len();
    }
    out.extend_from_slice(&hay[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_moves_every_occurrence() {
        assert_eq!(replace(b"a/x/fs/b and /x/fs/c", b"/x/fs", b""), b"a/b and /c".to_vec());
    }

    #[test]
    fn a_launchers_command_line_is_read_and_an_unknown_flag_refused() {
        let argv = |s: &str| s.split(' ').map(OsString::from).collect::<Vec<_>>();
        let l = Launch::parse(&argv(
            "cairn-rustc --cairn-remote-launch --steps --cwd=/.cairn-roots/checkout --roots=/.cairn-roots:/usr \
             --text=/t.d --out=/t.o --out=/t.d -- a --cwd=b",
        ))
        .unwrap();
        assert_eq!(l.cwd, "/.cairn-roots/checkout");
        assert_eq!(l.roots, ["/.cairn-roots", "/usr"]);
        assert_eq!((l.texts.len(), l.outs.len()), (1, 2));
        assert_eq!(l.rest, ["a", "--cwd=b"], "what follows -- is the tool's");
        assert!(l.base.ends_with("/fs") && l.toolchain.ends_with("/toolchain"));
        assert!(Launch::parse(&argv("cairn-rustc --cairn-remote-launch --bogus -- a")).is_err());
        assert!(Launch::parse(&argv("cairn-rustc rustc -vV")).is_err());
    }
}

//! The daemon's half of a remote compile (`EXECUTE`; the wrapper's half is rustc/remote.rs):
//! package the toolchain once per rustc (and upload what the engine lacks), build the action
//! from the files the wrapper named, run it, and fetch what it wrote, each blob checked
//! against the digest the engine reported.
//!
//! Never fails a build: every fault is an answer "run it here", with a word for the stats
//! and a sentence for the log. An engine that cannot be reached is not asked again for
//! [`BACKOFF`], so a build with the farm down does not wait on each compile.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::{Engine, EngineError, EngineErrorKind};
use super::digest;
use super::proto::{self, Action, Command, Digest, EnvironmentVariable, Platform, Property};
use super::toolchain::{self, Toolchain, LAUNCHER};
use super::tree::{InputTree, Node};
use crate::config::RemoteExecConfig;
use crate::protocol::remote::{ExecReply, ExecRequest, FS_DIR, LAUNCH, NAMES_WORKER_PATH, STEPS, THEN};

/// After the engine could not be reached, how long compiles run here without asking it.
const BACKOFF: Duration = Duration::from_secs(30);
/// The longest one compile may take on the engine.
const DEADLINE: Duration = Duration::from_secs(600);
/// How long a compile waits for a worker to take it before it runs here
/// (`CAIRN_REMOTE_QUEUE`, seconds, in the daemon's environment).
const QUEUE: Duration = Duration::from_secs(30);
/// `CAIRN_REMOTE_SALT` in the daemon's environment: the actions' salt (REAPI's own field), so
/// a benchmark's build is not answered from the engine's action cache by the build before it.
const SALT_VAR: &str = "CAIRN_REMOTE_SALT";

/// A packaged toolchain, and the engines it was uploaded to.
struct Prepared {
    toolchain: Toolchain,
    host: String,
    uploaded: bool,
}

/// Digest memo: a file's identity (inode, size, modification time) → its digest.
type Stamp = (u64, u64, i64, i64);
/// A package by its programs and their stamps; filled by the first compile that needs it.
type Slot = Arc<Mutex<Option<Prepared>>>;

pub struct Executor {
    cfg: RemoteExecConfig,
    queue: Duration,
    salt: Vec<u8>,
    engine: Mutex<Option<Arc<Engine>>>,
    down: Mutex<Option<(Instant, EngineError)>>,
    toolchains: Mutex<HashMap<(String, Stamp), Slot>>,
    digests: Mutex<HashMap<PathBuf, (Stamp, Digest)>>,
}

fn local(word: &str, message: impl Into<String>) -> ExecReply {
    ExecReply::Local { word: word.to_string(), message: message.into() }
}

fn stamp(m: &fs::Metadata) -> Stamp {
    (m.ino(), m.len(), m.mtime(), m.mtime_nsec())
}

impl Executor {
    pub fn new(cfg: RemoteExecConfig) -> Executor {
        let queue = std::env::var("CAIRN_REMOTE_QUEUE")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(QUEUE, Duration::from_secs);
        Executor {
            cfg,
            queue,
            salt: std::env::var(SALT_VAR).map(String::into_bytes).unwrap_or_default(),
            engine: Mutex::new(None),
            down: Mutex::new(None),
            toolchains: Mutex::new(HashMap::new()),
            digests: Mutex::new(HashMap::new()),
        }
    }

    /// The engine, connected on first use; an error while it is known down.
    fn engine(&self) -> Result<Arc<Engine>, EngineError> {
        if let Some(e) = self.engine.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(Arc::clone(e));
        }
        if let Some((at, e)) = self.down.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if at.elapsed() < BACKOFF {
                return Err(e.clone());
            }
        }
        match Engine::connect(&self.cfg.address, &self.cfg.instance, &self.cfg.headers) {
            Ok((e, _)) => {
                let e = Arc::new(e);
                *self.engine.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&e));
                tracing::info!(address = %self.cfg.address, instance = %self.cfg.instance, "remote execution engine connected");
                Ok(e)
            }
            Err(e) => {
                self.fault(&e);
                Err(e)
            }
        }
    }

    /// Remembers an engine fault that makes it useless for a while: it cannot be reached, it
    /// refuses cairn, or no worker takes actions (all busy, or none left).
    fn fault(&self, e: &EngineError) {
        if matches!(
            e.kind,
            EngineErrorKind::Unreachable
                | EngineErrorKind::Denied
                | EngineErrorKind::Unsuitable
                | EngineErrorKind::UnknownInstance
                | EngineErrorKind::Queued
        ) {
            let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
            if down.as_ref().is_none_or(|(at, _)| at.elapsed() >= BACKOFF) {
                tracing::warn!("remote execution off for {BACKOFF:?}: {e}");
            }
            *down = Some((Instant::now(), e.clone()));
            self.engine.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }

    /// Runs one compile remotely, or says why not.
    pub fn execute(&self, req: &ExecRequest) -> ExecReply {
        let engine = match self.engine() {
            Ok(e) => e,
            Err(e) => return local(e.word(), e.message),
        };
        match self.run(&engine, req) {
            Ok(r) => r,
            Err(Fallback::Engine(e)) => {
                tracing::info!("compile run here: {e}");
                self.fault(&e);
                local(e.word(), e.message)
            }
            Err(Fallback::Here(word, message)) => {
                tracing::info!("compile run here ({word}): {message}");
                local(&word, message)
            }
        }
    }

    fn digest_of(&self, path: &Path) -> Result<Digest, Fallback> {
        let meta = fs::metadata(path).map_err(|e| here("input", format!("{}: {e}", path.display())))?;
        let st = stamp(&meta);
        if let Some((s, d)) = self.digests.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            if *s == st {
                return Ok(d.clone());
            }
        }
        let d = digest::of_file(path).map_err(|e| here("input", format!("{}: {e}", path.display())))?;
        self.digests.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_path_buf(), (st, d.clone()));
        Ok(d)
    }

    /// The toolchain of `rustc` (with the launcher), packaged and uploaded once.
    fn toolchain(&self, engine: &Engine, rustc: &str, launcher: &str) -> Result<(Toolchain, String), Fallback> {
        let id = self.identity(&[rustc, launcher])?;
        self.prepared(engine, id, || {
            let sysroot = run(rustc, &["--print", "sysroot"])?;
            let vv = run(rustc, &["-vV"])?;
            let host = vv.lines().find_map(|l| l.strip_prefix("host: ")).unwrap_or_default().to_string();
            let t = toolchain::package_rustc(
                Path::new(sysroot.trim()),
                &host,
                Some(Path::new(launcher)),
                &toolchain::system_dirs(),
            )
            .map_err(|e| here("toolchain", e.to_string()))?;
            Ok((t, host))
        })
    }

    /// The programs of a C/C++ compile's steps (`cc1`, `as`) with the launcher, packaged and
    /// uploaded once.
    fn programs(&self, engine: &Engine, programs: &[String], launcher: &str) -> Result<Toolchain, Fallback> {
        let mut named: Vec<&str> = programs.iter().map(String::as_str).collect();
        named.push(launcher);
        let id = self.identity(&named)?;
        let (t, _) = self.prepared(engine, id, || {
            let progs: Vec<PathBuf> = programs.iter().map(PathBuf::from).collect();
            let t = toolchain::package_programs(&progs, Path::new(launcher), &toolchain::system_dirs())
                .map_err(|e| here("toolchain", e.to_string()))?;
            Ok((t, String::new()))
        })?;
        Ok(t)
    }

    /// What names one package: its programs' paths and file identities.
    fn identity(&self, programs: &[&str]) -> Result<(String, Stamp), Fallback> {
        let mut st: Stamp = (0, 0, 0, 0);
        for p in programs {
            let m = fs::metadata(p).map_err(|e| here("toolchain", format!("{p}: {e}")))?;
            let s = stamp(&m);
            st = (st.0 ^ s.0, st.1 ^ s.1, st.2 ^ s.2, st.3 ^ s.3);
        }
        Ok((programs.join("\0"), st))
    }

    /// The package named `id`, made by `package` on first use (compiles that start together
    /// wait for the first), and uploaded where the engine lacks it.
    fn prepared(
        &self,
        engine: &Engine,
        id: (String, Stamp),
        package: impl FnOnce() -> Result<(Toolchain, String), Fallback>,
    ) -> Result<(Toolchain, String), Fallback> {
        let slot = Arc::clone(self.toolchains.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_default());
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let t0 = Instant::now();
            let (t, host) = package()?;
            tracing::info!(files = t.files.len(), bytes = t.bytes(), took = ?t0.elapsed(), "toolchain packaged for remote execution");
            *slot = Some(Prepared { toolchain: t, host, uploaded: false });
        }
        let p = slot.as_mut().expect("just set");
        if !p.uploaded {
            let t0 = Instant::now();
            let digests: Vec<Digest> = p.toolchain.files.iter().map(|f| f.digest.clone()).collect();
            let missing = engine.find_missing(&digests).map_err(Fallback::Engine)?;
            let mut sent = 0u64;
            for f in p.toolchain.files.iter().filter(|f| missing.contains(&f.digest)) {
                let bytes =
                    fs::read(&f.source).map_err(|e| here("toolchain", format!("{}: {e}", f.source.display())))?;
                if digest::of(&bytes) != f.digest {
                    // The toolchain changed under us (`rustup update`): package it again.
                    *slot = None;
                    return Err(here("toolchain", "the toolchain changed while it was uploaded"));
                }
                sent += bytes.len() as u64;
                engine.upload(vec![(f.digest.clone(), bytes)]).map_err(Fallback::Engine)?;
            }
            tracing::info!(missing = missing.len(), bytes = sent, took = ?t0.elapsed(), "toolchain uploaded to the engine");
            p.uploaded = true;
        }
        Ok((p.toolchain.clone(), p.host.clone()))
    }

    fn run(&self, engine: &Engine, req: &ExecRequest) -> Result<ExecReply, Fallback> {
        let t0 = Instant::now();
        let tc = if req.steps.is_empty() {
            let (tc, host) = self.toolchain(engine, &req.rustc, &req.launcher)?;
            if !req.target.is_empty() && req.target != host {
                return Err(here(
                    "target",
                    format!("the packaged toolchain has {host}'s std only, not {}", req.target),
                ));
            }
            tc
        } else {
            self.programs(engine, &req.programs, &req.launcher)?
        };
        let mut tree = InputTree::new();
        tc.add_to(&mut tree).map_err(|e| here("inputs", e.to_string()))?;
        let mut inputs: HashMap<Digest, PathBuf> = HashMap::new();
        for (local, place) in &req.files {
            let p = Path::new(local);
            let d = self.digest_of(p)?;
            let exec = fs::metadata(p).map(|m| m.mode() & 0o111 != 0).unwrap_or(false);
            tree.add(&under_fs(place), Node::File { digest: d.clone(), executable: exec })
                .map_err(|e| here("inputs", e.to_string()))?;
            inputs.insert(d, p.to_path_buf());
        }
        let (root, dirs) = tree.build();
        let mut argv = tc.launch(LAUNCHER);
        argv.push(LAUNCH.to_string());
        if !req.steps.is_empty() {
            argv.push(STEPS.to_string());
        }
        argv.push(format!("--cwd={}", req.cwd));
        argv.push(format!("--roots={}", req.roots.join(":")));
        argv.extend(req.texts.iter().map(|t| format!("--text={t}")));
        argv.extend(req.outputs.iter().map(|o| format!("--out={o}")));
        argv.push("--".into());
        argv.extend(req.args.iter().cloned());
        argv.extend(steps_argv(&req.steps).map_err(|w| here("steps", w))?);
        let mut env: Vec<EnvironmentVariable> =
            req.env.iter().map(|(k, v)| EnvironmentVariable { name: k.clone(), value: v.clone() }).collect();
        env.sort_by(|a, b| a.name.cmp(&b.name));
        let mut outputs: Vec<String> = req.outputs.iter().map(|o| under_fs(o)).collect();
        outputs.sort();
        let platform = Platform { properties: vec![Property { name: "OSFamily".into(), value: "linux".into() }] };
        let command = Command {
            arguments: argv,
            environment_variables: env,
            output_files: outputs.clone(),
            output_directories: Vec::new(),
            platform: Some(platform.clone()),
            working_directory: String::new(),
            output_paths: outputs,
        };
        let (cdigest, cbytes) = digest::of_message(&command);
        let action = Action {
            command_digest: Some(cdigest.clone()),
            input_root_digest: Some(root),
            timeout: Some(proto::Duration { seconds: DEADLINE.as_secs() as i64, nanos: 0 }),
            do_not_cache: false,
            salt: self.salt.clone(),
            platform: Some(platform),
        };
        let (adigest, abytes) = digest::of_message(&action);
        // Upload what the engine lacks: the action, its command, the folders and the inputs.
        let mut small: HashMap<Digest, Vec<u8>> = dirs.into_iter().collect();
        small.insert(cdigest, cbytes);
        small.insert(adigest.clone(), abytes);
        let mut all: Vec<Digest> = small.keys().cloned().collect();
        all.extend(inputs.keys().cloned());
        let missing = engine.find_missing(&all).map_err(Fallback::Engine)?;
        let mut blobs = Vec::new();
        for d in missing {
            if let Some(b) = small.remove(&d) {
                blobs.push((d, b));
            } else if let Some(p) = inputs.get(&d) {
                let b = fs::read(p).map_err(|e| here("input", format!("{}: {e}", p.display())))?;
                if digest::of(&b) != d {
                    return Err(here("input-changed", format!("{} changed while the action was made", p.display())));
                }
                blobs.push((d, b));
            }
        }
        let prepared = t0.elapsed();
        engine.upload(blobs).map_err(Fallback::Engine)?;
        let resp = engine.execute(&adigest, self.queue, DEADLINE).map_err(Fallback::Engine)?;
        let result = resp.result.ok_or_else(|| here("protocol", "the engine finished without a result"))?;
        let worker = result.execution_metadata.as_ref().map(|m| m.worker.clone()).unwrap_or_default();
        let stdout = blob(engine, result.stdout_raw, result.stdout_digest)?;
        let stderr = blob(engine, result.stderr_raw, result.stderr_digest)?;
        let mut files = Vec::new();
        if result.exit_code == 0 {
            let wanted: Vec<(String, Digest, bool)> = result
                .output_files
                .iter()
                .filter_map(|f| Some((f.path.clone(), f.digest.clone()?, f.is_executable)))
                .collect();
            let digests: Vec<Digest> = wanted.iter().map(|(_, d, _)| d.clone()).collect();
            let bytes = engine.read(&digests).map_err(Fallback::Engine)?;
            for ((path, _, exec), b) in wanted.into_iter().zip(bytes) {
                let place = path
                    .strip_prefix(FS_DIR)
                    .filter(|p| p.starts_with('/'))
                    .ok_or_else(|| here("protocol", format!("the engine sent an output at {path}, not asked for")))?;
                files.push((place.to_string(), if exec { 0o755 } else { 0o644 }, b));
            }
        }
        let krate = req.args.iter().skip_while(|a| *a != "--crate-name").nth(1).cloned().unwrap_or_default();
        tracing::debug!(action = %adigest.hash, krate, worker, exit = result.exit_code, cached = resp.cached_result, prepared = ?prepared, took = ?t0.elapsed(), "remote compile");
        if result.exit_code != 0 {
            // The build compiles it here and prints its own messages; the log keeps the
            // worker's, to see why it failed there.
            if result.exit_code == NAMES_WORKER_PATH {
                tracing::info!(action = %adigest.hash, krate, "an output of the compile names the worker's folder (a path in a constant): it runs here");
            } else {
                let said = String::from_utf8_lossy(&stderr);
                let said: String = said.chars().take(600).collect();
                tracing::info!(action = %adigest.hash, worker, krate, exit = result.exit_code, "a compile failed on the engine (it runs here): {said}");
            }
        }
        let cached = resp.cached_result;
        Ok(ExecReply::Ran { exit_code: result.exit_code, stdout, stderr, files, worker, cached })
    }
}

/// Why a compile runs here after all.
enum Fallback {
    Engine(EngineError),
    Here(String, String),
}

fn here(word: &str, message: impl Into<String>) -> Fallback {
    Fallback::Here(word.to_string(), message.into())
}

/// The launcher's arguments for program steps: each step's program by its place in the
/// package, then its arguments; [`THEN`] between steps.
fn steps_argv(steps: &[Vec<String>]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let (program, args) = step.split_first().ok_or("an empty step")?;
        let name = Path::new(program).file_name().and_then(|n| n.to_str()).ok_or("a step without a program")?;
        if i > 0 {
            out.push(THEN.to_string());
        }
        out.push(toolchain::program_place(name));
        out.extend(args.iter().cloned());
    }
    Ok(out)
}

/// An action path's place in the input root.
fn under_fs(p: &str) -> String {
    format!("{FS_DIR}{p}")
}

/// Inline bytes, or the blob named by a digest.
fn blob(engine: &Engine, raw: Vec<u8>, d: Option<Digest>) -> Result<Vec<u8>, Fallback> {
    match d {
        Some(d) if raw.is_empty() && d.size_bytes > 0 => {
            Ok(engine.read(&[d]).map_err(Fallback::Engine)?.pop().unwrap_or_default())
        }
        _ => Ok(raw),
    }
}

fn run(program: &str, args: &[&str]) -> Result<String, Fallback> {
    let out = Process::new(program).args(args).output().map_err(|e| here("toolchain", format!("{program}: {e}")))?;
    if !out.status.success() {
        return Err(here("toolchain", format!("{program} {} failed", args.join(" "))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_path_has_one_place_under_the_input_root() {
        assert_eq!(under_fs("/home/a/src/lib.rs"), "fs/home/a/src/lib.rs");
    }

    #[test]
    fn an_engine_nobody_runs_is_a_fast_fallback_after_the_first_try() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let x = Executor::new(RemoteExecConfig { address: format!("grpc://127.0.0.1:{port}"), ..Default::default() });
        let req = ExecRequest::default();
        match x.execute(&req) {
            ExecReply::Local { word, .. } => assert_eq!(word, "unreachable"),
            other => panic!("{other:?}"),
        }
        let t0 = Instant::now();
        assert!(matches!(x.execute(&req), ExecReply::Local { .. }));
        assert!(t0.elapsed() < Duration::from_millis(100), "the second try does not connect again");
    }
}

//! A C or C++ miss run on the remote execution engine (issue #22; docs/remote-execution.md).
//!
//! A worker has no headers of this machine, and a compiler driver started there would run
//! `cc1` and `as` through the worker's own loader and libraries. So the compile is split the
//! way the driver splits it itself:
//! 1. **here**, the preprocessor (`-E -fdirectives-only`: includes and conditionals done,
//!    macros left for the compiler), which reads every header and writes the dependency file
//!    the key needs; the roots in the preprocessed text (its line markers) are moved to the
//!    action's places, so the action is the same from every checkout path;
//! 2. **here**, the driver's plan of compiling that text (`-###`): the `cc1` (`cc1plus`) and
//!    `as` command lines, which it prints without running them;
//! 3. **there**, those two steps, each through the packaged loader (`reapi/toolchain.rs`
//!    packages both programs from their ELF headers), by the launcher ([`launch`]).
//!
//! The object is byte for byte what the one-step compile here writes: the compiler's prefix
//! maps, moved with the roots, write the same names into the debug information, and a
//! compile that can be split runs with `-fdirectives-only` here too (cc/mod.rs), so the
//! macros expand in the compiler proper on both paths and the debug information's columns
//! and recorded switches agree. (Fully preprocessed text, `-E` alone, moves the columns of
//! every token after a macro on its line.)
//! What comes back is checked: an object that names an action's place (a path written into
//! a string the prefix maps do not reach) runs here instead.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::engine::basedir::Rel;
use crate::engine::process::Ran;
use crate::engine::remote::{self, exit_code, launch_with, Launch, Places, Tried};
use crate::protocol::frontends::Lang;
use crate::protocol::remote::{ExecRequest, ROOTS, STEPS, THEN};
use crate::protocol::report::Kind;

/// A compile to split, as the front end knows it.
pub struct Split<'a> {
    pub lang: Lang,
    /// The compiler command (`cc`, `gcc -m32`).
    pub real: &'a [String],
    /// Its arguments without `-c`, the source and `-o` (args.rs `Compile::flags`).
    pub flags: &'a [String],
    pub input: &'a str,
    /// The object file (absolute) and the compile's folder.
    pub output: &'a Path,
    pub cwd: &'a Path,
    pub rel: &'a Rel,
    /// The prefix maps the compile gets (engine/basedir.rs), and the dependency file the
    /// preprocessor writes for the key.
    pub prefix_maps: &'a [String],
    pub depfile: &'a Path,
}

/// Runs the compile on the engine; `None`: run it here (the reason is counted when the
/// engine was asked).
pub fn run(s: &Split<'_>) -> Option<Ran> {
    let places = Places::new(s.rel);
    let local_i = s.output.with_extension(format!("cairn-{}.i", std::process::id()));
    let tried = match request(s, &places, &local_i) {
        Ok(req) => remote::run(&req, &places, &check),
        Err(word) => Tried::Local { word: word.to_string(), tried: false },
    };
    let _ = fs::remove_file(&local_i);
    remote::report(&tried, Kind::Cc);
    match tried {
        Tried::Ran(r, _) => Some(r),
        Tried::Local { .. } => None,
    }
}

/// Preprocesses here and asks the driver for its plan: the request, with the preprocessed
/// file written at `local_i`.
fn request(s: &Split<'_>, places: &Places, local_i: &Path) -> Result<ExecRequest, &'static str> {
    let action_o = places.to_action(&s.output.display().to_string());
    if !action_o.starts_with(ROOTS) {
        return Err("no-root");
    }
    let name = s.output.file_name().and_then(|n| n.to_str()).ok_or("no-root")?;
    let action_i = places.to_action(&s.output.with_file_name(format!("{name}.cairn.i")).display().to_string());
    let action_s = places.to_action(&s.output.with_file_name(format!("{name}.cairn.s")).display().to_string());
    let local_i_text = local_i.display().to_string();
    // 1. The preprocessor, here: every header read, and the dependency file for the key.
    let mut pre = command(s.real);
    pre.args(s.flags).args(s.prefix_maps).args(["-E", "-fdirectives-only"]).arg(s.input).arg("-o").arg(local_i);
    pre.arg("-MD").arg("-MF").arg(s.depfile).current_dir(s.cwd).stdin(Stdio::null());
    let out = pre.output().map_err(|_| "preprocess")?;
    // What the preprocessor says (`#warning`) would not be said by the remote steps: here.
    if !out.status.success() || !out.stderr.is_empty() {
        return Err("preprocess");
    }
    let text = fs::read(local_i).map_err(|_| "preprocess")?;
    fs::write(local_i, places.bytes_to_action(&text)).map_err(|_| "preprocess")?;
    // 2. The driver's plan for the preprocessed text, in the action's paths.
    let mut plan = command(s.real);
    plan.args(s.flags.iter().chain(s.prefix_maps).map(|a| places.to_action(a)));
    let lang = match s.lang {
        Lang::C => "cpp-output",
        Lang::Cxx => "c++-cpp-output",
    };
    plan.args(["-fdirectives-only", "-c", "-x", lang]).arg(local_i).arg("-o").arg(s.output).arg("-###");
    plan.current_dir(s.cwd).stdin(Stdio::null());
    let out = plan.output().map_err(|_| "driver-plan")?;
    if !out.status.success() {
        return Err("driver-plan");
    }
    let mut steps = parse_plan(&String::from_utf8_lossy(&out.stderr)).ok_or("driver-plan")?;
    let [cc1, asm] = &mut steps[..] else { return Err("driver-steps") };
    let is = |p: &str, f: &dyn Fn(&str) -> bool| Path::new(p).file_name().and_then(|n| n.to_str()).is_some_and(f);
    if !is(&cc1[0], &|n| n == "cc1" || n == "cc1plus") || !is(&asm[0], &|n| n == "as" || n.ends_with("-as")) {
        return Err("driver-steps");
    }
    // The temporary assembly file the driver named: cc1's `-o`, and an argument of `as`.
    let tmp_s = cc1.iter().skip_while(|a| *a != "-o").nth(1).cloned().ok_or("driver-steps")?;
    if !asm.contains(&tmp_s) {
        return Err("driver-steps");
    }
    let base_i = Path::new(&local_i_text).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let base_action_i = Path::new(&action_i).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    for step in [&mut *cc1, &mut *asm] {
        for a in step.iter_mut().skip(1) {
            *a = if *a == local_i_text {
                action_i.clone()
            } else if *a == tmp_s {
                action_s.clone()
            } else if *a == base_i {
                base_action_i.clone()
            } else {
                // The object (`-o`), its folder (`-dumpdir`): the action's.
                places.to_action(a)
            };
            if names_local_path(a) {
                return Err("local-path");
            }
        }
    }
    let programs: Vec<String> =
        [&cc1[0], &asm[0]].into_iter().map(|p| resolve(p)).collect::<Option<_>>().ok_or("driver-steps")?;
    cc1[0] = programs[0].clone();
    asm[0] = programs[1].clone();
    let launcher = std::env::current_exe().map_err(|_| "no-launcher")?;
    Ok(ExecRequest {
        launcher: launcher.display().to_string(),
        cwd: places.to_action(&s.cwd.display().to_string()),
        roots: vec![ROOTS.to_string()],
        files: vec![(local_i_text, action_i)],
        outputs: vec![action_o],
        programs,
        steps,
        ..ExecRequest::default()
    })
}

fn command(real: &[String]) -> Command {
    let mut c = Command::new(&real[0]);
    c.args(&real[1..]);
    c
}

/// Whether an argument of a step names a path of this machine (at its start or after its
/// first `=`): a file the worker would not have.
fn names_local_path(a: &str) -> bool {
    let path = if a.starts_with('/') { Some(a) } else { a.split_once('=').map(|(_, v)| v) };
    path.is_some_and(|p| p.starts_with('/') && !p.starts_with(ROOTS))
}

/// A program the driver names: as it is when a path, else found on `PATH`.
fn resolve(p: &str) -> Option<String> {
    if p.contains('/') {
        return Path::new(p).is_file().then(|| p.to_string());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(p)).find(|c| c.is_file()).map(|c| c.display().to_string())
}

/// The commands of a driver's `-###` output: its lines that start with a space, each split
/// into words (a word in double quotes may hold spaces and `\"`, `\\`).
pub fn parse_plan(text: &str) -> Option<Vec<Vec<String>>> {
    let mut steps = Vec::new();
    for line in text.lines().filter(|l| l.starts_with(' ')) {
        let mut words = Vec::new();
        let mut chars = line.chars().peekable();
        loop {
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            let Some(&c) = chars.peek() else { break };
            let mut w = String::new();
            if c == '"' {
                chars.next();
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => w.push(chars.next()?),
                        c => w.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ' ' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
            }
            words.push(w);
        }
        if !words.is_empty() {
            steps.push(words);
        }
    }
    (!steps.is_empty()).then_some(steps)
}

/// An object that names an action's place took a path the prefix maps did not move (a
/// string holding a root): only a compile here writes this machine's path there.
fn check(_: &ExecRequest, _: &Places, files: &[(String, u32, Vec<u8>)]) -> Result<(), String> {
    match files.iter().any(|(_, _, b)| memchr::memmem::find(b, ROOTS.as_bytes()).is_some()) {
        true => Err("names-action-path".into()),
        false => Ok(()),
    }
}

/// The launcher's steps mode, on the worker: `cairn-rustc --cairn-remote-launch --steps
/// --cwd=C --roots=R [--out=P]… -- PROGRAM ARGS… --cairn-then PROGRAM ARGS…`, started
/// through the packaged loader in the input root. Each program (a place in the package) runs
/// through that loader, in order, with the arguments that start with a root moved under the
/// input root; the first that fails ends the action with its code.
pub fn launch(argv: &[OsString]) -> i32 {
    launch_with(argv, run_steps)
}

fn run_steps(l: &Launch) -> io::Result<i32> {
    let (base, tc) = (&l.base, &l.toolchain);
    let moved = |a: &str| -> String {
        match l
            .roots
            .iter()
            .any(|r| a.starts_with(r.as_str()) && matches!(a.as_bytes().get(r.len()), None | Some(b'/')))
        {
            true => format!("{base}{a}"),
            false => a.to_string(),
        }
    };
    let dir = format!("{base}{}", l.cwd);
    fs::create_dir_all(&dir)?;
    for step in l.rest.split(|a| a == THEN) {
        let Some((program, args)) = step.split_first() else { continue };
        let mut cmd = Command::new(format!("{tc}/sys/ld.so"));
        cmd.arg("--library-path").arg(format!("{tc}/sys")).arg(format!("{}/{program}", l.root));
        cmd.args(args.iter().map(|a| moved(a)));
        cmd.env_clear().current_dir(&dir).stdin(Stdio::null());
        let out = cmd.output()?;
        io::stdout().write_all(&l.back(&out.stdout))?;
        io::stderr().write_all(&l.back(&out.stderr))?;
        if !out.status.success() {
            return Ok(exit_code(out.status));
        }
    }
    Ok(0)
}

/// Whether a launcher command line is of program steps (this module's) rather than rustc.
pub fn is_steps(argv: &[OsString]) -> bool {
    argv.get(2).is_some_and(|a| a == STEPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drivers_plan_is_read_word_by_word_with_its_quotes() {
        let text = "Using built-in specs.\nCOLLECT_GCC=cc\nTarget: x86_64-linux-gnu\n \
            /usr/lib/gcc/x86_64-linux-gnu/12/cc1 -fpreprocessed a.i -quiet \"-ffile-prefix-map=/w=.\" \
            \"-DX=\\\"a b\\\"\" -o /tmp/ccZ.s\n as --64 -o a.o /tmp/ccZ.s\nCOMPILER_PATH=/usr/lib\n";
        let steps = parse_plan(text).unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0][0], "/usr/lib/gcc/x86_64-linux-gnu/12/cc1");
        assert_eq!(steps[0][4], "-ffile-prefix-map=/w=.");
        assert_eq!(steps[0][5], "-DX=\"a b\"");
        assert_eq!(steps[1], vec!["as", "--64", "-o", "a.o", "/tmp/ccZ.s"]);
        assert_eq!(parse_plan("no commands\n"), None);
        assert_eq!(parse_plan(" cc1 \"unterminated\n"), None);
    }

    #[test]
    fn a_step_may_name_only_the_actions_places() {
        assert!(!names_local_path("/.cairn-roots/target/debug/x.o"));
        assert!(!names_local_path("-ffile-prefix-map=/.cairn-roots/checkout=."));
        assert!(!names_local_path("-O2"));
        assert!(names_local_path("/home/u/x.h"));
        assert!(names_local_path("-fplugin=/usr/lib/x.so"));
        assert!(names_local_path("-dumpdir=/tmp/x/"));
    }

    #[test]
    fn an_object_naming_an_actions_place_runs_here() {
        let r = ExecRequest::default();
        let p = Places::default();
        let ok = vec![("/.cairn-roots/t/a.o".to_string(), 0o644, b"\x7fELF plain".to_vec())];
        assert_eq!(check(&r, &p, &ok), Ok(()));
        let bad = vec![("/.cairn-roots/t/a.o".to_string(), 0o644, b"\x7fELF /.cairn-roots/checkout/data".to_vec())];
        assert_eq!(check(&r, &p, &bad), Err("names-action-path".to_string()));
    }
}

//! Where a compile's time goes, phase by phase, for profiling cairn itself: with
//! `CAIRN_PROFILE=FILE`, each compile appends one line to FILE: kind, crate, outcome, then
//! `phase=milliseconds` for each phase it went through (`setup`: from the process's `main`
//! to the engine, `key`, `lookup`, `restore`, `run`, `collect`, `hash`: the
//! inputs a miss read, hashed again to store it, `store`, `after`, `report`).
//! Off (one variable read) otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

/// When this process's `main` began (`started`), so the first phase of its compile can say
/// what came before the engine: reading the command line, finding the door, connecting.
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Notes that the process's `main` begins now (the wrapper's first call).
pub fn started() {
    let _ = STARTED.set(Instant::now());
}

/// The phases of one compile, as they end.
pub struct Phases {
    file: Option<PathBuf>,
    last: Instant,
    marks: Vec<(&'static str, f64)>,
}

impl Phases {
    /// The phases of a compile that begins now; with the process's start noted, the first
    /// is `setup`: from `main` to here.
    pub fn start() -> Phases {
        let mut p = Phases {
            file: std::env::var_os("CAIRN_PROFILE").map(PathBuf::from),
            last: Instant::now(),
            marks: Vec::new(),
        };
        if let (Some(_), Some(t)) = (&p.file, STARTED.get()) {
            p.marks.push(("setup", (p.last - *t).as_secs_f64() * 1000.0));
        }
        p
    }

    /// Ends a phase.
    pub fn mark(&mut self, phase: &'static str) {
        if self.file.is_some() {
            let now = Instant::now();
            self.marks.push((phase, (now - self.last).as_secs_f64() * 1000.0));
            self.last = now;
        }
    }

    /// Writes the line (best effort).
    pub fn write(&self, kind: &str, crate_name: &str, outcome: &str) {
        let Some(path) = &self.file else { return };
        let mut line = format!("{kind}\t{crate_name}\t{outcome}");
        for (p, ms) in &self.marks {
            line.push_str(&format!("\t{p}={ms:.2}"));
        }
        line.push('\n');
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

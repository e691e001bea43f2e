//! Reporting each compile's outcome to the daemon, for `cairn stats`.
//!
//! The wrapper appends one short text line per compile to `<mnt>/.cairn/report`, a write-only
//! file of the mount; the daemon parses it (`crate::stats`) and adds it up. One `open` +
//! `write` + `close` through FUSE, tens of microseconds; failures are ignored (stats are never
//! worth failing or slowing a build).

use std::io::Write;
use std::path::Path;

/// One compile's outcome, as reported by the wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A cache hit: the original compile took `compile_ns`, the hit `took_ns`; `bytes` read.
    Hit { compile_ns: u64, took_ns: u64, bytes: u64 },
    /// A miss: compiled in `compile_ns`, stored `bytes`.
    Miss { compile_ns: u64, bytes: u64 },
    /// Not cacheable, with the reason.
    NotCacheable(String),
    /// A cache-side error (the compile went ahead without the cache).
    Error,
}

/// Why a report line was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad report line: {0:?}")]
pub struct BadLine(pub String);

impl Event {
    /// The report line for this event (the wrapper's side).
    pub fn to_line(&self) -> String {
        match self {
            Event::Hit { compile_ns, took_ns, bytes } => format!("v1 hit {compile_ns} {took_ns} {bytes}\n"),
            Event::Miss { compile_ns, bytes } => format!("v1 miss {compile_ns} {bytes}\n"),
            Event::NotCacheable(r) => format!("v1 not-cacheable {}\n", r.replace(char::is_whitespace, "_")),
            Event::Error => "v1 error\n".to_string(),
        }
    }

    /// Parses one report line (the daemon's side).
    pub fn parse(line: &str) -> Result<Event, BadLine> {
        let bad = || BadLine(line.chars().take(80).collect());
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).ok_or_else(bad);
        match (f.first(), f.get(1)) {
            (Some(&"v1"), Some(&"hit")) => Ok(Event::Hit { compile_ns: num(2)?, took_ns: num(3)?, bytes: num(4)? }),
            (Some(&"v1"), Some(&"miss")) => Ok(Event::Miss { compile_ns: num(2)?, bytes: num(3)? }),
            (Some(&"v1"), Some(&"not-cacheable")) => Ok(Event::NotCacheable(f.get(2).ok_or_else(bad)?.to_string())),
            (Some(&"v1"), Some(&"error")) => Ok(Event::Error),
            _ => Err(bad()),
        }
    }
}

/// Sends one event to the daemon behind `mnt`.
pub fn send(mnt: &Path, e: &Event) {
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(mnt.join(".cairn/report")) {
        let _ = f.write_all(e.to_line().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_bad_lines_are_refused() {
        for e in [
            Event::Hit { compile_ns: 5, took_ns: 1, bytes: 9 },
            Event::Miss { compile_ns: 7, bytes: 3 },
            Event::NotCacheable("incremental".into()),
            Event::Error,
        ] {
            assert_eq!(Event::parse(&e.to_line()).unwrap(), e);
        }
        for bad in ["", "v2 hit 1 2 3", "v1 hit one 2 3", "v1 miss 1", "hello"] {
            assert!(Event::parse(bad).is_err(), "{bad}");
        }
    }
}

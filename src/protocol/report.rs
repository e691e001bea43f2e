//! Reporting each compile's outcome to the daemon, for `cairn stats`.
//!
//! The wrapper appends one short text line per compile to `<mnt>/.cairn/report`, a write-only
//! file of the mount; the daemon parses it (`crate::stats`) and adds it up. One `open` +
//! `write` + `close` through FUSE, tens of microseconds; failures are ignored (stats are never
//! worth failing or slowing a build).

use crate::key::Key;

/// Which front end met the build: each is its own kind in the log, in `cairn stats` and in the
/// objects' metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A rustc compile (`cairn-rustc`).
    Rustc,
    /// A build-script run (the launcher cairn-rustc puts in place of a build script).
    BuildScript,
    /// A C or C++ compile of one object file (`cairn-cc`, run by build scripts).
    Cc,
    /// A compile through `clippy-driver` (`cargo clippy`): its lints replayed.
    Clippy,
    /// Target-dir seeding at cargo's first probe of a target dir (engine/seed).
    Seed,
}

impl Kind {
    /// Short, stable text for logs, reports and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rustc => "rustc",
            Kind::BuildScript => "build-script",
            Kind::Cc => "cc",
            Kind::Clippy => "clippy",
            Kind::Seed => "seed",
        }
    }

    /// Parses [`Kind::as_str`]'s text.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "rustc" => Some(Kind::Rustc),
            "build-script" => Some(Kind::BuildScript),
            "cc" => Some(Kind::Cc),
            "clippy" => Some(Kind::Clippy),
            "seed" => Some(Kind::Seed),
            _ => None,
        }
    }
}

/// One compile's outcome, as reported by the wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A cache hit: the original compile took `compile_ns`, the hit `took_ns`; `bytes` read.
    Hit { kind: Kind, compile_ns: u64, took_ns: u64, bytes: u64 },
    /// A miss: compiled in `compile_ns`, stored `bytes`.
    Miss { kind: Kind, compile_ns: u64, bytes: u64 },
    /// Not cacheable, with the reason.
    NotCacheable(String),
    /// A cache-side error (the compile went ahead without the cache).
    Error,
    /// A build of this build set begins (sent by the first compile of a cargo run): the daemon
    /// fetches the keys the set's recent builds used.
    Begin(Key),
    /// A compile of this build set used these keys (its manifest and result).
    Used(Key, Vec<Key>),
    /// A fresh target dir was seeded (engine/seed): `units` put in place in `took_ns`, whose
    /// compiles (and script runs) had taken `compile_ns`; `bytes` written.
    Seeded { units: u64, compile_ns: u64, took_ns: u64, bytes: u64 },
    /// A compile tried on the remote execution engine (reapi/).
    Remote(Remote),
}

/// What became of a compile tried on the remote execution engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A worker ran it (a rustc or a C/C++ compile).
    Ran(Kind),
    /// The engine answered from its action cache (a compile of the same action, from any
    /// checkout path or machine, ran before).
    Cached(Kind),
    /// It ran here after all, and why (`unreachable`, `timeout`, `env` …).
    Local(String),
    /// It was not sent, and why (`links`, `cannot-split`, `package-too-large` …): a compile
    /// that stays here by rule, with an engine configured.
    Skipped(String),
}

/// Why a report line was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad report line: {0:?}")]
pub struct BadLine(pub String);

impl Event {
    /// The report line for this event (the wrapper's side).
    pub fn to_line(&self) -> String {
        match self {
            // The kind is a trailing field, absent for rustc: a daemon that predates kinds
            // still reads rustc's lines.
            Event::Hit { kind, compile_ns, took_ns, bytes } => {
                format!("v1 hit {compile_ns} {took_ns} {bytes}{}\n", kind_suffix(*kind))
            }
            Event::Miss { kind, compile_ns, bytes } => format!("v1 miss {compile_ns} {bytes}{}\n", kind_suffix(*kind)),
            Event::NotCacheable(r) => format!("v1 not-cacheable {}\n", r.replace(char::is_whitespace, "_")),
            Event::Error => "v1 error\n".to_string(),
            Event::Begin(set) => format!("v1 begin {set}\n"),
            Event::Seeded { units, compile_ns, took_ns, bytes } => {
                format!("v1 seeded {units} {compile_ns} {took_ns} {bytes}\n")
            }
            Event::Remote(Remote::Ran(kind)) => format!("v1 remote ran{}\n", kind_suffix(*kind)),
            Event::Remote(Remote::Cached(kind)) => format!("v1 remote cached{}\n", kind_suffix(*kind)),
            Event::Remote(Remote::Local(why)) => format!("v1 remote local {}\n", why.replace(char::is_whitespace, "_")),
            Event::Remote(Remote::Skipped(why)) => {
                format!("v1 remote skipped {}\n", why.replace(char::is_whitespace, "_"))
            }
            Event::Used(set, keys) => {
                let keys: Vec<String> = keys.iter().map(|k| k.to_hex()).collect();
                format!("v1 used {set} {}\n", keys.join(" "))
            }
        }
    }

    /// Parses one report line (the daemon's side).
    pub fn parse(line: &str) -> Result<Event, BadLine> {
        let bad = || BadLine(line.chars().take(80).collect());
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).ok_or_else(bad);
        let key = |i: usize| f.get(i).and_then(|s| Key::parse(s)).ok_or_else(bad);
        let kind = |i: usize| match f.get(i) {
            None => Ok(Kind::Rustc),
            Some(s) => Kind::parse(s).ok_or_else(bad),
        };
        match (f.first(), f.get(1)) {
            (Some(&"v1"), Some(&"hit")) => {
                Ok(Event::Hit { kind: kind(5)?, compile_ns: num(2)?, took_ns: num(3)?, bytes: num(4)? })
            }
            (Some(&"v1"), Some(&"miss")) => Ok(Event::Miss { kind: kind(4)?, compile_ns: num(2)?, bytes: num(3)? }),
            (Some(&"v1"), Some(&"not-cacheable")) => Ok(Event::NotCacheable(f.get(2).ok_or_else(bad)?.to_string())),
            (Some(&"v1"), Some(&"error")) => Ok(Event::Error),
            (Some(&"v1"), Some(&"begin")) => Ok(Event::Begin(key(2)?)),
            (Some(&"v1"), Some(&"seeded")) => {
                Ok(Event::Seeded { units: num(2)?, compile_ns: num(3)?, took_ns: num(4)?, bytes: num(5)? })
            }
            (Some(&"v1"), Some(&"remote")) => match (f.get(2), f.get(3)) {
                (Some(&"ran"), _) => Ok(Event::Remote(Remote::Ran(kind(3)?))),
                (Some(&"cached"), _) => Ok(Event::Remote(Remote::Cached(kind(3)?))),
                (Some(&"local"), Some(why)) => Ok(Event::Remote(Remote::Local(why.to_string()))),
                (Some(&"skipped"), Some(why)) => Ok(Event::Remote(Remote::Skipped(why.to_string()))),
                _ => Err(bad()),
            },
            (Some(&"v1"), Some(&"used")) if f.len() > 3 => {
                Ok(Event::Used(key(2)?, (3..f.len()).map(key).collect::<Result<_, _>>()?))
            }
            _ => Err(bad()),
        }
    }
}

fn kind_suffix(kind: Kind) -> String {
    match kind {
        Kind::Rustc => String::new(),
        other => format!(" {}", other.as_str()),
    }
}

/// Events as the text written to `.cairn/report`, one line each.
pub fn encode(events: &[Event]) -> String {
    events.iter().map(Event::to_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_bad_lines_are_refused() {
        for e in [
            Event::Hit { kind: Kind::Rustc, compile_ns: 5, took_ns: 1, bytes: 9 },
            Event::Miss { kind: Kind::Rustc, compile_ns: 7, bytes: 3 },
            Event::Hit { kind: Kind::BuildScript, compile_ns: 5, took_ns: 1, bytes: 9 },
            Event::Miss { kind: Kind::Cc, compile_ns: 7, bytes: 3 },
            Event::NotCacheable("incremental".into()),
            Event::Error,
            Event::Begin(Key([3; 32])),
            Event::Used(Key([3; 32]), vec![Key([4; 32]), Key([5; 32])]),
            Event::Remote(Remote::Ran(Kind::Rustc)),
            Event::Remote(Remote::Cached(Kind::Cc)),
            Event::Remote(Remote::Local("unreachable".into())),
            Event::Remote(Remote::Skipped("cannot-split".into())),
        ] {
            assert_eq!(Event::parse(&e.to_line()).unwrap(), e);
        }
        assert_eq!(Event::to_line(&Event::Miss { kind: Kind::Rustc, compile_ns: 7, bytes: 3 }), "v1 miss 7 3\n");
        assert_eq!(Event::to_line(&Event::Remote(Remote::Ran(Kind::Rustc))), "v1 remote ran\n");
        for bad in
            ["", "v2 hit 1 2 3", "v1 hit one 2 3", "v1 miss 1", "hello", "v1 miss 1 2 python", "v1 remote skipped"]
        {
            assert!(Event::parse(bad).is_err(), "{bad}");
        }
    }
}

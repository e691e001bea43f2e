//! What became of one compile, decided once by the engine for every front end, and how each
//! outcome is written in the log and counted by the daemon.
//!
//! | outcome | log word | report (`cairn stats`) |
//! |---|---|---|
//! | hit | `hit` (`hit:failed`: a stored failure replayed) | hit, with the compile time saved |
//! | miss, stored | `miss` | miss, with the bytes stored |
//! | the tool failed | `miss:failed` | miss |
//! | an input changed during the run | `miss:changed` | miss: the user's doing, not a fault |
//! | not cacheable | `not-cacheable:<reason>` | not cacheable, by reason |
//! | a fault of the cache (no mount, key, restore, store) | `error:<stage>:<what>` | error |
//!
//! A damaged object is its own log line (`error:object:<what>`, with its key) and is removed;
//! the compile goes on to its own outcome, which is what is counted.

use std::time::Duration;

use crate::protocol::report::{Event, Kind};

/// Where a fault of the cache happened, and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub stage: &'static str,
    pub what: String,
}

impl Fault {
    pub fn new(stage: &'static str, what: &str) -> Fault {
        Fault { stage, what: what.to_string() }
    }
}

/// One compile's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Restored from the cache; `exit_code` is the stored run's (non-zero: a failure replayed).
    Hit { exit_code: i32, compile: Duration, bytes: u64 },
    /// Ran and stored.
    Miss { bytes: u64 },
    /// The tool failed (its failure may be stored, where the front end allows).
    MissFailed,
    /// An input changed while the tool ran: nothing stored.
    MissChanged(String),
    /// Not cacheable as it stands.
    NotCacheable(String),
    /// A fault of the cache: the tool ran as if cairn were absent.
    Error(Fault),
    /// A damaged object or manifest, removed (a log line of its own, not a compile's outcome).
    Damaged(String),
}

impl Outcome {
    /// The log's outcome column: short words joined with `:` and `_`, no white space.
    pub fn word(&self) -> String {
        match self {
            Outcome::Hit { exit_code: 0, .. } => "hit".into(),
            Outcome::Hit { .. } => "hit:failed".into(),
            Outcome::Miss { .. } => "miss".into(),
            Outcome::MissFailed => "miss:failed".into(),
            Outcome::MissChanged(_) => "miss:changed".into(),
            Outcome::NotCacheable(r) => format!("not-cacheable:{}", oneword(r)),
            Outcome::Error(f) if f.what.is_empty() => format!("error:{}", f.stage),
            Outcome::Error(f) => format!("error:{}:{}", f.stage, oneword(&f.what)),
            Outcome::Damaged(what) => format!("error:object:{}", oneword(what)),
        }
    }

    /// What the daemon is told (`None`: nothing, for a damaged object's own line).
    /// `took`: the whole compile through cairn; `ran`: the tool's run, on a miss.
    pub fn event(&self, kind: Kind, took: Duration, ran: Option<Duration>) -> Option<Event> {
        let compile_ns = ran.map(|d| d.as_nanos() as u64).unwrap_or(0);
        match self {
            Outcome::Hit { compile, bytes, .. } => Some(Event::Hit {
                kind,
                compile_ns: compile.as_nanos() as u64,
                took_ns: took.as_nanos() as u64,
                bytes: *bytes,
            }),
            Outcome::Miss { bytes } => Some(Event::Miss { kind, compile_ns, bytes: *bytes }),
            Outcome::MissFailed | Outcome::MissChanged(_) => Some(Event::Miss { kind, compile_ns, bytes: 0 }),
            Outcome::NotCacheable(r) => Some(Event::NotCacheable(r.clone())),
            Outcome::Error(_) => Some(Event::Error),
            Outcome::Damaged(_) => None,
        }
    }
}

/// The first few words of an error, joined with `_`: one column of the log.
pub fn oneword(s: &str) -> String {
    s.split_whitespace().take(6).collect::<Vec<_>>().join("_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_one_log_word_and_at_most_one_report() {
        let all = [
            Outcome::Hit { exit_code: 0, compile: Duration::from_millis(5), bytes: 9 },
            Outcome::Hit { exit_code: 1, compile: Duration::ZERO, bytes: 9 },
            Outcome::Miss { bytes: 9 },
            Outcome::MissFailed,
            Outcome::MissChanged("/w/src/lib.rs".into()),
            Outcome::NotCacheable("multiple inputs".into()),
            Outcome::Error(Fault::new("store", "No space left on device (os error 28)")),
            Outcome::Error(Fault::new("no-mount", "")),
            Outcome::Damaged("bad magic".into()),
        ];
        let words: Vec<String> = all.iter().map(Outcome::word).collect();
        assert_eq!(
            words,
            [
                "hit",
                "hit:failed",
                "miss",
                "miss:failed",
                "miss:changed",
                "not-cacheable:multiple_inputs",
                "error:store:No_space_left_on_device_(os",
                "error:no-mount",
                "error:object:bad_magic"
            ]
        );
        assert!(words.iter().all(|w| !w.contains(char::is_whitespace)));
        let t = Duration::from_millis(1);
        assert_eq!(
            all[4].event(Kind::Cc, t, Some(t)),
            Some(Event::Miss { kind: Kind::Cc, compile_ns: 1_000_000, bytes: 0 })
        );
        assert_eq!(all[6].event(Kind::BuildScript, t, None), Some(Event::Error));
        assert_eq!(all[8].event(Kind::Rustc, t, None), None);
    }
}

//! Counters for `cairn stats`: what the wrapper reported, since the daemon started and since
//! the last `cairn stats --zero`.
//!
//! The wrapper is the only one that knows whether a compile hit, how long the original
//! compile took and how long the hit took, so it reports one line per compile to the daemon
//! by writing it into `<mnt>/.cairn/report` (see `protocol::report`). This module parses those
//! lines and keeps the sums. Pure: no I/O.
//!
//! Time saved = the sum over hits of (original compile time − time the hit took).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::protocol::report::{Event, Kind, Remote};

/// Sums over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub hits: u64,
    pub misses: u64,
    pub not_cacheable: BTreeMap<String, u64>,
    pub errors: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Sum over hits of the original compile time.
    pub hit_compile_ns: u64,
    /// Sum over hits of max(0, original compile time − hit time).
    pub saved_ns: u64,
    /// Sum over misses of the compile time.
    pub miss_compile_ns: u64,
    /// The same sums for each kind (`rustc`, `build-script`, `cc`); the fields above add
    /// them all up.
    pub kinds: BTreeMap<String, KindCounters>,
    /// Units put into fresh target dirs by seeding (engine/seed), so cargo ran nothing for
    /// them; and max(0, their compile time − the time seeding took), also in `saved_ns`.
    #[serde(default)]
    pub seeded_units: u64,
    #[serde(default)]
    pub seeded_saved_ns: u64,
    /// Compiles run on the remote execution engine, and those tried there that ran here
    /// after all, by reason.
    #[serde(default)]
    pub remote_executed: u64,
    #[serde(default)]
    pub remote_fallbacks: BTreeMap<String, u64>,
    /// Of the compiles run on the engine, those it answered from its action cache.
    #[serde(default)]
    pub remote_cached: u64,
    /// Of the compiles run on the engine, the C and C++ ones (build scripts' objects).
    #[serde(default)]
    pub remote_executed_cc: u64,
    /// Compiles not sent to the engine (one is configured) by rule, by reason.
    #[serde(default)]
    pub remote_skipped: BTreeMap<String, u64>,
}

/// Hits, misses and time saved of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounters {
    pub hits: u64,
    pub misses: u64,
    pub saved_ns: u64,
    pub miss_compile_ns: u64,
}

impl Counters {
    fn apply(&mut self, e: &Event) {
        match e {
            Event::Hit { kind, compile_ns, took_ns, bytes } => {
                let saved = compile_ns.saturating_sub(*took_ns);
                self.hits += 1;
                self.bytes_read += bytes;
                self.hit_compile_ns += compile_ns;
                self.saved_ns += saved;
                let k = self.kinds.entry(kind.as_str().to_string()).or_default();
                k.hits += 1;
                k.saved_ns += saved;
            }
            Event::Miss { kind, compile_ns, bytes } => {
                self.misses += 1;
                self.bytes_written += bytes;
                self.miss_compile_ns += compile_ns;
                let k = self.kinds.entry(kind.as_str().to_string()).or_default();
                k.misses += 1;
                k.miss_compile_ns += compile_ns;
            }
            Event::Seeded { units, compile_ns, took_ns, bytes } => {
                let saved = compile_ns.saturating_sub(*took_ns);
                self.seeded_units += units;
                self.seeded_saved_ns += saved;
                self.saved_ns += saved;
                self.bytes_read += bytes;
            }
            Event::NotCacheable(r) => *self.not_cacheable.entry(r.clone()).or_insert(0) += 1,
            Event::Remote(Remote::Ran(kind)) => {
                self.remote_executed += 1;
                self.remote_executed_cc += (*kind == Kind::Cc) as u64;
            }
            Event::Remote(Remote::Cached(kind)) => {
                self.remote_executed += 1;
                self.remote_executed_cc += (*kind == Kind::Cc) as u64;
                self.remote_cached += 1;
            }
            Event::Remote(Remote::Local(why)) => *self.remote_fallbacks.entry(why.clone()).or_insert(0) += 1,
            Event::Remote(Remote::Skipped(why)) => *self.remote_skipped.entry(why.clone()).or_insert(0) += 1,
            // Build sets are the daemon's business (src/build_sets.rs), not counters.
            Event::Begin(_) | Event::Used(..) => {}
            Event::Error => self.errors += 1,
        }
    }
}

/// Counters since the daemon started, and since the last zeroing (persisted by the daemon).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub since_start: Counters,
    pub since_zero: Counters,
    /// When the daemon started and when the counters were last zeroed, seconds since the epoch.
    pub started_unix: u64,
    pub zeroed_unix: u64,
}

/// Numbers from outside the stats: the store and the S3 tier.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub used: u64,
    pub limit: u64,
    pub objects: u64,
    pub evicted: u64,
    pub corrupt_removed: u64,
    pub uploads_pending: u64,
    pub uploads_failed: u64,
    pub uploads_skipped: u64,
    pub unsigned_refused: u64,
    pub s3_read_only: bool,
    pub fetched: u64,
    pub prefetched: u64,
    pub s3_configured: bool,
    /// What is wrong with S3 now, explained with the fix.
    pub s3_problem: Option<String>,
    /// How the daemon is reached.
    pub doors: Doors,
}

/// The daemon's doors: the mount (where FUSE can be used) and the socket (always), and why
/// there is no mount when there is none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doors {
    pub mount: Option<String>,
    pub socket: Option<String>,
    pub why_no_mount: Option<String>,
}

impl Stats {
    /// Counts one event in both periods.
    pub fn apply(&mut self, e: &Event) {
        self.since_start.apply(e);
        self.since_zero.apply(e);
    }

    /// Starts the "since zero" period over.
    pub fn zero(&mut self, now_unix: u64) {
        self.since_zero = Counters::default();
        self.zeroed_unix = now_unix;
    }

    /// The JSON document of `cairn stats --json` and `<mnt>/.cairn/stats.json`. Top-level
    /// counters are "since zero"; both periods are also given in full.
    pub fn to_json(&self, g: &Gauges) -> String {
        let z = &self.since_zero;
        let doc = serde_json::json!({
            "pid": std::process::id(),
            "hits": z.hits,
            "misses": z.misses,
            "direct_hits": z.hits,
            "not_cacheable": z.not_cacheable,
            "errors": z.errors,
            "bytes_read": z.bytes_read,
            "bytes_written": z.bytes_written,
            "time_saved_secs": z.saved_ns as f64 / 1e9,
            "hit_rate": rate(z),
            "seeded_units": z.seeded_units,
            "seed_saved_secs": z.seeded_saved_ns as f64 / 1e9,
            "remote_executed": z.remote_executed,
            "remote_executed_cc": z.remote_executed_cc,
            "remote_skipped": z.remote_skipped,
            "remote_cached": z.remote_cached,
            "remote_fallbacks": z.remote_fallbacks,
            "kinds": period(z, self.zeroed_unix)["kinds"],
            "local": { "used_bytes": g.used, "limit_bytes": g.limit, "objects": g.objects,
                       "evicted": g.evicted, "corrupt_removed": g.corrupt_removed },
            "s3": { "configured": g.s3_configured, "uploads_pending": g.uploads_pending,
                    "uploads_failed": g.uploads_failed, "uploads_skipped": g.uploads_skipped,
                    "read_only": g.s3_read_only, "unsigned_refused": g.unsigned_refused,
                    "fetched": g.fetched, "prefetched": g.prefetched, "problem": g.s3_problem },
            "doors": { "mount": g.doors.mount, "socket": g.doors.socket, "why_no_mount": g.doors.why_no_mount },
            "since_zero": period(z, self.zeroed_unix),
            "since_start": period(&self.since_start, self.started_unix),
        });
        serde_json::to_string_pretty(&doc).expect("a JSON value always serializes") + "\n"
    }
}

fn rate(c: &Counters) -> f64 {
    let n = c.hits + c.misses;
    if n == 0 {
        0.0
    } else {
        c.hits as f64 / n as f64
    }
}

fn period(c: &Counters, since: u64) -> serde_json::Value {
    serde_json::json!({
        "since_unix": since,
        "hits": c.hits,
        "misses": c.misses,
        "direct_hits": c.hits,
        "not_cacheable": c.not_cacheable,
        "errors": c.errors,
        "bytes_read": c.bytes_read,
        "bytes_written": c.bytes_written,
        "time_saved_secs": c.saved_ns as f64 / 1e9,
        "hit_compile_secs": c.hit_compile_ns as f64 / 1e9,
        "miss_compile_secs": c.miss_compile_ns as f64 / 1e9,
        "seeded_units": c.seeded_units,
        "seed_saved_secs": c.seeded_saved_ns as f64 / 1e9,
        "remote_executed": c.remote_executed,
        "remote_executed_cc": c.remote_executed_cc,
        "remote_skipped": c.remote_skipped,
        "remote_cached": c.remote_cached,
        "remote_fallbacks": c.remote_fallbacks,
        "kinds": c.kinds.iter().map(|(name, k)| (name.clone(), serde_json::json!({
            "hits": k.hits,
            "misses": k.misses,
            "time_saved_secs": k.saved_ns as f64 / 1e9,
            "miss_compile_secs": k.miss_compile_ns as f64 / 1e9,
        }))).collect::<serde_json::Map<_, _>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_saved_is_compile_time_minus_hit_time_and_never_negative() {
        let mut s = Stats::default();
        s.apply(&Event::Hit { kind: Kind::Rustc, compile_ns: 3_000_000_000, took_ns: 1_000_000_000, bytes: 1 });
        s.apply(&Event::Hit { kind: Kind::BuildScript, compile_ns: 1, took_ns: 5, bytes: 1 });
        s.apply(&Event::Miss { kind: Kind::Cc, compile_ns: 4, bytes: 2 });
        assert_eq!(s.since_zero.saved_ns, 2_000_000_000);
        let doc: serde_json::Value = serde_json::from_str(&s.to_json(&Gauges::default())).unwrap();
        assert_eq!(doc["hits"], 2);
        assert_eq!(doc["misses"], 1);
        assert_eq!(doc["time_saved_secs"], 2.0);
        assert_eq!(doc["kinds"]["rustc"]["hits"], 1);
        assert_eq!(doc["kinds"]["build-script"]["hits"], 1);
        assert_eq!(doc["kinds"]["cc"]["misses"], 1);
        assert_eq!(doc["kinds"]["rustc"]["time_saved_secs"], 2.0);
        s.zero(10);
        assert_eq!(s.since_zero, Counters::default());
        assert_eq!(s.since_start.hits, 2);
    }

    #[test]
    fn seeded_units_count_and_their_saved_time_adds_to_the_total() {
        let mut s = Stats::default();
        s.apply(&Event::Hit { kind: Kind::Rustc, compile_ns: 3_000_000_000, took_ns: 1_000_000_000, bytes: 1 });
        s.apply(&Event::Seeded { units: 40, compile_ns: 9_000_000_000, took_ns: 1_000_000_000, bytes: 5 });
        assert_eq!((s.since_zero.seeded_units, s.since_zero.seeded_saved_ns), (40, 8_000_000_000));
        assert_eq!(s.since_zero.saved_ns, 10_000_000_000);
        s.apply(&Event::Seeded { units: 1, compile_ns: 1, took_ns: 9, bytes: 0 });
        assert_eq!(s.since_zero.saved_ns, 10_000_000_000, "never negative");
        let doc: serde_json::Value = serde_json::from_str(&s.to_json(&Gauges::default())).unwrap();
        assert_eq!(doc["since_start"]["seeded_units"], 41);
        assert_eq!(doc["seed_saved_secs"], 8.0);
        // A report line round-trips.
        let e = Event::Seeded { units: 3, compile_ns: 4, took_ns: 5, bytes: 6 };
        assert_eq!(Event::parse(&e.to_line()).unwrap(), e);
    }
}

//! The admin commands, which work through the daemon's door like any program would: `cairn
//! stats`, `rm`, `evict`, `clear`. Through the mount, every removal is an `unlink` of
//! `<mnt>/<key>`, the same path as a user's `rm` (so it reaches S3 too once configured);
//! without one, the socket's `REMOVE` makes the same call in the daemon.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::engine::door::Door;
use crate::key::Key;

/// One removed entry, for printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub key: Key,
    pub crate_name: Option<String>,
    pub size: u64,
}

/// Parses `30d`, `12h`, `90m`, `45s` or plain seconds.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, mult) = match t.chars().last() {
        Some('d') => (&t[..t.len() - 1], 86_400),
        Some('h') => (&t[..t.len() - 1], 3_600),
        Some('m') => (&t[..t.len() - 1], 60),
        Some('s') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("bad age {text:?}: try 30d, 12h, 90m or 45s"))?;
    Ok(Duration::from_secs(n * mult))
}

/// Every object: key, size, last use.
fn objects(door: &Door) -> io::Result<Vec<(Key, u64, SystemTime)>> {
    Ok(door
        .list("")?
        .into_iter()
        .filter_map(|l| Some((Key::parse(&l.name)?, l.size, UNIX_EPOCH + Duration::from_nanos(l.mtime_ns))))
        .collect())
}

fn remove(door: &Door, key: Key, size: u64) -> io::Result<Removed> {
    let name = key.to_hex();
    let crate_name = door.xattr(&name, "user.cairn.crate").and_then(|v| String::from_utf8(v).ok());
    door.remove(&name)?;
    Ok(Removed { key, crate_name, size })
}

/// Every object's size, by name.
fn sizes(door: &Door) -> io::Result<std::collections::HashMap<String, u64>> {
    Ok(door.list("")?.into_iter().map(|l| (l.name, l.size)).collect())
}

/// Removes entries by key (`cairn rm`), as `rm <mnt>/<key>` does: locally and in the bucket.
/// A key that is not there is an error naming it; the others are still removed.
pub fn remove_keys(door: &Door, keys: &[Key]) -> (Vec<Removed>, Vec<String>) {
    let sizes = sizes(door).unwrap_or_default();
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for key in keys {
        let size = sizes.get(&key.to_hex()).copied().unwrap_or(0);
        match remove(door, *key, size) {
            Ok(r) => done.push(r),
            Err(e) if e.kind() == io::ErrorKind::NotFound => failed.push(format!("{key}: no such entry")),
            Err(e) => failed.push(format!("{key}: {e}")),
        }
    }
    (done, failed)
}

/// Removes every entry of one crate (listed in `<mnt>/by-crate/<name>/`).
pub fn evict_crate(door: &Door, name: &str) -> io::Result<Vec<Removed>> {
    // Only a crate name: `..`, `/` or an empty name would make `by-crate/<name>` the whole
    // mount, and every entry (and its bucket copy) would go.
    if !is_crate_name(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a crate name (letters, digits, `_` and `-` only)"),
        ));
    }
    let mut out = Vec::new();
    let listing = match door.list(&format!("by-crate/{name}")) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let sizes = sizes(door)?;
    for e in listing {
        let Some(key) = Key::parse(&e.name) else { continue };
        let size = sizes.get(&e.name).copied().unwrap_or(0);
        match remove(door, key, size) {
            Ok(r) => out.push(r),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Whether `name` can be a crate or package name: ASCII letters, digits, `_` and `-`.
pub fn is_crate_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Removes every entry not used for `age`.
pub fn evict_older(door: &Door, age: Duration) -> io::Result<Vec<Removed>> {
    let cutoff = SystemTime::now() - age;
    let mut out = Vec::new();
    for (key, size, used) in objects(door)? {
        if used < cutoff {
            out.push(remove(door, key, size)?);
        }
    }
    Ok(out)
}

/// Removes every entry.
pub fn clear(door: &Door) -> io::Result<Vec<Removed>> {
    objects(door)?.into_iter().map(|(key, size, _)| remove(door, key, size)).collect()
}

/// The daemon's stats document.
pub fn stats_json(door: &Door) -> io::Result<String> {
    String::from_utf8(door.read(".cairn/stats.json")?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The daemon's process id and its pending S3 work, read before it goes away (`cairn umount`
/// waits for that process, so uploads are done when it returns).
pub fn daemon_of(door: &Door) -> Option<(u32, u64)> {
    let v: serde_json::Value = serde_json::from_str(&stats_json(door).ok()?).ok()?;
    let pid = u32::try_from(v["pid"].as_u64()?).ok()?;
    let s3 = &v["s3"];
    Some((pid, s3["uploads_pending"].as_u64().unwrap_or(0) + s3["deletes_pending"].as_u64().unwrap_or(0)))
}

/// Waits until process `pid` has exited, or `limit` passes; returns whether it exited.
pub fn wait_exit(pid: u32, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    // Gone, or a zombie (it has exited; its parent has not reaped it yet) — but a zombie
    // leader whose other threads are still exiting still holds the process's files: its
    // socket still takes connections that are never answered. Running until no thread runs.
    let alive = |stat: &std::path::Path| {
        std::fs::read_to_string(stat)
            .ok()
            .and_then(|st| st.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    };
    let running = || {
        let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
        alive(&proc.join("stat"))
            || std::fs::read_dir(proc.join("task"))
                .map(|d| d.flatten().any(|t| alive(&t.path().join("stat"))))
                .unwrap_or(false)
    };
    while running() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    true
}

/// Why the daemon behind `door` serves without a mount, as its stats say; `None` when it is
/// mounted or cannot be asked.
pub fn why_no_mount(door: &Door) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&stats_json(door).ok()?).ok()?;
    v["doors"]["why_no_mount"].as_str().map(str::to_string)
}

/// Starts the "since zero" counters over.
pub fn zero(door: &Door) -> io::Result<()> {
    door.append(".cairn/control", b"zero\n")
}

fn duration_text(secs: f64) -> String {
    if secs >= 3600.0 {
        format!("{:.0} h {:.0} min", (secs / 3600.0).floor(), (secs % 3600.0) / 60.0)
    } else if secs >= 60.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{secs:.1} s")
    }
}

/// The short table `cairn stats` prints.
pub fn render(json: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("unreadable stats: {e}"))?;
    let z = &v["since_zero"];
    let s = &v["since_start"];
    let n = |x: &serde_json::Value| x.as_u64().unwrap_or(0);
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(0.0);
    let rate = |p: &serde_json::Value| {
        let (h, m) = (n(&p["hits"]), n(&p["misses"]));
        if h + m == 0 {
            "-".to_string()
        } else {
            format!("{:.0} %", 100.0 * h as f64 / (h + m) as f64)
        }
    };
    let nc = |p: &serde_json::Value| {
        let map = p["not_cacheable"].as_object().cloned().unwrap_or_default();
        if map.is_empty() {
            "0".to_string()
        } else {
            map.iter().map(|(k, c)| format!("{k} {}", c.as_u64().unwrap_or(0))).collect::<Vec<_>>().join(", ")
        }
    };
    let size = crate::size::format_size;
    let mut out = String::new();
    out.push_str(&format!("{:<16}{:>24}{:>24}\n", "", "since zero", "since daemon start"));
    out.push_str(&format!("{:<16}{:>24}{:>24}\n", "hits", n(&z["hits"]), n(&s["hits"])));
    out.push_str(&format!("{:<16}{:>24}{:>24}\n", "misses", n(&z["misses"]), n(&s["misses"])));
    out.push_str(&format!("{:<16}{:>24}{:>24}\n", "hit rate", rate(z), rate(s)));
    out.push_str(&format!(
        "{:<16}{:>24}{:>24}\n",
        "time saved",
        duration_text(f(&z["time_saved_secs"])),
        duration_text(f(&s["time_saved_secs"]))
    ));
    // One line per kind (rustc compiles, build-script runs, C/C++ objects): hits / misses, saved.
    let kinds = |p: &serde_json::Value, k: &str| {
        let c = &p["kinds"][k];
        format!("{} / {}, {}", n(&c["hits"]), n(&c["misses"]), duration_text(f(&c["time_saved_secs"])))
    };
    for (k, label) in [("rustc", "  rustc"), ("build-script", "  build scripts"), ("cc", "  C/C++ objects")] {
        if !z["kinds"][k].is_null() || !s["kinds"][k].is_null() {
            out.push_str(&format!("{:<16}{:>24}{:>24}\n", label, kinds(z, k), kinds(s, k)));
        }
    }
    if n(&z["seeded_units"]) + n(&s["seeded_units"]) > 0 {
        let seeded = |p: &serde_json::Value| {
            format!("{} units, {}", n(&p["seeded_units"]), duration_text(f(&p["seed_saved_secs"])))
        };
        out.push_str(&format!("{:<16}{:>24}{:>24}\n", "  seeded", seeded(z), seeded(s)));
    }
    // Compiles tried on the remote execution engine: run there / run here after all (why).
    let fallbacks = |p: &serde_json::Value| -> (u64, String) {
        let m = p["remote_fallbacks"].as_object().cloned().unwrap_or_default();
        let total: u64 = m.values().map(n).sum();
        let why: Vec<String> = m.iter().map(|(k, v)| format!("{k} {}", n(v))).collect();
        (total, why.join(", "))
    };
    let (zf, zwhy) = fallbacks(z);
    let (sf, _) = fallbacks(s);
    if n(&z["remote_executed"]) + n(&s["remote_executed"]) + zf + sf > 0 {
        let remote = |p: &serde_json::Value, f: u64| match n(&p["remote_executed_cc"]) {
            0 => format!("{} ran / {} here", n(&p["remote_executed"]), f),
            c => format!("{} ran ({c} C) / {} here", n(&p["remote_executed"]), f),
        };
        out.push_str(&format!("{:<16}{:>24}{:>24}\n", "  remote exec", remote(z, zf), remote(s, sf)));
        // Of those that ran, the ones the engine answered from its action cache.
        if n(&z["remote_cached"]) + n(&s["remote_cached"]) > 0 {
            let cached = |p: &serde_json::Value| format!("{} cached there", n(&p["remote_cached"]));
            out.push_str(&format!("{:<16}{:>24}{:>24}\n", "  of which", cached(z), cached(s)));
        }
        if !zwhy.is_empty() {
            out.push_str(&format!("{:<16}{}\n", "  ran here", zwhy));
        }
        // Compiles that stay here by rule (links, cannot be split …), since zero.
        let skipped = z["remote_skipped"].as_object().cloned().unwrap_or_default();
        if !skipped.is_empty() {
            let why: Vec<String> = skipped.iter().map(|(k, v)| format!("{k} {}", n(v))).collect();
            out.push_str(&format!("{:<16}{}\n", "  not sent", why.join(", ")));
        }
    }
    out.push_str(&format!("{:<16}{:>24}{:>24}\n", "errors", n(&z["errors"]), n(&s["errors"])));
    out.push_str(&format!(
        "{:<16}{:>24}{:>24}\n",
        "read / written",
        format!("{} / {}", size(n(&z["bytes_read"])), size(n(&z["bytes_written"]))),
        format!("{} / {}", size(n(&s["bytes_read"])), size(n(&s["bytes_written"])))
    ));
    out.push_str(&format!("{:<16}{}\n", "not cacheable", nc(z)));
    let l = &v["local"];
    out.push_str(&format!(
        "{:<16}{} of {} in {} objects ({} evicted, {} corrupt removed)\n",
        "local store",
        size(n(&l["used_bytes"])),
        size(n(&l["limit_bytes"])),
        n(&l["objects"]),
        n(&l["evicted"]),
        n(&l["corrupt_removed"])
    ));
    let d = &v["doors"];
    let socket = d["socket"].as_str().unwrap_or("-");
    let doors = match (d["mount"].as_str(), d["why_no_mount"].as_str()) {
        (Some(mp), _) => format!("mount {mp}, and socket {socket}"),
        (None, Some(why)) => format!("socket {socket} only: {why}"),
        (None, None) => format!("socket {socket}"),
    };
    out.push_str(&format!("{:<16}{doors}\n", "served through"));
    // The common surprise: cargo's dev profile compiles workspace members incrementally, and
    // incremental compiles are passed through.
    let incremental = z["not_cacheable"]["incremental"].as_u64().unwrap_or(0);
    if incremental > 0 && incremental * 4 >= n(&z["misses"]) + incremental {
        out.push_str(&format!(
            "{:<16}{incremental} compiles were incremental (cargo's dev default for workspace members) and not\n\
             {:<16}cached; CARGO_INCREMENTAL=0 (or profile.dev.incremental = false) caches them too\n",
            "hint", ""
        ));
    }
    let s3 = &v["s3"];
    if s3["configured"].as_bool().unwrap_or(false) {
        out.push_str(&format!(
            "{:<16}{} uploads pending, {} failed; {} objects fetched since start ({} ahead of need)\n",
            "S3",
            n(&s3["uploads_pending"]),
            n(&s3["uploads_failed"]),
            n(&s3["fetched"]),
            n(&s3["prefetched"])
        ));
        if s3["read_only"].as_bool().unwrap_or(false) {
            out.push_str(&format!("{:<16}read-only: this machine never writes the bucket\n", ""));
        }
        if n(&s3["unsigned_refused"]) > 0 {
            out.push_str(&format!(
                "{:<16}{} objects in the bucket were refused: not signed with this machine's key\n",
                "",
                n(&s3["unsigned_refused"])
            ));
        }
        if n(&s3["uploads_skipped"]) > 0 {
            out.push_str(&format!(
                "{:<16}{} objects were evicted before their upload (S3 refused or fell behind)\n",
                "",
                n(&s3["uploads_skipped"])
            ));
        }
        if let Some(problem) = s3["problem"].as_str() {
            out.push_str(&format!("{:<16}PROBLEM: {problem}\n", ""));
        }
    } else {
        out.push_str(&format!("{:<16}not configured\n", "S3"));
    }
    Ok(out)
}

/// `cairn why <crate>`: the newest miss of the crate and what differs from the nearest earlier
/// build of it on this machine (src/rustc/why.rs), in words.
pub fn why(cache_base: &Path, krate: &str) -> String {
    use crate::rustc::why::{explain, load, Change};
    let all = load(cache_base, krate);
    let Some((newest, nearest)) = explain(&all) else {
        return format!(
            "no compile of {krate} recorded on this machine: it has hit every time (or is named differently; \
             see `ls <mnt>/by-crate/`)\n"
        );
    };
    let when = |unix: u64| {
        let ago = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0).saturating_sub(unix);
        format!("{} ago", duration_text(ago as f64))
    };
    let mut out =
        format!("{krate} ({}) compiled {} ({})\n", newest.crate_types.join(","), when(newest.unix), newest.outcome);
    let Some((near, changes)) = nearest else {
        out.push_str("  nothing earlier to compare with: the first build of it here with these crate types\n");
        return out;
    };
    out.push_str(&format!("  nearest earlier build: {} ({})\n", when(near.unix), near.outcome));
    if changes.is_empty() {
        out.push_str("  no key input differs: the entry was removed (rm, evict) or never stored\n");
    }
    for c in changes {
        let line = match c {
            Change::Changed { label, from, to } => format!("  changed  {label}: {from} -> {to}"),
            Change::Added { label, value } if value == "given" => format!("  added    {label}"),
            Change::Added { label, value } => format!("  added    {label} = {value}"),
            Change::Removed { label, value } if value == "given" => format!("  removed  {label}"),
            Change::Removed { label, value } => format!("  removed  {label} = {value}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_age("7").unwrap(), Duration::from_secs(7));
        assert!(parse_age("soon").is_err());
    }

    #[test]
    fn many_incremental_compiles_bring_a_hint() {
        let mut s = crate::stats::Stats::default();
        for _ in 0..3 {
            s.apply(&crate::stats::Event::NotCacheable("incremental".into()));
        }
        s.apply(&crate::stats::Event::Miss { kind: crate::stats::Kind::Rustc, compile_ns: 1, bytes: 1 });
        let t = render(&s.to_json(&Default::default())).unwrap();
        assert!(t.contains("CARGO_INCREMENTAL=0"), "{t}");
        let quiet = render(&crate::stats::Stats::default().to_json(&Default::default())).unwrap();
        assert!(!quiet.contains("hint"));
    }

    #[test]
    fn the_table_shows_time_saved_in_minutes_and_hours() {
        let mut s = crate::stats::Stats::default();
        s.apply(&crate::stats::Event::Hit {
            kind: crate::stats::Kind::Rustc,
            compile_ns: 7_500_000_000_000,
            took_ns: 0,
            bytes: 1,
        });
        let t = render(&s.to_json(&Default::default())).unwrap();
        assert!(t.contains("2 h 5 min"), "{t}");
        assert!(t.contains("100 %"), "{t}");
    }
}

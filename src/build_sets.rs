//! Build sets: fetching, before cargo asks, what a build is going to look up (issue #12).
//!
//! A fresh CI runner with a warm bucket otherwise pays one round trip to S3 per crate on cargo's
//! critical path (two, without the manifest's hints). The wrappers name a *build set* for each
//! compile (the toolchain, the profile and the checkout's folder name:
//! [`crate::protocol::object::build_set_key`]) and report the keys each compile used. The
//! daemon keeps, per set, those keys in the order they were first used, and stores them as an
//! object under the set's key, which goes to the bucket like any other. When a build begins on
//! another machine (the first compile of a cargo run says so), its daemon fetches that object
//! and queues every key it names to the prefetchers, in order: the lookups that follow find
//! their objects local, or on their way.
//!
//! What a build did not need costs bandwidth and prefetcher time, never a lookup's: prefetches
//! run on their own threads, and a lookup of a key being prefetched waits for that one GET.
//! The set written is this daemon's keys first (age 0), then the previous set's others, each
//! one build older, at most [`MAX_BUILD_SET`]. A key unused for [`MAX_BUILD_SET_AGE`] builds
//! leaves the set: after many commits, the set is what recent builds used, not every key any
//! build ever did (which a fresh machine would fetch, and store in place of what it needs).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::key::Key;
use crate::protocol::object::{BuildSet, MAX_BUILD_SET, MAX_BUILD_SET_AGE};

/// Most sets tracked at once (one per workspace, toolchain and profile built here).
const MAX_SETS: usize = 64;
/// A set begun again within this time is not fetched again.
const BEGIN_AGAIN_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
struct SetState {
    /// Keys used here since the daemon started, in first-use order.
    used: Vec<Key>,
    seen: HashSet<Key>,
    /// The keys of the set as stored (fetched at the build's beginning), with their ages, for
    /// the merge.
    previous: Vec<(Key, u8)>,
    /// Used keys not yet written.
    dirty: bool,
    begun: Option<Instant>,
}

/// The build sets this daemon has seen.
#[derive(Debug, Default)]
pub struct BuildSets {
    sets: HashMap<Key, SetState>,
}

impl BuildSets {
    fn state(&mut self, set: Key) -> Option<&mut SetState> {
        if !self.sets.contains_key(&set) && self.sets.len() >= MAX_SETS {
            return None;
        }
        Some(self.sets.entry(set).or_default())
    }

    /// A build of `set` begins; returns whether its stored keys should be fetched now.
    pub fn begin(&mut self, set: Key, now: Instant) -> bool {
        let Some(s) = self.state(set) else { return false };
        if s.begun.is_some_and(|t| now.duration_since(t) < BEGIN_AGAIN_AFTER) {
            return false;
        }
        s.begun = Some(now);
        true
    }

    /// The stored set, as fetched.
    pub fn previous(&mut self, set: Key, stored: &BuildSet) {
        if let Some(s) = self.state(set) {
            s.previous = stored.aged().collect();
        }
    }

    /// A compile of `set` used `keys`.
    pub fn used(&mut self, set: Key, keys: &[Key]) {
        let Some(s) = self.state(set) else { return };
        for k in keys {
            if s.used.len() < MAX_BUILD_SET && s.seen.insert(*k) {
                s.used.push(*k);
                s.dirty = true;
            }
        }
    }

    /// The sets with keys not yet written, merged with what was stored, and marks them written.
    pub fn take_dirty(&mut self) -> Vec<(Key, BuildSet)> {
        let mut out = Vec::new();
        for (set, s) in self.sets.iter_mut().filter(|(_, s)| s.dirty) {
            s.dirty = false;
            let mut aged: Vec<(Key, u8)> = s.used.iter().map(|k| (*k, 0)).collect();
            aged.extend(
                s.previous
                    .iter()
                    .filter(|(k, age)| !s.seen.contains(k) && *age < MAX_BUILD_SET_AGE)
                    .map(|(k, age)| (*k, age + 1)),
            );
            aged.truncate(MAX_BUILD_SET);
            let (keys, ages) = aged.into_iter().unzip();
            out.push((*set, BuildSet { keys, ages }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> Key {
        Key([n; 32])
    }

    #[test]
    fn a_set_keeps_first_use_order_and_then_the_previous_keys() {
        let mut b = BuildSets::default();
        let t = Instant::now();
        assert!(b.begin(k(100), t));
        assert!(!b.begin(k(100), t + Duration::from_secs(1)), "begun once per build, not per compile");
        b.previous(k(100), &BuildSet { keys: vec![k(9), k(2), k(8)], ages: vec![0, 0, 3] });
        b.used(k(100), &[k(1), k(2)]);
        b.used(k(100), &[k(3), k(1)]);
        let out = b.take_dirty();
        let want = BuildSet { keys: vec![k(1), k(2), k(3), k(9), k(8)], ages: vec![0, 0, 0, 1, 4] };
        assert_eq!(out, vec![(k(100), want)]);
        assert!(b.take_dirty().is_empty(), "written once until new keys come");
        b.used(k(100), &[k(4)]);
        assert_eq!(b.take_dirty()[0].1.keys[3], k(4));
        assert!(b.begin(k(100), t + BEGIN_AGAIN_AFTER), "a later build fetches again");
    }

    #[test]
    fn a_key_unused_for_the_maximum_age_of_builds_leaves_the_set() {
        // Build after build, each on a fresh daemon: key 1 is used by every build, key 2 only
        // by the first (an old commit's result).
        let mut stored = BuildSet::default();
        for build in 0..=MAX_BUILD_SET_AGE as usize + 1 {
            let mut b = BuildSets::default();
            b.begin(k(100), Instant::now());
            b.previous(k(100), &stored);
            let used = if build == 0 { vec![k(1), k(2)] } else { vec![k(1)] };
            b.used(k(100), &used);
            stored = b.take_dirty().remove(0).1;
            let kept = stored.keys.contains(&k(2));
            assert_eq!(kept, build <= MAX_BUILD_SET_AGE as usize, "after build {build}: {stored:?}");
            assert_eq!(stored.keys[0], k(1));
        }
    }
}

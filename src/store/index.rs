//! The in-memory index of committed objects: LRU order, sizes, pins and the size limit.
//!
//! Pure bookkeeping with no I/O, shared by the disk and memory stores, so the eviction rules
//! are written once and property-tested against a plain model. The caller performs the file
//! operations the index decides on.

use std::collections::HashMap;

use lru::LruCache;

use super::ObjectMeta;
use crate::key::Key;

/// Why an insertion was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The key is present already (with this metadata).
    Present(ObjectMeta),
    /// The object alone exceeds the limit.
    TooLarge,
    /// Only pinned objects could be evicted to make room.
    NoRoom,
}

/// Objects by key, least recently used first, with their total size.
#[derive(Debug)]
pub struct Index {
    entries: LruCache<Key, ObjectMeta>,
    /// Open-reader counts. A pinned object is never chosen for eviction.
    pins: HashMap<Key, u32>,
    used: u64,
    limit: u64,
}

impl Index {
    /// An empty index with a size limit in bytes.
    pub fn new(limit: u64) -> Index {
        Index { entries: LruCache::unbounded(), pins: HashMap::new(), used: 0, limit }
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Metadata without changing LRU order.
    pub fn peek(&self, key: &Key) -> Option<&ObjectMeta> {
        self.entries.peek(key)
    }

    /// Marks an object used now; returns its metadata.
    pub fn touch(&mut self, key: &Key, now_ns: u64) -> Option<ObjectMeta> {
        let meta = self.entries.get_mut(key)?;
        meta.last_used_ns = meta.last_used_ns.max(now_ns);
        Some(*meta)
    }

    /// Inserts an object, evicting least-recently-used unpinned objects until it fits.
    /// Returns the evicted keys (the caller deletes their bytes). Nothing changes on error.
    pub fn insert(&mut self, key: Key, meta: ObjectMeta) -> Result<Vec<(Key, ObjectMeta)>, InsertError> {
        if let Some(existing) = self.entries.peek(&key) {
            return Err(InsertError::Present(*existing));
        }
        if meta.size > self.limit {
            return Err(InsertError::TooLarge);
        }
        let mut to_free = (self.used + meta.size).saturating_sub(self.limit);
        let mut victims = Vec::new();
        if to_free > 0 {
            // Oldest first; skip what is open for reading.
            for (k, m) in self.entries.iter().rev() {
                if self.pins.contains_key(k) {
                    continue;
                }
                victims.push(*k);
                to_free = to_free.saturating_sub(m.size);
                if to_free == 0 {
                    break;
                }
            }
            if to_free > 0 {
                return Err(InsertError::NoRoom);
            }
        }
        let evicted = victims.into_iter().filter_map(|k| self.remove(&k).map(|m| (k, m))).collect();
        self.used += meta.size;
        self.entries.put(key, meta);
        Ok(evicted)
    }

    /// Inserts at the most-recently-used end while loading persisted state, without eviction.
    pub fn load(&mut self, key: Key, meta: ObjectMeta) {
        if let Some(old) = self.entries.put(key, meta) {
            self.used -= old.size;
        }
        self.used += meta.size;
    }

    /// Removes an object; returns its metadata if it was there.
    pub fn remove(&mut self, key: &Key) -> Option<ObjectMeta> {
        let meta = self.entries.pop(key)?;
        self.used -= meta.size;
        Some(meta)
    }

    /// Evicts least-recently-used unpinned objects until the total fits the limit (used after
    /// loading state written under a larger limit).
    pub fn shrink_to_limit(&mut self) -> Vec<(Key, ObjectMeta)> {
        let mut out = Vec::new();
        while self.used > self.limit {
            let victim = self.entries.iter().rev().find(|(k, _)| !self.pins.contains_key(*k)).map(|(k, _)| *k);
            match victim.and_then(|k| self.remove(&k).map(|m| (k, m))) {
                Some(v) => out.push(v),
                None => break,
            }
        }
        out
    }

    /// Counts one more reader of `key`.
    pub fn pin(&mut self, key: &Key) {
        *self.pins.entry(*key).or_insert(0) += 1;
    }

    /// Counts one reader fewer.
    pub fn unpin(&mut self, key: &Key) {
        if let Some(n) = self.pins.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.pins.remove(key);
            }
        }
    }

    /// All objects, least recently used first.
    pub fn lru_order(&self) -> Vec<(Key, ObjectMeta)> {
        self.entries.iter().rev().map(|(k, m)| (*k, *m)).collect()
    }

    /// The keys alone, in the same order (a third of the memory, for listings).
    pub fn lru_keys(&self) -> Vec<Key> {
        self.entries.iter().rev().map(|(k, _)| *k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(size: u64) -> ObjectMeta {
        ObjectMeta { size, checksum: [0; 32], created_ns: 0, last_used_ns: 0 }
    }

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut ix = Index::new(30);
        ix.insert(key(1), meta(10)).unwrap();
        ix.insert(key(2), meta(10)).unwrap();
        ix.insert(key(3), meta(10)).unwrap();
        ix.touch(&key(1), 5);
        let evicted = ix.insert(key(4), meta(10)).unwrap();
        assert_eq!(evicted.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![key(2)]);
        assert_eq!(ix.used(), 30);
    }

    #[test]
    fn never_evicts_pinned_objects() {
        let mut ix = Index::new(20);
        ix.insert(key(1), meta(10)).unwrap();
        ix.insert(key(2), meta(10)).unwrap();
        ix.pin(&key(1));
        let evicted = ix.insert(key(3), meta(10)).unwrap();
        assert_eq!(evicted[0].0, key(2));
        ix.pin(&key(3));
        assert_eq!(ix.insert(key(4), meta(10)), Err(InsertError::NoRoom));
        assert!(ix.peek(&key(1)).is_some() && ix.peek(&key(3)).is_some());
    }

    #[test]
    fn refuses_objects_larger_than_the_limit() {
        let mut ix = Index::new(5);
        assert_eq!(ix.insert(key(1), meta(6)), Err(InsertError::TooLarge));
        assert!(ix.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u64),
        Touch(u8),
        Remove(u8),
        Pin(u8),
        Unpin(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..12, 0u64..40).prop_map(|(k, s)| Op::Insert(k, s)),
            (0u8..12).prop_map(Op::Touch),
            (0u8..12).prop_map(Op::Remove),
            (0u8..12).prop_map(Op::Pin),
            (0u8..12).prop_map(Op::Unpin),
        ]
    }

    proptest! {
        /// The index against a model: a Vec in LRU order with a size cap.
        #[test]
        fn matches_a_simple_model(ops in proptest::collection::vec(op(), 1..200)) {
            let limit = 100;
            let mut ix = Index::new(limit);
            let mut model: Vec<(u8, u64)> = Vec::new(); // oldest first
            let mut pins: HashMap<u8, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, s) => {
                        let res = ix.insert(key(k), meta(s));
                        if model.iter().any(|(mk, _)| *mk == k) {
                            prop_assert!(matches!(res, Err(InsertError::Present(_))));
                        } else if s > limit {
                            prop_assert_eq!(res, Err(InsertError::TooLarge));
                        } else {
                            let used: u64 = model.iter().map(|(_, s)| s).sum();
                            let free_able: u64 = model.iter().filter(|(mk, _)| !pins.contains_key(mk)).map(|(_, s)| s).sum();
                            if used + s > limit + free_able {
                                prop_assert_eq!(res, Err(InsertError::NoRoom));
                            } else {
                                let evicted = res.unwrap();
                                // Model: drop oldest unpinned until it fits.
                                let mut need = (used + s).saturating_sub(limit);
                                let mut expect = Vec::new();
                                for (mk, ms) in model.iter() {
                                    if need == 0 { break; }
                                    if pins.contains_key(mk) { continue; }
                                    expect.push(*mk);
                                    need = need.saturating_sub(*ms);
                                }
                                prop_assert_eq!(evicted.iter().map(|(k, _)| k.0[0]).collect::<Vec<_>>(), expect.clone());
                                model.retain(|(mk, _)| !expect.contains(mk));
                                model.push((k, s));
                            }
                        }
                    }
                    Op::Touch(k) => {
                        ix.touch(&key(k), 1);
                        if let Some(pos) = model.iter().position(|(mk, _)| *mk == k) {
                            let e = model.remove(pos);
                            model.push(e);
                        }
                    }
                    Op::Remove(k) => {
                        let had = ix.remove(&key(k)).is_some();
                        prop_assert_eq!(had, model.iter().any(|(mk, _)| *mk == k));
                        model.retain(|(mk, _)| *mk != k);
                    }
                    Op::Pin(k) => { ix.pin(&key(k)); *pins.entry(k).or_insert(0) += 1; }
                    Op::Unpin(k) => {
                        ix.unpin(&key(k));
                        if let Some(n) = pins.get_mut(&k) { *n -= 1; if *n == 0 { pins.remove(&k); } }
                    }
                }
                prop_assert!(ix.used() <= limit);
                prop_assert_eq!(ix.used(), model.iter().map(|(_, s)| s).sum::<u64>());
                prop_assert_eq!(
                    ix.lru_order().iter().map(|(k, _)| k.0[0]).collect::<Vec<_>>(),
                    model.iter().map(|(k, _)| *k).collect::<Vec<_>>()
                );
                prop_assert_eq!(ix.lru_keys(), ix.lru_order().into_iter().map(|(k, _)| k).collect::<Vec<_>>());
            }
        }
    }
}

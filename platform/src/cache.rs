//! A small bounded cache whose entries live a fixed time: how every projection reader keeps
//! Redis off the hot path while changes still show within `ttl`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared between clones; at most `capacity` entries.
#[derive(Clone)]
pub struct TtlCache<V> {
    ttl: Duration,
    capacity: usize,
    entries: Arc<Mutex<HashMap<String, (Instant, V)>>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Arc::default(),
        }
    }

    /// The live entry for `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    /// Stores `value`; when full, expired entries go first, and if all are live, all go.
    pub fn insert(&self, key: &str, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key.to_owned(), (Instant::now(), value));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TtlCache::new(Duration::from_millis(30), 10);
        cache.insert("a", 1);
        assert_eq!(cache.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let cache = TtlCache::new(Duration::from_secs(60), 3);
        for key in ["a", "b", "c", "d", "e"] {
            cache.insert(key, key.len());
            assert!(cache.len() <= 3, "{} entries", cache.len());
        }
        assert_eq!(cache.get("e"), Some(1));
        // Replacing a live key never evicts the others.
        cache.insert("e", 2);
        assert_eq!(cache.get("e"), Some(2));
    }
}

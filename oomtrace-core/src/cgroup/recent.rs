//! [`RecentCache`]: names read from the node's files, remembered past the
//! container's removal (the runtime deletes its state as soon as a dead
//! container is removed, often before its OOM's decision is assembled).

use std::collections::{HashMap, VecDeque};

/// What a cached value costs, in bytes of text it holds.
pub trait Weighed {
    fn bytes(&self) -> usize;
}

/// Recently seen names, oldest evicted first, bounded in entries and bytes.
#[derive(Debug)]
pub struct RecentCache<V> {
    map: HashMap<String, V>,
    order: VecDeque<String>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<V: Weighed> RecentCache<V> {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        RecentCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn insert(&mut self, key: String, value: V) {
        let size = key.len() + value.bytes();
        if let Some(old) = self.map.remove(&key) {
            self.bytes -= key.len() + old.bytes();
            self.order.retain(|k| k != &key);
        }
        while !self.order.is_empty()
            && (self.map.len() >= self.max_entries || self.bytes + size > self.max_bytes)
        {
            if let Some(oldest) = self.order.pop_front()
                && let Some(old) = self.map.remove(&oldest)
            {
                self.bytes -= oldest.len() + old.bytes();
            }
        }
        if self.max_entries == 0 || size > self.max_bytes {
            return;
        }
        self.bytes += size;
        self.order.push_back(key.clone());
        self.map.insert(key, value);
    }
}

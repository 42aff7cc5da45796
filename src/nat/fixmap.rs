//! A read-mostly open-addressing map from `u64` keys to `u32` values, for the forward table.
//!
//! The forward table is built once and then only read, with keys that are already
//! well-mixed integers; a Fibonacci-hashed, linearly probed array kept at most half full
//! answers a hit in one multiply and usually one cache line, about twice as fast as a
//! general-purpose SipHash/aHash map on this workload (see `benches/lookup.rs`).

/// Keys never reach this value (the table's keys use at most 57 bits), so it marks a free slot.
const EMPTY: u64 = u64::MAX;

/// The map.
#[derive(Debug, Clone)]
pub struct FixMap {
    keys: Box<[u64]>,
    values: Box<[u32]>,
    shift: u32,
    len: usize,
}

impl Default for FixMap {
    fn default() -> FixMap {
        FixMap::with_capacity(0)
    }
}

impl FixMap {
    /// A map sized for `n` keys at a load factor of at most one half.
    pub fn with_capacity(n: usize) -> FixMap {
        let slots = (n.max(4) * 2).next_power_of_two();
        FixMap {
            keys: vec![EMPTY; slots].into_boxed_slice(),
            values: vec![0; slots].into_boxed_slice(),
            shift: 64 - slots.trailing_zeros(),
            len: 0,
        }
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// The value for `key`.
    #[inline(always)]
    pub fn get(&self, key: u64) -> Option<u32> {
        let mask = self.keys.len() - 1;
        let mut i = self.home(key);
        loop {
            let k = self.keys[i];
            if k == key {
                return Some(self.values[i]);
            }
            if k == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts `key` unless present (the first value wins); returns whether it was inserted.
    pub fn insert_first(&mut self, key: u64, value: u32) -> bool {
        debug_assert_ne!(key, EMPTY);
        if (self.len + 1) * 2 > self.keys.len() {
            self.grow();
        }
        let mask = self.keys.len() - 1;
        let mut i = self.home(key);
        loop {
            if self.keys[i] == key {
                return false;
            }
            if self.keys[i] == EMPTY {
                self.keys[i] = key;
                self.values[i] = value;
                self.len += 1;
                return true;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let mut bigger = FixMap::with_capacity(self.keys.len());
        for (&k, &v) in self.keys.iter().zip(self.values.iter()) {
            if k != EMPTY {
                bigger.insert_first(k, v);
            }
        }
        *self = bigger;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_grow() {
        let mut m = FixMap::default();
        for k in 0..10_000u64 {
            assert!(m.insert_first(k * 7919, k as u32));
        }
        assert!(!m.insert_first(7919, 99), "the first value wins");
        assert_eq!(m.len, 10_000);
        for k in 0..10_000u64 {
            assert_eq!(m.get(k * 7919), Some(k as u32));
        }
        assert_eq!(m.get(3), None);
    }
}

//! Counters a part keeps for its events, read by its [`Report`](super::Report).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A counter without labels.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter by one label whose values are a fixed set (`&'static str`: an AWS error type, a
/// reason), kept in label order.
#[derive(Debug, Default)]
pub struct CounterByLabel(Mutex<BTreeMap<&'static str, u64>>);

impl CounterByLabel {
    pub fn inc(&self, label: &'static str) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(label).or_default() += 1;
    }

    /// Every label counted so far and its count, in label order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

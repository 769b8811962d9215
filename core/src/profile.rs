//! Function profiles kept across jobs (DESIGN §5): compact log-scale histograms of exec and
//! cold-start times, and output sizes, per DAG name and function.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const BUCKETS: usize = 48;

/// A histogram over microseconds with power-of-√2 buckets: 48 buckets span 1 µs to ~16 s
/// at a relative precision of about ±20%, in 400 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub count: u64,
    pub sum: u64,
    pub min: u64,
    pub max: u64,
    buckets: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
            buckets: vec![0; BUCKETS],
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v <= 1 {
        return 0;
    }
    // Two buckets per power of two: the top bit, and whether the next bit is set.
    let top = 63 - v.leading_zeros() as usize;
    let half = ((v >> (top - 1)) & 1) as usize;
    (top * 2 + half).min(BUCKETS - 1)
}

fn bucket_upper(b: usize) -> u64 {
    if b == 0 {
        return 1;
    }
    let top = b / 2;
    let half = b % 2;
    // Upper edge of the bucket: (2 + half + 1) * 2^(top-1) - 1, saturating.
    let base = 1u64.checked_shl(top as u32).unwrap_or(u64::MAX);
    base.saturating_add((half as u64 + 1) * (base / 2))
        .saturating_sub(1)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.buckets[bucket_of(v)] += 1;
    }

    pub fn merge(&mut self, o: &Histogram) {
        self.count += o.count;
        self.sum = self.sum.saturating_add(o.sum);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The `q` quantile (0..=1), as the upper edge of its bucket clamped to [min, max].
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_upper(b).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

/// One function's profile within one DAG name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FnProfile {
    pub exec_us: Histogram,
    pub cold_start_us: Histogram,
    pub output_bytes: Histogram,
}

impl FnProfile {
    pub fn merge(&mut self, o: &FnProfile) {
        self.exec_us.merge(&o.exec_us);
        self.cold_start_us.merge(&o.cold_start_us);
        self.output_bytes.merge(&o.output_bytes);
    }
}

/// Profiles of one DAG name: function name → profile.
pub type DagProfile = BTreeMap<String, FnProfile>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((400..=650).contains(&p50), "p50 {p50}");
        assert_eq!(h.quantile(1.0), Some(1000));
        assert_eq!(h.quantile(0.0), Some(1));
        assert_eq!(h.mean(), Some(500.5));
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::default();
        a.record(10);
        let mut b = Histogram::default();
        b.record(1_000_000);
        a.merge(&b);
        assert_eq!(a.count, 2);
        assert_eq!((a.min, a.max), (10, 1_000_000));
    }
}

//! Profiles kept across jobs (`docs/architecture.md`), per DAG name: per function, compact
//! log-scale histograms of exec and cold-start times and of output sizes; per conditional edge (a
//! task with a `guard`, `docs/conditional-branches.md`), how often its guard held (taken) or not
//! (not taken) when its dependency completed.

use crate::dag::Dag;
use crate::ids::TaskIdx;
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

/// Outcomes of one conditional edge `dep → task` (the task carries `guard: {dep, equals}`),
/// counted once per completion of `dep`: `taken` when its output equalled the guard's value
/// (the task ran), `not_taken` otherwise (the task was skipped by its guard).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchCounts {
    #[serde(default)]
    pub taken: u64,
    #[serde(default)]
    pub not_taken: u64,
}

impl BranchCounts {
    pub fn record(&mut self, taken: bool) {
        if taken {
            self.taken = self.taken.saturating_add(1);
        } else {
            self.not_taken = self.not_taken.saturating_add(1);
        }
    }

    pub fn merge(&mut self, o: &BranchCounts) {
        self.taken = self.taken.saturating_add(o.taken);
        self.not_taken = self.not_taken.saturating_add(o.not_taken);
    }

    pub fn total(&self) -> u64 {
        self.taken.saturating_add(self.not_taken)
    }

    /// The probability that the edge is taken, with a symmetric Beta prior of weight `prior`
    /// on each side (`prior = 1` is Laplace's rule: `(taken + 1) / (total + 2)`; an unseen
    /// edge gives 0.5).
    pub fn p_taken(&self, prior: f64) -> f64 {
        let prior = prior.max(0.0);
        let n = self.total() as f64 + 2.0 * prior;
        if n <= 0.0 {
            0.5
        } else {
            (self.taken as f64 + prior) / n
        }
    }
}

/// Profiles of one DAG name: function name → [`FnProfile`], and guarded task id →
/// [`BranchCounts`].
///
/// It serializes as `{"functions": {...}, "branches": {...}}` (both optional); the older
/// form, a bare map of function name → profile, still deserializes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "DagProfileRepr")]
pub struct DagProfile {
    #[serde(default)]
    pub functions: BTreeMap<String, FnProfile>,
    /// Keyed by the id of the task that carries the guard (its edge is `guard.dep → task`).
    #[serde(default)]
    pub branches: BTreeMap<String, BranchCounts>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DagProfileRepr {
    Current(CurrentRepr),
    Legacy(BTreeMap<String, FnProfile>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrentRepr {
    #[serde(default)]
    functions: BTreeMap<String, FnProfile>,
    #[serde(default)]
    branches: BTreeMap<String, BranchCounts>,
}

impl From<DagProfileRepr> for DagProfile {
    fn from(r: DagProfileRepr) -> Self {
        match r {
            DagProfileRepr::Current(c) => DagProfile {
                functions: c.functions,
                branches: c.branches,
            },
            DagProfileRepr::Legacy(functions) => DagProfile {
                functions,
                branches: BTreeMap::new(),
            },
        }
    }
}

impl DagProfile {
    pub fn new() -> DagProfile {
        DagProfile::default()
    }

    /// True when it holds no function and no branch.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty() && self.branches.is_empty()
    }

    /// The profile of function `name`, if any.
    pub fn function(&self, name: &str) -> Option<&FnProfile> {
        self.functions.get(name)
    }

    /// The counts of the conditional edge into task `id`, if any.
    pub fn branch(&self, id: &str) -> Option<&BranchCounts> {
        self.branches.get(id)
    }

    /// Adds one function's profile (merging with what is there).
    pub fn insert(&mut self, func: impl Into<String>, p: FnProfile) {
        self.functions.entry(func.into()).or_default().merge(&p);
    }

    /// Merges `o` into `self`: histograms and counts add up.
    pub fn merge(&mut self, o: &DagProfile) {
        for (f, p) in &o.functions {
            self.functions.entry(f.clone()).or_default().merge(p);
        }
        for (t, b) in &o.branches {
            self.branches.entry(t.clone()).or_default().merge(b);
        }
    }

    /// Records a batch of branch outcomes of a walk: `(guarded task, taken)` pairs, one per
    /// completion of the guard's dependency. Indices that are out of range are ignored. This
    /// is what an executor calls before its profile flush; the counts then travel with the
    /// function histograms in one [`record_profile`](crate::store::ProfileStore) call.
    pub fn record_branches(
        &mut self,
        dag: &Dag,
        outcomes: impl IntoIterator<Item = (TaskIdx, bool)>,
    ) {
        for (t, taken) in outcomes {
            if t.get() >= dag.len() {
                continue;
            }
            self.record_branch(dag.id(t).as_str(), taken);
        }
    }

    /// Records one outcome of the conditional edge into the task with id `task_id`.
    pub fn record_branch(&mut self, task_id: &str, taken: bool) {
        match self.branches.get_mut(task_id) {
            Some(b) => b.record(taken),
            None => {
                let mut b = BranchCounts::default();
                b.record(taken);
                self.branches.insert(task_id.to_owned(), b);
            }
        }
    }
}

impl FromIterator<(String, FnProfile)> for DagProfile {
    fn from_iter<I: IntoIterator<Item = (String, FnProfile)>>(iter: I) -> Self {
        let mut p = DagProfile::default();
        for (f, fp) in iter {
            p.insert(f, fp);
        }
        p
    }
}

impl<const N: usize> From<[(String, FnProfile); N]> for DagProfile {
    fn from(a: [(String, FnProfile); N]) -> Self {
        a.into_iter().collect()
    }
}

impl std::ops::Index<&str> for DagProfile {
    type Output = FnProfile;

    /// The profile of a function; panics when there is none (like a map's index).
    fn index(&self, func: &str) -> &FnProfile {
        &self.functions[func]
    }
}

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

    #[test]
    fn branch_counts_smooth_and_merge() {
        let mut b = BranchCounts::default();
        assert_eq!(b.p_taken(1.0), 0.5);
        for _ in 0..8 {
            b.record(true);
        }
        b.record(false);
        b.record(false);
        assert_eq!(b.p_taken(1.0), 9.0 / 12.0);
        assert_eq!(b.p_taken(0.0), 0.8);
        let mut p = DagProfile::new();
        p.record_branch("x", true);
        let mut q = DagProfile::new();
        q.branches.insert("x".into(), b);
        p.merge(&q);
        assert_eq!(p.branch("x").unwrap().taken, 9);
        assert_eq!(p.branch("x").unwrap().not_taken, 2);
    }

    #[test]
    fn dag_profile_serde_current_and_legacy() {
        let mut p = DagProfile::new();
        let mut f = FnProfile::default();
        f.exec_us.record(5);
        p.insert("add", f.clone());
        p.record_branch("b", false);
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"functions\"") && json.contains("\"branches\""));
        assert_eq!(serde_json::from_str::<DagProfile>(&json).unwrap(), p);
        // The older form: a bare map of function → profile.
        let legacy = serde_json::to_string(&BTreeMap::from([("add".to_string(), f)])).unwrap();
        let got: DagProfile = serde_json::from_str(&legacy).unwrap();
        assert_eq!(got.functions, p.functions);
        assert!(got.branches.is_empty());
        assert_eq!(
            serde_json::from_str::<DagProfile>("{}").unwrap(),
            DagProfile::new()
        );
    }
}

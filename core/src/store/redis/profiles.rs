//! Profiles: one hash per DAG name, `rk:profile:<dag>`, of plain counters, merged by one
//! script call (atomic, so concurrent executors never lose an update): counts, sums and
//! bucket counts are added (`HINCRBY`), minimums and maximums compared. Field names are
//! `<histogram>:<stat>:<function>`, with histogram `x` (exec time), `c` (cold start) or `o`
//! (output size), and stat `n` (count), `s` (sum), `lo` (min), `hi` (max) or `b<i>` (bucket
//! i). Conditional edges are counted in fields `br:t:<task>` (taken) and `br:f:<task>` (not
//! taken), `<task>` the id of the guarded task. `get_profile` is one `HGETALL`.

use super::RedisStore;
use super::scripts::SCRIPTS;
use crate::profile::{BranchCounts, DagProfile, FnProfile, Histogram};
use crate::store::{ProfileStore, StoreResult};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// [`Histogram`]'s fields, some private there: the same shape, through MessagePack.
#[derive(Serialize, Deserialize)]
struct HistRepr {
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
    buckets: Vec<u64>,
}

impl HistRepr {
    fn of(h: &Histogram) -> Option<HistRepr> {
        crate::msgpack::from_slice(&rmp_serde::to_vec_named(h).ok()?).ok()
    }

    fn into_histogram(self) -> Option<Histogram> {
        crate::msgpack::from_slice(&rmp_serde::to_vec_named(&self).ok()?).ok()
    }
}

fn profile_key(dag_name: &str) -> String {
    format!("rk:profile:{dag_name}")
}

const HISTOGRAMS: [&str; 3] = ["x", "c", "o"];
/// The field prefix of branch counters (not a histogram name).
const BRANCH: &str = "br";

fn histograms(p: &FnProfile) -> [&Histogram; 3] {
    [&p.exec_us, &p.cold_start_us, &p.output_bytes]
}

fn histograms_mut(p: &mut FnProfile) -> [&mut Histogram; 3] {
    [&mut p.exec_us, &mut p.cold_start_us, &mut p.output_bytes]
}

impl ProfileStore for RedisStore {
    async fn record_profile(&self, dag_name: &str, delta: DagProfile) -> StoreResult<()> {
        let key = profile_key(dag_name);
        let mut inv = SCRIPTS.merge_profile.prepare_invoke();
        inv.key(&key);
        let mut any = false;
        let add = |v: u64| v.min(i64::MAX as u64);
        for (task, b) in &delta.branches {
            for (stat, v) in [("t", b.taken), ("f", b.not_taken)] {
                if v > 0 {
                    any = true;
                    inv.arg("i")
                        .arg(format!("{BRANCH}:{stat}:{task}"))
                        .arg(add(v));
                }
            }
        }
        for (func, p) in &delta.functions {
            for (name, h) in HISTOGRAMS.iter().zip(histograms(p)) {
                let Some(r) = HistRepr::of(h).filter(|r| r.count > 0) else {
                    continue;
                };
                any = true;
                inv.arg("i")
                    .arg(format!("{name}:n:{func}"))
                    .arg(add(r.count));
                inv.arg("i").arg(format!("{name}:s:{func}")).arg(add(r.sum));
                inv.arg("l").arg(format!("{name}:lo:{func}")).arg(r.min);
                inv.arg("h").arg(format!("{name}:hi:{func}")).arg(r.max);
                for (i, &b) in r.buckets.iter().enumerate() {
                    if b > 0 {
                        inv.arg("i").arg(format!("{name}:b{i}:{func}")).arg(add(b));
                    }
                }
            }
        }
        if !any {
            return Ok(());
        }
        let _: i64 = self
            .invoke(&inv)
            .await
            .map_err(|e| self.err(e, None, &key))?;
        Ok(())
    }

    async fn get_profile(&self, dag_name: &str) -> StoreResult<DagProfile> {
        let key = profile_key(dag_name);
        let fields: HashMap<String, String> = self
            .query(redis::cmd("HGETALL").arg(&key))
            .await
            .map_err(|e| self.err(e, None, &key))?;
        let corrupt = |f: &str| crate::error::StoreError::Corrupt {
            key: key.clone(),
            message: format!("bad profile field {f:?}"),
        };
        let empty = HistRepr::of(&Histogram::default()).ok_or_else(|| corrupt(""))?;
        let mut reprs: HashMap<String, [HistRepr; 3]> = HashMap::new();
        let mut branches: HashMap<String, BranchCounts> = HashMap::new();
        for (field, value) in &fields {
            let mut parts = field.splitn(3, ':');
            let (Some(h), Some(stat), Some(func)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt(field));
            };
            if h == BRANCH {
                let v: u64 = value.parse().map_err(|_| corrupt(field))?;
                let b = branches.entry(func.to_owned()).or_default();
                match stat {
                    "t" => b.taken = v,
                    "f" => b.not_taken = v,
                    _ => return Err(corrupt(field)),
                }
                continue;
            }
            let which = HISTOGRAMS
                .iter()
                .position(|n| *n == h)
                .ok_or_else(|| corrupt(field))?;
            let v: u64 = value.parse().map_err(|_| corrupt(field))?;
            let r = &mut reprs.entry(func.to_owned()).or_insert_with(|| {
                std::array::from_fn(|_| HistRepr {
                    count: 0,
                    sum: 0,
                    min: empty.min,
                    max: empty.max,
                    buckets: empty.buckets.clone(),
                })
            })[which];
            match stat {
                "n" => r.count = v,
                "s" => r.sum = v,
                "lo" => r.min = v,
                "hi" => r.max = v,
                b => {
                    let i: usize = b
                        .strip_prefix('b')
                        .and_then(|i| i.parse().ok())
                        .filter(|&i| i < r.buckets.len())
                        .ok_or_else(|| corrupt(field))?;
                    r.buckets[i] = v;
                }
            }
        }
        let mut out = DagProfile::new();
        for (func, rs) in reprs {
            let mut p = FnProfile::default();
            for (slot, r) in histograms_mut(&mut p).into_iter().zip(rs) {
                *slot = r.into_histogram().ok_or_else(|| corrupt(&func))?;
            }
            out.functions.insert(func, p);
        }
        out.branches.extend(branches);
        Ok(out)
    }
}

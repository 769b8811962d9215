//! Idempotent fan-in records: one script call per batch (one round trip, plus one for the
//! plan on a job's first call in this process).
//!
//! The job's arrivals are one bitmap, `rk:{job}:arr`, where task `t`'s parents own bits
//! `off[t]..off[t] + needed(t)` (offsets from the cached plan), and one hash of counters,
//! `rk:{job}:cnt`. A parent's bit is set once and counted only when it was clear, so a
//! retried call (after a lost reply, say) never counts twice.

use super::scripts::SCRIPTS;
use super::{RedisStore, job_key, jobs::check_task, reply};
use crate::error::StoreError;
use crate::ids::JobId;
use crate::messages::job_prefix;
use crate::store::{Arrival, ArrivalReq, FanInStore, StoreResult};

/// Redis bitmaps hold up to 2^32 bits.
const MAX_BITS: u64 = 1 << 32;

impl FanInStore for RedisStore {
    async fn record_arrivals(&self, job: &JobId, reqs: &[ArrivalReq]) -> StoreResult<Vec<Arrival>> {
        let cp = self.cached_plan(job).await?;
        let dag = &cp.plan.dag;
        let key = job_key(job, "arr");
        let mut inv = SCRIPTS.fan_in.prepare_invoke();
        inv.key(job_key(job, "state"))
            .key(&key)
            .key(job_key(job, "cnt"))
            .arg(self.ttl_ms());
        for r in reqs {
            check_task(&cp, r.child)?;
            let needed = dag.needed(r.child);
            let bit = cp.off[r.child.get()] + u64::from(r.pos);
            if r.pos >= needed || r.needed != needed || bit >= MAX_BITS {
                return Err(StoreError::Corrupt {
                    key: format!("{}in:{}", job_prefix(job), r.child.0),
                    message: format!(
                        "arrival at position {} of {} (task has {} dependencies)",
                        r.pos, r.needed, needed
                    ),
                });
            }
            inv.arg(bit).arg(r.child.0);
        }
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let out: redis::Value = self
            .invoke(&inv)
            .await
            .map_err(|e| self.err(e, Some(job), &key))?;
        let out = reply::flat(out);
        if out.len() != reqs.len() * 2 {
            return Err(StoreError::Corrupt {
                key,
                message: format!("fan-in script answered {} values", out.len()),
            });
        }
        Ok(reqs
            .iter()
            .zip(out.chunks(2))
            .map(|(r, pair)| Arrival {
                arrived: reply::as_u64(&pair[0]).unwrap_or(0) as u32,
                needed: r.needed,
                first_time: reply::as_u64(&pair[1]) == Some(1),
            })
            .collect())
    }
}

//! Idempotent fan-in records: one script call per batch (one round trip, plus one for the
//! plan on a job's first call in this process).
//!
//! The job's arrivals are one bitmap, `rk:{job}:arr`, where task `t`'s parents own bits
//! `off[t]..off[t] + needed(t)` (offsets from the cached plan), and one hash of counters,
//! `rk:{job}:cnt`. A parent's bit is set once and counted only when it was clear, so a
//! retried call (after a lost reply, say) never counts twice. The arrival that completes a
//! child's set replaces its counter with `c<bit>` (the completer's bit), so that the
//! completer's re-arrivals are answered `completes` again. Skipped parents
//! (`docs/conditional-branches.md`) also count in field `s<child>` of the counters, in the same
//! script and just as idempotently.

use super::scripts::SCRIPTS;
use super::{RedisStore, encode, job_key, jobs::check_task, reply};
use crate::error::StoreError;
use crate::ids::{JobId, TaskIdx};
use crate::messages::job_prefix;
use crate::store::{
    Arrival, ArrivalReq, FanInStore, FlaggedArrival, LevelWrite, OutputStore, StoreResult,
};

/// Redis bitmaps hold up to 2^32 bits.
const MAX_BITS: u64 = 1 << 32;

impl FanInStore for RedisStore {
    async fn record_arrivals(&self, job: &JobId, reqs: &[ArrivalReq]) -> StoreResult<Vec<Arrival>> {
        self.arrive(job, &[], reqs.iter().map(|r| (r, false)), reqs.len(), false)
            .await
    }

    async fn record_flagged_arrivals(
        &self,
        job: &JobId,
        reqs: &[FlaggedArrival],
    ) -> StoreResult<Vec<Arrival>> {
        self.arrive(
            job,
            &[],
            reqs.iter().map(|r| (&r.req, r.skipped)),
            reqs.len(),
            reqs.iter().any(|r| r.skipped),
        )
        .await
    }

    async fn put_outputs_and_arrive(
        &self,
        job: &JobId,
        outputs: Vec<LevelWrite>,
        reqs: &[FlaggedArrival],
    ) -> StoreResult<Vec<Arrival>> {
        if reqs.is_empty() {
            let items = outputs.into_iter().map(|w| (w.task, w.payload)).collect();
            self.put_outputs(job, items).await?;
            return Ok(Vec::new());
        }
        self.arrive(
            job,
            &outputs,
            reqs.iter().map(|r| (&r.req, r.skipped)),
            reqs.len(),
            reqs.iter().any(|r| r.skipped),
        )
        .await
    }

    /// One script per call ([`RedisStore::arrive`]).
    fn level_writes_are_atomic(&self) -> bool {
        true
    }

    async fn fan_in_counts(&self, job: &JobId) -> StoreResult<Vec<(TaskIdx, u32)>> {
        let cp = self.cached_plan(job).await?;
        let key = job_key(job, "cnt");
        let fields: Vec<(String, String)> = self
            .query(redis::cmd("HGETALL").arg(&key))
            .await
            .map_err(|e| self.err(e, Some(job), &key))?;
        let dag = &cp.plan.dag;
        let mut out: Vec<(TaskIdx, u32)> = fields
            .into_iter()
            .filter_map(|(f, v)| {
                // Skip counters are `s<child>`; a completed record is `c<bit>`.
                let t = TaskIdx(f.parse().ok()?);
                let n = if v.starts_with('c') {
                    dag.needed(t)
                } else {
                    v.parse().ok()?
                };
                (t.get() < dag.len()).then_some((t, n))
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }
}

impl RedisStore {
    /// One script call for a batch of arrivals and the level's `outputs` (write-once, left
    /// out when all their readers complete here); `flagged` (or a DAG with guards) picks
    /// the script that also counts skipped parents.
    async fn arrive<'a>(
        &self,
        job: &JobId,
        outputs: &[LevelWrite],
        reqs: impl Iterator<Item = (&'a ArrivalReq, bool)>,
        len: usize,
        flagged: bool,
    ) -> StoreResult<Vec<Arrival>> {
        let cp = self.cached_plan(job).await?;
        let dag = &cp.plan.dag;
        let key = job_key(job, "arr");
        // Only a job with guards can have skipped parents: its arrivals all go through the
        // script that counts skips (so that a completing arrival reads them); any other job
        // keeps the cheaper one.
        let flagged = flagged || dag.has_guards();
        let script = if flagged {
            &SCRIPTS.fan_in_flagged
        } else {
            &SCRIPTS.fan_in
        };
        let mut inv = script.prepare_invoke();
        inv.key(job_key(job, "state"))
            .key(&key)
            .key(job_key(job, "cnt"))
            .key(job_key(job, "out"))
            .arg(self.ttl_ms())
            .arg(outputs.len());
        for w in outputs {
            check_task(&cp, w.task)?;
            if let Some(&r) = w.readers.iter().find(|&&r| r as usize >= len) {
                return Err(StoreError::Corrupt {
                    key: format!("{}out:{}", job_prefix(job), w.task.0),
                    message: format!("reader position {r} is past the {len} arrivals"),
                });
            }
            inv.arg(w.task.0)
                .arg(encode(&w.payload))
                .arg(w.readers.len());
            for &r in &w.readers {
                inv.arg(r);
            }
        }
        let mut needs = Vec::with_capacity(len);
        for (r, skipped) in reqs {
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
            if flagged {
                inv.arg(u8::from(skipped));
            }
            inv.arg(needed);
            needs.push(needed);
        }
        if needs.is_empty() {
            return Ok(Vec::new());
        }
        let out: redis::Value = self
            .invoke(&inv)
            .await
            .map_err(|e| self.err(e, Some(job), &key))?;
        let out = reply::flat(out);
        let width = if flagged { 4 } else { 3 };
        if out.len() != needs.len() * width {
            return Err(StoreError::Corrupt {
                key,
                message: format!("fan-in script answered {} values", out.len()),
            });
        }
        Ok(needs
            .iter()
            .zip(out.chunks(width))
            .map(|(&needed, vals)| Arrival {
                arrived: reply::as_u64(&vals[0]).unwrap_or(0) as u32,
                needed,
                first_time: reply::as_u64(&vals[1]) == Some(1),
                completer: reply::as_u64(&vals[2]) == Some(1),
                skipped: vals.get(3).and_then(reply::as_u64).unwrap_or(0) as u32,
            })
            .collect())
    }
}

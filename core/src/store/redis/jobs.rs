//! Jobs (plan, state, list, delete) and task outputs.
//!
//! Round trips: `put_job` 2 (script, `SADD rk:jobs`); `get_job` 0 when cached, else 1;
//! `set_job_state`, `job_state` 1; `delete_job` 3–4; `list_jobs` 2–3; `put_outputs` 1 and
//! `get_outputs` 1 (plus 1 for the plan on a job's first call).

use super::scripts::SCRIPTS;
use super::{CachedPlan, RedisStore, decode, encode, job_key, objects};
use crate::error::StoreError;
use crate::ids::{JobId, TaskIdx};
use crate::messages::{JobState, Payload, job_prefix};
use crate::plan::JobPlan;
use crate::store::{JobStore, OutputStore, StoreResult};
use std::sync::Arc;

/// The set of every job id in the store.
pub(super) const JOBS: &str = "rk:jobs";
/// The run epoch (see [`crate::store::JobStore::run_epoch`]): one string, no TTL.
const EPOCH: &str = "rk:epoch";
/// Keys per `MGET`/`UNLINK`.
const BATCH: usize = 500;

impl JobStore for RedisStore {
    async fn put_job(&self, plan: Arc<JobPlan>) -> StoreResult<()> {
        let job = &plan.job;
        let key = job_key(job, "plan");
        let mut inv = SCRIPTS.put_job.prepare_invoke();
        inv.key(&key)
            .key(job_key(job, "state"))
            .arg(self.ttl_ms())
            .arg(plan.to_msgpack())
            .arg(encode(&JobState::Running));
        let _: i64 = self
            .invoke(&inv)
            .await
            .map_err(|e| self.err(e, Some(job), &key))?;
        // After the keys, so that `list_jobs` never drops a job that is being stored.
        let _: i64 = self
            .query(redis::cmd("SADD").arg(JOBS).arg(job.as_str()))
            .await
            .map_err(|e| self.err(e, Some(job), JOBS))?;
        Ok(())
    }

    async fn get_job(&self, job: &JobId) -> StoreResult<Arc<JobPlan>> {
        Ok(self.cached_plan(job).await?.plan.clone())
    }

    async fn set_job_state(&self, job: &JobId, state: JobState) -> StoreResult<()> {
        let key = job_key(job, "state");
        let mut inv = SCRIPTS.set_state.prepare_invoke();
        inv.key(&key)
            .key(job_key(job, "plan"))
            .key(job_key(job, "events"))
            .key(job_key(job, "evseq"))
            .arg(self.ttl_ms())
            .arg(encode(&state))
            .arg(if state.is_finished() { "1" } else { "0" });
        let _: i64 = self
            .invoke(&inv)
            .await
            .map_err(|e| self.err(e, Some(job), &key))?;
        Ok(())
    }

    async fn job_state(&self, job: &JobId) -> StoreResult<JobState> {
        let key = job_key(job, "state");
        let bytes: Option<Vec<u8>> = self
            .query(redis::cmd("GET").arg(&key))
            .await
            .map_err(|e| self.err(e, Some(job), &key))?;
        decode(
            &bytes.ok_or_else(|| StoreError::UnknownJob(job.clone()))?,
            &key,
        )
    }

    async fn delete_job(&self, job: &JobId) -> StoreResult<()> {
        self.forget_plan(job);
        let prefix = job_prefix(job);
        let mut inv = SCRIPTS.delete_job.prepare_invoke();
        inv.key(job_key(job, "plan"))
            .key(job_key(job, "state"))
            .key(job_key(job, "events"))
            .key(job_key(job, "objects"))
            .arg(self.ttl_ms());
        let objs: Vec<String> = self
            .invoke(&inv)
            .await
            .map_err(|e| self.err(e, Some(job), &prefix))?;
        let mut doomed: Vec<String> = ["arr", "cnt", "out", "events", "evseq", "objects"]
            .iter()
            .map(|s| job_key(job, s))
            .collect();
        for batch in objs.chunks(BATCH) {
            let values: Vec<Option<Vec<u8>>> = self
                .query(redis::cmd("MGET").arg(batch))
                .await
                .map_err(|e| self.err(e, Some(job), &prefix))?;
            for (key, value) in batch.iter().zip(values) {
                if let Some(v) = value {
                    doomed.extend(objects::chunk_keys(key, &v));
                }
            }
        }
        doomed.extend(objs.iter().map(|k| objects::reader_set(k)));
        doomed.extend(objs);
        for batch in doomed.chunks(BATCH) {
            let _: i64 = self
                .query(redis::cmd("UNLINK").arg(batch))
                .await
                .map_err(|e| self.err(e, Some(job), &prefix))?;
        }
        let _: i64 = self
            .query(redis::cmd("SREM").arg(JOBS).arg(job.as_str()))
            .await
            .map_err(|e| self.err(e, Some(job), JOBS))?;
        self.forget_plan(job);
        Ok(())
    }

    async fn run_epoch(&self) -> StoreResult<String> {
        // One atomic step: make the epoch unless it exists, and read it.
        let mine = JobId::generate().to_string();
        let mut p = redis::pipe();
        p.cmd("SET")
            .arg(EPOCH)
            .arg(&mine)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(EPOCH);
        let (epoch,): (Option<String>,) = self
            .query_pipe(p.atomic())
            .await
            .map_err(|e| self.err(e, None, EPOCH))?;
        epoch.ok_or_else(|| StoreError::Corrupt {
            key: EPOCH.into(),
            message: "the run epoch vanished while it was made".into(),
        })
    }

    async fn list_jobs(&self) -> StoreResult<Vec<JobId>> {
        let ids: Vec<String> = self
            .query(redis::cmd("SMEMBERS").arg(JOBS))
            .await
            .map_err(|e| self.err(e, None, JOBS))?;
        let mut live = Vec::with_capacity(ids.len());
        let mut lapsed = Vec::new();
        for batch in ids.chunks(BATCH) {
            let keys: Vec<String> = batch
                .iter()
                .map(|id| job_key(&JobId::new(id.as_str()), "state"))
                .collect();
            let states: Vec<Option<Vec<u8>>> = self
                .query(redis::cmd("MGET").arg(&keys))
                .await
                .map_err(|e| self.err(e, None, JOBS))?;
            for (id, state) in batch.iter().zip(states) {
                match state {
                    Some(_) => live.push(JobId::new(id.as_str())),
                    None => lapsed.push(id.as_str()),
                }
            }
        }
        // Jobs whose keys expired (never deleted): forget them.
        if !lapsed.is_empty() {
            let _: i64 = self
                .query(redis::cmd("SREM").arg(JOBS).arg(&lapsed))
                .await
                .map_err(|e| self.err(e, None, JOBS))?;
        }
        live.sort();
        Ok(live)
    }
}

/// The error for a task index outside the job (as the in-memory store reports it).
pub(super) fn check_task(cp: &CachedPlan, t: TaskIdx) -> StoreResult<()> {
    let n = cp.plan.dag.len();
    if t.get() >= n {
        return Err(StoreError::Corrupt {
            key: format!("{}task:{}", job_prefix(&cp.plan.job), t.0),
            message: format!("task index out of range (job has {n})"),
        });
    }
    Ok(())
}

impl OutputStore for RedisStore {
    async fn put_outputs(&self, job: &JobId, items: Vec<(TaskIdx, Payload)>) -> StoreResult<()> {
        let cp = self.cached_plan(job).await?;
        for (t, _) in &items {
            check_task(&cp, *t)?;
        }
        if items.is_empty() {
            return Ok(());
        }
        let key = job_key(job, "out");
        let mut inv = SCRIPTS.put_outputs.prepare_invoke();
        inv.key(job_key(job, "state")).key(&key).arg(self.ttl_ms());
        for (t, p) in &items {
            inv.arg(t.0).arg(encode(p));
        }
        let _: i64 = self
            .invoke(&inv)
            .await
            .map_err(|e| self.err(e, Some(job), &key))?;
        Ok(())
    }

    async fn get_outputs(
        &self,
        job: &JobId,
        tasks: &[TaskIdx],
    ) -> StoreResult<Vec<Option<Payload>>> {
        let cp = self.cached_plan(job).await?;
        for t in tasks {
            check_task(&cp, *t)?;
        }
        let key = job_key(job, "out");
        let mut p = redis::pipe();
        p.cmd("EXISTS").arg(job_key(job, "state"));
        if !tasks.is_empty() {
            p.cmd("HMGET").arg(&key);
            for t in tasks {
                p.arg(t.0);
            }
        }
        let (exists, values): (i64, Vec<Option<Vec<u8>>>) = if tasks.is_empty() {
            let (e,): (i64,) = self
                .query_pipe(&p)
                .await
                .map_err(|e| self.err(e, Some(job), &key))?;
            (e, Vec::new())
        } else {
            self.query_pipe(&p)
                .await
                .map_err(|e| self.err(e, Some(job), &key))?
        };
        if exists == 0 {
            self.forget_plan(job);
            return Err(StoreError::UnknownJob(job.clone()));
        }
        values
            .into_iter()
            .map(|v| v.map(|b| decode(&b, &key)).transpose())
            .collect()
    }
}

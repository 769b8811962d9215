//! Per-job event streams.
//!
//! `append_events` is one script call: it numbers the events with a counter and adds event
//! n with the stream id `n-1`, so the trait's cursor (the last n read) maps straight onto
//! stream ids. `read_events` is one pipelined round trip (state, counter and `XRANGE` after
//! the cursor) when events are there or the job is finished; otherwise it blocks with
//! `XREAD BLOCK` on a dedicated connection, `stream_block` at a time, checking the job
//! between blocks. A job reaching a final state, or being deleted, adds a wake-up marker
//! (field `w`, skipped by readers) so that blocked readers return at once.

use super::scripts::SCRIPTS;
use super::{RedisStore, decode, encode, job_key, reply};
use crate::error::StoreError;
use crate::ids::JobId;
use crate::messages::{Event, JobState};
use crate::store::{EventBatch, EventLog, StoreResult};
use std::time::Duration;
use tokio::time::Instant;

/// Bound on the read loop (each turn blocks or returns, so this is never reached in
/// practice).
const MAX_TURNS: usize = 100_000;

impl EventLog for RedisStore {
    async fn append_events(&self, job: &JobId, events: Vec<Event>) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let key = job_key(job, "events");
        let mut inv = SCRIPTS.append_events.prepare_invoke();
        inv.key(job_key(job, "state"))
            .key(&key)
            .key(job_key(job, "evseq"))
            .key(job_key(job, "plan"))
            .arg(self.ttl_ms());
        for e in &events {
            inv.arg(encode(e));
        }
        let _: i64 = self
            .invoke(&inv)
            .await
            .map_err(|e| self.err(e, Some(job), &key))?;
        Ok(())
    }

    async fn read_events(
        &self,
        job: &JobId,
        from: u64,
        max: usize,
        wait: Duration,
    ) -> StoreResult<EventBatch> {
        let max = max.clamp(1, super::MAX_BATCH);
        let key = job_key(job, "events");
        let state_key = job_key(job, "state");
        let deadline = Instant::now() + wait;
        // Entries after this id are new to us (markers included).
        let mut after: (u64, u64) = if from == 0 { (0, 0) } else { (from, 1) };
        for _ in 0..MAX_TURNS {
            // The state first: if it is final here, nothing read after it is missed.
            let mut p = redis::pipe();
            p.cmd("GET")
                .arg(&state_key)
                .cmd("GET")
                .arg(job_key(job, "evseq"))
                .cmd("XRANGE")
                .arg(&key)
                .arg(reply::format_id((after.0, after.1 + 1)))
                .arg("+")
                .arg("COUNT")
                .arg(max);
            let (state, evseq, range): (Option<Vec<u8>>, Option<u64>, redis::Value) = self
                .query_pipe(&p)
                .await
                .map_err(|e| self.err(e, Some(job), &key))?;
            let Some(state) = state else {
                self.forget_plan(job);
                return Err(StoreError::UnknownJob(job.clone()));
            };
            let entries = reply::entries(range);
            let full = entries.len() >= max;
            if let Some(batch) = self.take_events(entries, &key, &mut after)? {
                return Ok(batch);
            }
            if full {
                continue; // a page of markers only: read on
            }
            let state: JobState = decode(&state, &state_key)?;
            if state.is_finished() {
                return Ok(EventBatch {
                    events: Vec::new(),
                    next: from.min(evseq.unwrap_or(0)),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let block = (deadline - now).min(self.inner.cfg.stream_block);
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(max)
                .arg("BLOCK")
                .arg((block.as_millis() as u64).max(1))
                .arg("STREAMS")
                .arg(&key)
                .arg(reply::format_id(after));
            let v = self
                .query_blocking(&cmd, block)
                .await
                .map_err(|e| self.err(e, Some(job), &key))?;
            if let Some(batch) = self.take_events(reply::read_entries(v), &key, &mut after)? {
                return Ok(batch);
            }
        }
        Ok(EventBatch {
            events: Vec::new(),
            next: from,
        })
    }
}

impl RedisStore {
    /// The events among `entries` (markers skipped), moving `after` past all of them; `None`
    /// when there are no events.
    fn take_events(
        &self,
        entries: Vec<reply::Entry>,
        key: &str,
        after: &mut (u64, u64),
    ) -> StoreResult<Option<EventBatch>> {
        let mut events = Vec::new();
        let mut next = 0;
        for e in entries {
            *after = (*after).max(e.id);
            if let Some(bytes) = e.field(b"e") {
                events.push(decode::<Event>(bytes, key)?);
                next = e.id.0;
            }
        }
        Ok((!events.is_empty()).then_some(EventBatch { events, next }))
    }
}

//! The invocation queue: one stream per executor class, `rk:q:<class>`, read through the
//! consumer group `rk-exec`. Each entry holds one invocation (MessagePack, field `i`).
//!
//! Round trips: `push` 1 (`XADD`s pipelined); `pull` 1 (`XREADGROUP`, blocking on a
//! dedicated connection when `wait` > 0, at most `stream_block` per block); `ack` 1 (`XACK` +
//! `XDEL`, so the stream does not grow); `touch` 1 and `reclaim` 1 (scripts over `XPENDING`,
//! `XCLAIM … JUSTID` and `XAUTOCLAIM`). The group is created once per class and store
//! (`XGROUP CREATE … MKSTREAM`, one more round trip), and again when Redis lost it.

use super::conn::code;
use super::scripts::SCRIPTS;
use super::{RedisStore, decode, encode, reply};
use crate::error::StoreError;
use crate::ids::{ExecClass, ExecutorId, JobId};
use crate::messages::Invocation;
use crate::store::{Delivery, DeliveryId, InvocationQueue, StoreResult};
use redis::RedisError;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

const GROUP: &str = "rk-exec";

/// Entries read per `XRANGE` page when scanning a stream for a job's entries.
const SCAN_PAGE: usize = 1000;

fn queue_key(class: ExecClass) -> String {
    format!("rk:q:{}", class.as_str())
}

/// The consumer group is gone (Redis restarted without persistence), or the stream was
/// deleted under a blocked read.
fn no_group(e: &RedisError) -> bool {
    matches!(code(e), Some("NOGROUP" | "UNBLOCKED"))
}

fn delivery_id(id: (u64, u64)) -> DeliveryId {
    DeliveryId {
        ms: id.0,
        seq: id.1,
    }
}

impl RedisStore {
    async fn ensure_group(&self, class: ExecClass) -> StoreResult<()> {
        let flag = &self.inner.groups[class as usize];
        if flag.load(Ordering::Acquire) {
            return Ok(());
        }
        let key = queue_key(class);
        let r: Result<(), RedisError> = self
            .query(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&key)
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match r {
            Ok(()) => {}
            Err(e) if code(&e) == Some("BUSYGROUP") => {}
            Err(e) => return Err(self.err(e, None, &key)),
        }
        flag.store(true, Ordering::Release);
        Ok(())
    }

    /// Turns stream entries into deliveries. Entries that do not decode (not written by
    /// us) are acked and dropped so that they cannot wedge the queue; the call fails only
    /// when nothing else was there.
    async fn deliveries(
        &self,
        class: ExecClass,
        items: Vec<(DeliveryId, u32, Option<Vec<u8>>)>,
    ) -> StoreResult<Vec<Delivery>> {
        let key = queue_key(class);
        let mut out = Vec::with_capacity(items.len());
        let mut bad = Vec::new();
        let mut first_error = None;
        for (id, deliveries, payload) in items {
            let Some(payload) = payload else {
                continue; // deleted while pending
            };
            match decode::<Invocation>(&payload, &key) {
                Ok(invocation) => out.push(Delivery {
                    id,
                    deliveries,
                    invocation,
                }),
                Err(e) => {
                    bad.push(id);
                    first_error.get_or_insert(e);
                }
            }
        }
        if !bad.is_empty() {
            self.ack(class, &bad).await?;
        }
        match first_error {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    async fn read_group(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        max: usize,
        block: Option<Duration>,
    ) -> Result<Vec<reply::Entry>, RedisError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer.as_str())
            .arg("COUNT")
            .arg(max);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg((b.as_millis() as u64).max(1));
        }
        cmd.arg("STREAMS").arg(queue_key(class)).arg(">");
        let v = match block {
            Some(b) => self.query_blocking(&cmd, b).await?,
            None => self.query(&cmd).await?,
        };
        Ok(reply::read_entries(v))
    }
}

impl InvocationQueue for RedisStore {
    async fn push(&self, class: ExecClass, invocations: Vec<Invocation>) -> StoreResult<()> {
        if invocations.is_empty() {
            return Ok(());
        }
        self.ensure_group(class).await?;
        let key = queue_key(class);
        let mut p = redis::pipe();
        for inv in &invocations {
            p.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("i")
                .arg(encode(inv))
                .arg("j")
                .arg(inv.job.as_str());
        }
        let _: Vec<String> = self
            .query_pipe(&p)
            .await
            .map_err(|e| self.err(e, None, &key))?;
        Ok(())
    }

    async fn pull(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        max: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Delivery>> {
        let key = queue_key(class);
        let max = max.clamp(1, super::MAX_BATCH);
        let deadline = Instant::now() + wait;
        let mut regrouped = false;
        self.ensure_group(class).await?;
        loop {
            let now = Instant::now();
            let block = (!wait.is_zero()).then(|| {
                deadline
                    .saturating_duration_since(now)
                    .min(self.inner.cfg.stream_block)
            });
            let entries = match self.read_group(class, consumer, max, block).await {
                Ok(e) => e,
                Err(e) if no_group(&e) && !regrouped => {
                    // Redis lost the group (a restart without persistence): make it again.
                    regrouped = true;
                    self.inner.groups[class as usize].store(false, Ordering::Release);
                    self.ensure_group(class).await?;
                    continue;
                }
                Err(e) => return Err(self.err(e, None, &key)),
            };
            if !entries.is_empty() {
                let items = entries
                    .into_iter()
                    .map(|e| {
                        let payload = e.field(b"i").map(<[u8]>::to_vec);
                        (delivery_id(e.id), 1, payload)
                    })
                    .collect();
                return self.deliveries(class, items).await;
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, class: ExecClass, ids: &[DeliveryId]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = queue_key(class);
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let mut p = redis::pipe();
        p.cmd("XACK")
            .arg(&key)
            .arg(GROUP)
            .arg(&ids)
            .cmd("XDEL")
            .arg(&key)
            .arg(&ids);
        match self.query_pipe::<(i64, i64)>(&p).await {
            Ok(_) => Ok(()),
            Err(e) if no_group(&e) => Ok(()),
            Err(e) => Err(self.err(e, None, &key)),
        }
    }

    async fn touch(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        ids: &[DeliveryId],
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = queue_key(class);
        let mut inv = SCRIPTS.touch.prepare_invoke();
        inv.key(&key).arg(GROUP).arg(consumer.as_str());
        for id in ids {
            inv.arg(id.to_string());
        }
        match self.invoke::<i64>(&inv).await {
            Ok(_) => Ok(()),
            Err(e) if no_group(&e) => Ok(()),
            Err(e) => Err(self.err(e, None, &key)),
        }
    }

    async fn job_queued(&self, job: &JobId) -> StoreResult<bool> {
        // Acked entries are deleted, so every entry in a stream is waiting or pending.
        for class in [ExecClass::Cpu, ExecClass::Gpu] {
            let key = queue_key(class);
            let mut start = "-".to_owned();
            loop {
                let v: redis::Value = self
                    .query(
                        redis::cmd("XRANGE")
                            .arg(&key)
                            .arg(&start)
                            .arg("+")
                            .arg("COUNT")
                            .arg(SCAN_PAGE),
                    )
                    .await
                    .map_err(|e| self.err(e, Some(job), &key))?;
                let entries = reply::entries(v);
                for e in &entries {
                    let of_job = match e.field(b"j") {
                        Some(j) => j == job.as_str().as_bytes(),
                        // Entries from before the job field: decode the invocation.
                        None => e
                            .field(b"i")
                            .and_then(|b| decode::<Invocation>(b, &key).ok())
                            .is_some_and(|inv| &inv.job == job),
                    };
                    if of_job {
                        return Ok(true);
                    }
                }
                match entries.last() {
                    Some(last) if entries.len() == SCAN_PAGE => {
                        start = format!("({}", reply::format_id(last.id));
                    }
                    _ => break,
                }
            }
        }
        Ok(false)
    }

    async fn reclaim(
        &self,
        class: ExecClass,
        consumer: &ExecutorId,
        min_idle: Duration,
        max: usize,
    ) -> StoreResult<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let key = queue_key(class);
        let mut inv = SCRIPTS.reclaim.prepare_invoke();
        inv.key(&key)
            .arg(GROUP)
            .arg(consumer.as_str())
            .arg(min_idle.as_millis() as u64)
            .arg(max.min(super::MAX_BATCH));
        let out: redis::Value = match self.invoke(&inv).await {
            Ok(v) => v,
            Err(e) if no_group(&e) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e, None, &key)),
        };
        let flat = reply::flat(out);
        let mut items = Vec::with_capacity(flat.len() / 3);
        let mut it = flat.into_iter();
        while let (Some(id), Some(n), Some(payload)) = (it.next(), it.next(), it.next()) {
            let id = reply::as_bytes(id)
                .and_then(|b| reply::parse_id(&b))
                .ok_or_else(|| StoreError::Corrupt {
                    key: key.clone(),
                    message: "reclaim script answered a bad id".into(),
                })?;
            let deliveries = reply::as_u64(&n).unwrap_or(1).min(u64::from(u32::MAX)) as u32;
            items.push((delivery_id(id), deliveries, reply::as_bytes(payload)));
        }
        self.deliveries(class, items).await
    }
}

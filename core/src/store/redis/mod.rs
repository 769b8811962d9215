//! The Redis implementation of every store trait (cluster mode, `docs/architecture.md`). It passes
//! the same [conformance suite](crate::store::conformance) as the in-memory store.
//!
//! ## Keys
//! Everything about a job lives under `rk:{<job>}:` ([`job_prefix`]); the braces are a
//! Redis Cluster hash tag, so one script or pipeline may touch any of them:
//!
//! | key | type | what |
//! |---|---|---|
//! | `rk:{job}:plan` | string | the [`JobPlan`] (MessagePack); written once (`SET NX`) |
//! | `rk:{job}:state` | string | the [`JobState`]; its existence is the job's existence |
//! | `rk:{job}:arr` | bitmap | fan-in: one bit per (child, parent position) |
//! | `rk:{job}:cnt` | hash | fan-in: child index → parents arrived, then `c<bit>` (the completer) once complete |
//! | `rk:{job}:out` | hash | task index → output [`Payload`] (write-once, `HSETNX`); not stored when only children its own arrivals complete read it |
//! | `rk:{job}:events` | stream | event n has id `n-1`, field `e`; wake-up markers have field `w` |
//! | `rk:{job}:evseq` | string | events appended so far |
//! | `rk:{job}:objects` | set | the job's object keys, for `delete_job` |
//! | `rk:{job}:obj:<task>…` | string | objects (see below); `0x00` alone is a released output's tombstone |
//! | `rk:{job}:obj:<task>:rel` | set | readers that released the output so far |
//!
//! Every job key expires `key_ttl` after its last write (a backstop: `delete_job` frees them
//! all); writes of job activity also refresh the plan's and state's expiry. Set `key_ttl`
//! above the longest job. Global keys: `rk:jobs` (set of job ids), `rk:q:<class>` (the
//! invocation stream of each executor class, consumer group `rk-exec`), `rk:profile:<dag>`
//! (hash of histogram counters), `rk:exec:<id>` (an executor's registration, expiring with
//! its heartbeat), `rk:execs` (set of registered ids) and `rk:epoch` (the run epoch, which
//! a restart without persistence loses).
//!
//! An object is stored in one value when it fits in `chunk_size` (`0x00` + bytes), and
//! otherwise as chunks `<key>:v<version>:<i>` (which keep the key's hash tag) written first,
//! then published by a small manifest under the key (`0x01` + version, length, chunk size).
//! A reader reads the manifest and then the chunks, and retries when the manifest changed
//! underneath it: it sees a whole object or none, never a part.
//!
//! ## Connections and time bounds
//! Commands go through one multiplexed [`redis::aio::ConnectionManager`] (or one
//! [`redis::cluster_async::ClusterConnection`]), configured with `connect_timeout`,
//! `response_timeout` and `retries` reconnection attempts (50–500 ms apart); each round trip
//! is also wrapped in a timer, so a Redis that goes away turns into
//! [`StoreError::Unavailable`] or [`StoreError::Timeout`] within a few seconds and never a
//! hang. Blocking reads (`XREADGROUP BLOCK`, `XREAD BLOCK`) use dedicated connections from a
//! small pool, and block for at most `stream_block` at a time.
//!
//! ## URLs
//! `redis://[[user]:password@]host:port[/db]` for one node (AUTH through the URL).
//! `redis+cluster://[[user]:password@]host1:port1,host2:port2,…` for a Redis Cluster (the
//! seed nodes; credentials apply to every node). `rediss://` needs the `redis` crate's TLS
//! features, which this build does not enable: such a URL fails to connect with
//! [`StoreError::Unavailable`].

mod conn;
mod events;
mod fanin;
mod jobs;
mod members;
mod objects;
mod profiles;
mod queue;
mod reply;
mod scripts;

use crate::error::StoreError;
use crate::ids::JobId;
use crate::messages::job_prefix;
#[cfg(doc)]
use crate::messages::{JobState, Payload};
use crate::plan::JobPlan;
use crate::store::StoreResult;
use conn::{BlockingPool, Conn, Endpoint, bounded, map_err};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, ScriptInvocation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How to reach Redis, and the store's limits.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://…`, or `redis+cluster://host1:port1,host2:port2` (see the module docs).
    pub url: String,
    /// Bound on each connection attempt.
    pub connect_timeout: Duration,
    /// Bound on each reply (blocking reads add their block time).
    pub response_timeout: Duration,
    /// Reconnection attempts after a connection fails, before a call gives up.
    pub retries: u32,
    /// Expiry of every job key, refreshed by writes (a backstop for jobs never deleted).
    pub key_ttl: Duration,
    /// Largest object accepted by `put_object`.
    pub max_object: usize,
    /// Objects larger than this are stored in chunks of this size.
    pub chunk_size: usize,
    /// Longest single blocking read; longer waits are made of several, with a check of the
    /// job's state in between.
    pub stream_block: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            retries: 2,
            key_ttl: Duration::from_secs(24 * 3600),
            max_object: crate::store::memory::DEFAULT_MAX_OBJECT,
            chunk_size: 512 << 10,
            stream_block: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password.
        f.debug_struct("RedisConfig")
            .field("url", &conn::redact(&self.url))
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("retries", &self.retries)
            .field("key_ttl", &self.key_ttl)
            .field("max_object", &self.max_object)
            .field("chunk_size", &self.chunk_size)
            .field("stream_block", &self.stream_block)
            .finish()
    }
}

/// The Redis store. Cheap to clone: clones share connections and the plan cache.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &conn::redact(&self.inner.cfg.url))
            .finish_non_exhaustive()
    }
}

/// Most entries asked of Redis in one read (a batch may hold fewer than asked).
const MAX_BATCH: usize = 1 << 20;

/// Decoded plans kept per store; plans are immutable, and executors read one per invocation.
const PLAN_CACHE: usize = 256;

struct Inner {
    conn: Conn,
    blocking: BlockingPool,
    cfg: RedisConfig,
    /// Bound on one round trip on the main connection, reconnection included.
    limit: Duration,
    /// Plans by job, each loaded once however many callers want it at the same time (a
    /// cold executor's slots all pull their first invocation of a job at once).
    plans: Mutex<HashMap<JobId, Arc<tokio::sync::OnceCell<Arc<CachedPlan>>>>>,
    /// Whether this store has made sure the consumer group of each class exists.
    groups: [AtomicBool; 2],
}

/// A plan and the bit offset of each task's arrivals in the job's fan-in bitmap.
struct CachedPlan {
    plan: Arc<JobPlan>,
    /// `off[t]..off[t] + needed(t)`: task `t`'s bits.
    off: Vec<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RedisStore {
    /// Connects (waiting for the first connection, within the configured bounds).
    pub async fn connect(config: RedisConfig) -> StoreResult<RedisStore> {
        let mut cfg = config;
        cfg.chunk_size = cfg.chunk_size.max(1024);
        cfg.stream_block = cfg.stream_block.max(Duration::from_millis(10));
        cfg.key_ttl = cfg.key_ttl.max(Duration::from_secs(1));
        let ep = Endpoint::parse(&cfg.url)?;
        let limit = cfg.response_timeout
            + (cfg.connect_timeout + conn::MAX_RETRY_DELAY) * (cfg.retries + 1)
            + Duration::from_millis(500);
        let url = conn::redact(&cfg.url);
        let main = bounded(limit, conn::connect_main(&ep, &cfg))
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    StoreError::Timeout {
                        ms: limit.as_millis() as u64,
                    }
                } else {
                    StoreError::Unavailable(format!("cannot connect to {url}: {e}"))
                }
            })?;
        let blocking = BlockingPool::new(&ep, &cfg)
            .map_err(|e| StoreError::Unavailable(format!("{url}: {e}")))?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn: main,
                blocking,
                cfg,
                limit,
                plans: Mutex::new(HashMap::new()),
                groups: [AtomicBool::new(false), AtomicBool::new(false)],
            }),
        })
    }

    pub fn config(&self) -> &RedisConfig {
        &self.inner.cfg
    }

    fn ttl_ms(&self) -> u64 {
        self.inner.cfg.key_ttl.as_millis() as u64
    }

    fn err(&self, e: RedisError, job: Option<&JobId>, key: &str) -> StoreError {
        let e = map_err(e, job, key, self.inner.cfg.response_timeout);
        if let StoreError::UnknownJob(job) = &e {
            self.forget_plan(job);
        }
        e
    }

    /// One command on the main connection.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let mut c = self.inner.conn.clone();
        bounded(self.inner.limit, cmd.query_async(&mut c)).await
    }

    /// One pipeline (one round trip; all keys in one slot on a cluster).
    async fn query_pipe<T: FromRedisValue>(&self, p: &Pipeline) -> Result<T, RedisError> {
        let mut c = self.inner.conn.clone();
        bounded(self.inner.limit, p.query_async(&mut c)).await
    }

    /// One script call (`EVALSHA`, and `SCRIPT LOAD` + `EVALSHA` after a `NOSCRIPT`).
    async fn invoke<T: FromRedisValue>(&self, s: &ScriptInvocation<'_>) -> Result<T, RedisError> {
        let mut c = self.inner.conn.clone();
        bounded(self.inner.limit * 2, s.invoke_async(&mut c)).await
    }

    /// One blocking read that blocks the server for at most `block`.
    async fn query_blocking(&self, cmd: &Cmd, block: Duration) -> Result<redis::Value, RedisError> {
        let limit = self.inner.limit + block;
        self.inner.blocking.query(cmd, limit).await
    }

    /// Whether this store talks to a Redis Cluster, where one pipeline must stay within one
    /// slot.
    fn is_cluster(&self) -> bool {
        matches!(self.inner.conn, Conn::Cluster(_))
    }

    /// The job's plan, from the cache or the store.
    async fn cached_plan(&self, job: &JobId) -> StoreResult<Arc<CachedPlan>> {
        let cell = {
            let mut plans = lock(&self.inner.plans);
            match plans.get(job) {
                Some(c) => c.clone(),
                None => {
                    if plans.len() >= PLAN_CACHE
                        && let Some(k) = plans.keys().next().cloned()
                    {
                        plans.remove(&k);
                    }
                    let c = Arc::new(tokio::sync::OnceCell::new());
                    plans.insert(job.clone(), c.clone());
                    c
                }
            }
        };
        let loaded = cell
            .get_or_try_init(|| self.load_plan(job))
            .await
            .map(Arc::clone);
        if loaded.is_err() {
            // Forget the empty cell, so that a job that is not there (a deleted job's late
            // invocations, say) takes no place from cached plans; the next caller tries again.
            let mut plans = lock(&self.inner.plans);
            if plans
                .get(job)
                .is_some_and(|c| Arc::ptr_eq(c, &cell) && !c.initialized())
            {
                plans.remove(job);
            }
        }
        loaded
    }

    /// Reads and decodes `job`'s plan, with its fan-in bit offsets.
    async fn load_plan(&self, job: &JobId) -> StoreResult<Arc<CachedPlan>> {
        let key = job_key(job, "plan");
        let bytes: Option<Vec<u8>> = self
            .query(redis::cmd("GET").arg(&key))
            .await
            .map_err(|e| self.err(e, Some(job), &key))?;
        let bytes = bytes.ok_or_else(|| StoreError::UnknownJob(job.clone()))?;
        let plan = JobPlan::from_msgpack(&bytes).map_err(|e| StoreError::Corrupt {
            key: key.clone(),
            message: e.to_string(),
        })?;
        let mut off = Vec::with_capacity(plan.dag.len());
        let mut total = 0u64;
        for t in plan.dag.tasks() {
            off.push(total);
            total += u64::from(plan.dag.needed(t));
        }
        Ok(Arc::new(CachedPlan {
            plan: Arc::new(plan),
            off,
        }))
    }

    fn forget_plan(&self, job: &JobId) {
        lock(&self.inner.plans).remove(job);
    }
}

/// `rk:{<job>}:<suffix>`.
fn job_key(job: &JobId, suffix: &str) -> String {
    let mut k = job_prefix(job);
    k.push_str(suffix);
    k
}

/// MessagePack with field names, so that records can grow fields additively.
fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(bytes: &[u8], key: &str) -> StoreResult<T> {
    crate::msgpack::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

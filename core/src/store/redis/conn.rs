//! Connections and errors: the multiplexed connection every command goes through, the small
//! pool of dedicated connections for blocking reads, endpoint parsing (single node or
//! cluster), and the mapping of Redis errors onto [`StoreError`].

use super::RedisConfig;
use crate::error::StoreError;
use crate::ids::JobId;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind,
    Value,
};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Shortest delay between reconnection attempts.
const MIN_RETRY_DELAY: Duration = Duration::from_millis(50);
/// Longest delay between reconnection attempts.
pub(super) const MAX_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Idle blocking connections kept for reuse.
const MAX_IDLE_BLOCKING: usize = 64;

/// One connection of any kind; all of them multiplex concurrent requests.
#[derive(Clone)]
pub(super) enum Conn {
    /// The main single-node connection: reconnects on its own, with bounded retries.
    Manager(ConnectionManager),
    /// A dedicated single-node connection for blocking reads.
    Direct(MultiplexedConnection),
    /// A Redis Cluster connection (routes each command by its key's slot).
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Direct(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the store's data lives.
pub(super) enum Endpoint {
    Single(redis::Client),
    Cluster(Vec<String>),
}

impl Endpoint {
    /// `redis://…` / `rediss://…` (one node), or `redis+cluster://[user:pass@]h1:p1,h2:p2`
    /// (seed nodes of a Redis Cluster; credentials apply to every node).
    pub(super) fn parse(url: &str) -> Result<Endpoint, StoreError> {
        let bad = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("bad Redis URL {}: {e}", redact(url)))
        };
        for (scheme, node_scheme) in [
            ("redis+cluster://", "redis://"),
            ("rediss+cluster://", "rediss://"),
        ] {
            let Some(rest) = url.strip_prefix(scheme) else {
                continue;
            };
            let rest = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let (auth, hosts) = match rest.rsplit_once('@') {
                Some((a, h)) => (format!("{a}@"), h),
                None => (String::new(), rest),
            };
            let nodes: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| format!("{node_scheme}{auth}{h}"))
                .collect();
            if nodes.is_empty() {
                return Err(bad(&"no cluster nodes"));
            }
            for n in &nodes {
                redis::Client::open(n.as_str()).map_err(|e| bad(&e))?;
            }
            return Ok(Endpoint::Cluster(nodes));
        }
        redis::Client::open(url)
            .map(Endpoint::Single)
            .map_err(|e| bad(&e))
    }
}

/// The URL without its password, for messages.
pub(super) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

fn cluster_client(
    nodes: &[String],
    cfg: &RedisConfig,
    response_timeout: Duration,
) -> Result<ClusterClient, RedisError> {
    ClusterClient::builder(nodes.iter().map(String::as_str))
        .connection_timeout(cfg.connect_timeout)
        .response_timeout(response_timeout)
        .retries(cfg.retries)
        .min_retry_wait(MIN_RETRY_DELAY.as_millis() as u64)
        .max_retry_wait(MAX_RETRY_DELAY.as_millis() as u64)
        .build()
}

/// Opens the main connection.
pub(super) async fn connect_main(ep: &Endpoint, cfg: &RedisConfig) -> Result<Conn, RedisError> {
    match ep {
        Endpoint::Single(client) => {
            let mcfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(cfg.connect_timeout))
                .set_response_timeout(Some(cfg.response_timeout))
                .set_number_of_retries(cfg.retries as usize)
                .set_min_delay(MIN_RETRY_DELAY)
                .set_max_delay(MAX_RETRY_DELAY);
            Ok(Conn::Manager(
                ConnectionManager::new_with_config(client.clone(), mcfg).await?,
            ))
        }
        Endpoint::Cluster(nodes) => {
            let client = cluster_client(nodes, cfg, cfg.response_timeout)?;
            Ok(Conn::Cluster(client.get_async_connection().await?))
        }
    }
}

enum BlockingSource {
    Single(redis::Client, AsyncConnectionConfig),
    Cluster(ClusterClient),
}

/// Dedicated connections for blocking reads (`XREADGROUP BLOCK`, `XREAD BLOCK`): a blocked
/// command holds its connection, so it must not share the main one. A connection is taken
/// for one read and given back only when the read finished cleanly.
pub(super) struct BlockingPool {
    source: BlockingSource,
    idle: Mutex<Vec<Conn>>,
}

impl BlockingPool {
    /// Reads block for at most `cfg.stream_block`, so their response timeout is that plus the
    /// usual response timeout.
    pub(super) fn new(ep: &Endpoint, cfg: &RedisConfig) -> Result<BlockingPool, RedisError> {
        let response_timeout = cfg.stream_block + cfg.response_timeout;
        let source = match ep {
            Endpoint::Single(client) => BlockingSource::Single(
                client.clone(),
                AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(cfg.connect_timeout))
                    .set_response_timeout(Some(response_timeout)),
            ),
            Endpoint::Cluster(nodes) => {
                BlockingSource::Cluster(cluster_client(nodes, cfg, response_timeout)?)
            }
        };
        Ok(BlockingPool {
            source,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn open(&self) -> Result<Conn, RedisError> {
        match &self.source {
            BlockingSource::Single(client, acfg) => Ok(Conn::Direct(
                client
                    .get_multiplexed_async_connection_with_config(acfg)
                    .await?,
            )),
            BlockingSource::Cluster(client) => {
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Runs one (blocking) command on a dedicated connection, bounded by `limit`. An idle
    /// connection that turns out to be dead (the server restarted) is replaced once.
    pub(super) async fn query(&self, cmd: &Cmd, limit: Duration) -> Result<Value, RedisError> {
        let pooled = self.idle().pop();
        let from_pool = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => bounded(limit, self.open()).await?,
        };
        let mut result = bounded(limit, cmd.query_async::<Value>(&mut conn)).await;
        if from_pool && matches!(&result, Err(e) if e.is_io_error() && !e.is_timeout()) {
            conn = bounded(limit, self.open()).await?;
            result = bounded(limit, cmd.query_async::<Value>(&mut conn)).await;
        }
        if result.is_ok() {
            let mut idle = self.idle();
            if idle.len() < MAX_IDLE_BLOCKING {
                idle.push(conn);
            }
        }
        result
    }
}

/// Runs `fut`, failing with an I/O timeout error after `limit`: the last line of defence
/// against a hang, whatever the connection settings do.
pub(super) async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "store operation timed out",
        ))),
    }
}

/// The error's code when the server (or one of our scripts) answered with an error.
pub(super) fn code(e: &RedisError) -> Option<&str> {
    e.code()
}

/// Maps a Redis error onto the store's error. `job` is the job the call was about (a script's
/// `UNKNOWN_JOB` answer names it); `key` locates corrupt data; `limit` is the time bound
/// that applied, reported by [`StoreError::Timeout`].
pub(super) fn map_err(
    e: RedisError,
    job: Option<&JobId>,
    key: &str,
    limit: Duration,
) -> StoreError {
    if e.is_timeout() {
        return StoreError::Timeout {
            ms: limit.as_millis() as u64,
        };
    }
    if let (Some("UNKNOWN_JOB"), Some(job)) = (code(&e), job) {
        return StoreError::UnknownJob(job.clone());
    }
    // A server that cannot serve us now: out of memory, busy, loading, read-only, without
    // quorum, refusing our credentials, or full.
    if matches!(
        code(&e),
        Some(
            "OOM"
                | "BUSY"
                | "LOADING"
                | "MASTERDOWN"
                | "TRYAGAIN"
                | "CLUSTERDOWN"
                | "READONLY"
                | "MISCONF"
                | "NOAUTH"
                | "WRONGPASS"
                | "NOPERM"
                | "UNBLOCKED"
        )
    ) || e.to_string().contains("max number of clients")
    {
        return StoreError::Unavailable(e.to_string());
    }
    match e.kind() {
        // The data is not what we wrote: a foreign value, a wrong type, a broken script.
        ErrorKind::Parse
        | ErrorKind::UnexpectedReturnType
        | ErrorKind::Extension
        | ErrorKind::Server(
            ServerErrorKind::ResponseError
            | ServerErrorKind::ExecAbort
            | ServerErrorKind::NoScript
            | ServerErrorKind::CrossSlot,
        ) => StoreError::Corrupt {
            key: key.to_owned(),
            message: e.to_string(),
        },
        // I/O, connection, authentication, permissions, cluster topology, a loading or
        // read-only server, and configuration errors.
        _ => StoreError::Unavailable(e.to_string()),
    }
}

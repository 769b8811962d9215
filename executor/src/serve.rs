//! An executor process: [`serve`] connects to Redis and the KV-store proxy, starts the
//! executor (and a GPU executor beside it when devices are configured), keeps them
//! registered until a shutdown future resolves, then stops them in phases.
//!
//! `rukong executor` runs through [`serve`], and so does an executor binary built with
//! your own functions: give it a [`Registry`] and a [`ServeConfig`]. The `rukong-client`
//! crate's `executor_main` builds the config from the same flags, `RUKONG_*` variables and
//! settings file as `rukong executor`.
//!
//! ```no_run
//! use rukong_executor::serve::{ServeConfig, serve, shutdown_signal};
//! use rukong_executor::{ExecutorConfig, Registry};
//!
//! # async fn run() -> Result<(), rukong_executor::serve::ServeError> {
//! let mut registry = Registry::with_builtins();
//! registry.register_fn("answer", |_| Ok(rukong_core::Value::Int(42)));
//! let mut config = ServeConfig::new(ExecutorConfig::new(4));
//! config.redis.url = "redis://127.0.0.1:6379".into();
//! config.proxy = "127.0.0.1:7070".into();
//! config.token = Some("secret".into());
//! serve(registry, config, shutdown_signal()).await
//! # }
//! ```

use crate::config::{ExecutorConfig, GpuConfig};
use crate::executor::{ExecutorHandle, start, stop_all};
use crate::functions::Registry;
use rukong_core::proxy::ProxyError;
use rukong_core::proxy::remote::{RemoteConfig, RemoteProxy};
use rukong_core::store::redis::{RedisConfig, RedisStore};
use rukong_core::{ExecClass, ExecutorId, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an executor process needs: where the store and the proxy are, and the executors
/// to run.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The store (Redis).
    pub redis: RedisConfig,
    /// The KV-store proxy's address (`host:port`).
    pub proxy: String,
    /// Read and write objects in the proxy's shared directory when it is on this host
    /// ([`RemoteConfig::share_host_objects`]); `false`: always through the proxy.
    pub share_host_objects: bool,
    /// The shared token the proxy checks (`None`: an insecure cluster).
    pub token: Option<String>,
    /// The executor on the `cpu` queue.
    pub executor: ExecutorConfig,
    /// With devices: a second executor in this process, on the `gpu` queue, with one set
    /// of slots (lanes) per device. Its id is the first one's with `-gpu` appended.
    pub gpu: Option<GpuConfig>,
    /// How long start-up keeps retrying Redis and the proxy (a cluster's processes start
    /// in any order).
    pub patience: Duration,
}

impl ServeConfig {
    /// `executor` against the default Redis (`redis://127.0.0.1:6379`) and proxy
    /// (`127.0.0.1:7070`), no token, no GPU, 30 s of patience.
    pub fn new(executor: ExecutorConfig) -> Self {
        ServeConfig {
            redis: RedisConfig::default(),
            proxy: "127.0.0.1:7070".into(),
            share_host_objects: true,
            token: None,
            executor,
            gpu: None,
            patience: Duration::from_secs(30),
        }
    }
}

/// Why [`serve`] stopped before a shutdown was asked for.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Redis did not answer within the patience (or refused the connection for good).
    #[error("cannot reach Redis at {url}: {source}")]
    Store { url: String, source: StoreError },
    /// The proxy did not answer within the patience, or refused the token.
    #[error("cannot reach the proxy at {addr}: {source}")]
    Proxy { addr: String, source: ProxyError },
    /// The executor could not start (threads, or a GPU executor without a device).
    #[error("cannot start executor {id}: {source}")]
    Start {
        id: ExecutorId,
        source: std::io::Error,
    },
}

/// Runs the executors of `config` with `registry`'s functions until `shutdown` resolves,
/// then stops them: each slot finishes its current invocation, each executor
/// deregisters, and the engine stops admitting jobs that only they could run. Prints one
/// line per executor to stderr when it starts and when it stops.
pub async fn serve(
    registry: Registry,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let store = Arc::new(connect_store(&config.redis, config.patience).await?);
    let proxy = Arc::new(
        connect_proxy(
            &config.proxy,
            config.token.clone(),
            config.share_host_objects,
            config.patience,
        )
        .await?,
    );
    let registry = Arc::new(registry);
    let id = config.executor.id.clone();
    let started = |c: ExecutorConfig| {
        let id = c.id.clone();
        start(c, store.clone(), proxy.clone(), registry.clone())
            .map_err(|source| ServeError::Start { id, source })
    };
    let gpu = match config.gpu {
        Some(g) => {
            let mut c = config.executor.clone();
            c.id = ExecutorId::new(format!("{id}-gpu"));
            c.class = ExecClass::Gpu;
            let labels: Vec<String> = g.devices.iter().map(|d| d.label()).collect();
            c.gpu = g;
            let h = started(c)?;
            eprintln!(
                "rukong executor {id}-gpu: {} slots on {}",
                h.config().slots,
                labels.join(", ")
            );
            Some(h)
        }
        None => None,
    };
    let handle = match started(config.executor) {
        Ok(h) => h,
        Err(e) => {
            stop_blocking(gpu.into_iter().collect()).await;
            return Err(e);
        }
    };
    eprintln!(
        "rukong executor {id}: {} slots, pulling from {}",
        handle.config().slots,
        config.redis.url
    );
    shutdown.await;
    eprintln!("rukong executor {id}: stopping");
    // Both executors share one store client: stop them together.
    stop_blocking(std::iter::once(handle).chain(gpu).collect()).await;
    Ok(())
}

/// [`stop_all`] off the runtime's threads (it joins the executors' threads).
async fn stop_blocking(handles: Vec<ExecutorHandle>) {
    if handles.is_empty() {
        return;
    }
    if let Err(e) = tokio::task::spawn_blocking(move || stop_all(handles)).await {
        tracing::warn!(error = %e, "stopping the executors failed");
    }
}

/// Connects to Redis, retrying for up to `patience`.
pub async fn connect_store(
    config: &RedisConfig,
    patience: Duration,
) -> Result<RedisStore, ServeError> {
    let t0 = Instant::now();
    loop {
        match RedisStore::connect(config.clone()).await {
            Ok(st) => return Ok(st),
            Err(e) if t0.elapsed() < patience => {
                tracing::warn!(error = %e, url = %config.url, "Redis not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(source) => {
                return Err(ServeError::Store {
                    url: config.url.clone(),
                    source,
                });
            }
        }
    }
}

/// Connects to the proxy at `addr`, retrying for up to `patience` (a refused token is
/// not retried); `share_host_objects` as [`RemoteConfig::share_host_objects`].
pub async fn connect_proxy(
    addr: &str,
    token: Option<String>,
    share_host_objects: bool,
    patience: Duration,
) -> Result<RemoteProxy, ServeError> {
    let t0 = Instant::now();
    let config = RemoteConfig {
        share_host_objects,
        ..RemoteConfig::default()
    };
    loop {
        match RemoteProxy::connect(addr.to_owned(), token.clone(), config.clone()).await {
            Ok(p) => return Ok(p),
            Err(e) if e.is_retryable() && t0.elapsed() < patience => {
                tracing::warn!(error = %e, %addr, "proxy not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(source) => {
                return Err(ServeError::Proxy {
                    addr: addr.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

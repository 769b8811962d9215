//! The long-running cluster processes: `rukong engine`, `rukong kvproxy`,
//! `rukong executor`. Each connects to Redis, serves until SIGINT or SIGTERM, then shuts
//! down cleanly.

use super::settings::Settings;
use rukong_core::proxy::remote::RemoteProxy;
use rukong_core::store::redis::{RedisConfig, RedisStore};
use rukong_core::{ExecutorId, JobConfig, Limits};
use rukong_engine::http::{HttpConfig, router, serve as serve_http};
use rukong_engine::{Engine, EngineConfig, JobService, ServiceConfig};
use rukong_executor::{ExecutorConfig, Registry, ServeConfig};
use rukong_kvstore_proxy::{ObjectBackend, ServerConfig, serve as serve_proxy};
use std::sync::Arc;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use rukong_executor::serve::shutdown_signal;

pub fn redis_config(s: &Settings) -> RedisConfig {
    RedisConfig {
        url: s.redis.url.clone(),
        connect_timeout: Settings::ms(s.redis.connect_timeout_ms),
        response_timeout: Settings::ms(s.redis.response_timeout_ms),
        retries: s.redis.retries,
        key_ttl: Duration::from_secs(s.redis.key_ttl_s),
        max_object: s.proxy.max_object,
        ..RedisConfig::default()
    }
}

/// Connects to Redis, retrying for up to `patience` (a cluster's processes start in any
/// order).
pub async fn connect_store(s: &Settings, patience: Duration) -> Result<RedisStore, BoxError> {
    Ok(rukong_executor::serve::connect_store(&redis_config(s), patience).await?)
}

/// Connects to the proxy, retrying for up to `patience`.
pub async fn connect_proxy(s: &Settings, patience: Duration) -> Result<RemoteProxy, BoxError> {
    let proxy = s.proxy_addr();
    Ok(
        rukong_executor::serve::connect_proxy(
            &proxy,
            s.token.clone(),
            s.proxy.share_host,
            patience,
        )
        .await?,
    )
}

const PATIENCE: Duration = Duration::from_secs(30);

/// `rukong engine`: the HTTP API over Redis, until a shutdown signal.
pub async fn run_engine(s: Settings) -> Result<(), BoxError> {
    let store = Arc::new(connect_store(&s, PATIENCE).await?);
    let proxy = Arc::new(connect_proxy(&s, PATIENCE).await?);
    let config = EngineConfig {
        limits: Limits {
            max_tasks: s.engine.max_tasks,
            ..Limits::default()
        },
        job: JobConfig {
            inline_limit: s.engine.inline_limit,
            proxy_fanout: s.engine.proxy_fanout,
            ..JobConfig::default()
        },
        gpu_available: false,
        warmup: s.engine.warmup,
        stall: s.stall(),
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::with_live_executors(store, proxy, config));
    let svc = JobService::new(
        engine,
        ServiceConfig {
            retention: Duration::from_secs(s.engine.retention_s),
            ..ServiceConfig::default()
        },
    );
    let recovered = svc.recover().await?;
    let listener = tokio::net::TcpListener::bind(&s.engine.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", s.engine.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, recovered, auth = s.token.is_some(), "engine listening");
    eprintln!(
        "rukong engine: listening on http://{addr} (advertised as {}); following {recovered} stored jobs",
        s.engine_url()
    );
    let http = HttpConfig {
        token: s.token.clone(),
        max_body: s.engine.max_body,
    };
    serve_http(listener, router(svc, http), shutdown_signal()).await?;
    eprintln!("rukong engine: stopped");
    Ok(())
}

/// `rukong kvproxy`: the KV-store proxy over Redis, until a shutdown signal.
pub async fn run_proxy(s: Settings) -> Result<(), BoxError> {
    let store = Arc::new(connect_store(&s, PATIENCE).await?);
    let listener = tokio::net::TcpListener::bind(&s.proxy.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", s.proxy.listen))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "rukong kvproxy: listening on {addr} (advertised as {}), objects in {}",
        s.proxy_addr(),
        s.proxy.objects
    );
    let config = ServerConfig {
        token: s.token.clone(),
        max_object: s.proxy.max_object,
        objects: match s.proxy.objects.as_str() {
            "memory" => ObjectBackend::Memory,
            "store" => ObjectBackend::Store,
            _ => ObjectBackend::Shared,
        },
        shared_dir: s.proxy.shared_dir.as_ref().map(std::path::PathBuf::from),
        ..ServerConfig::default()
    };
    serve_proxy(listener, store, config, shutdown_signal()).await?;
    eprintln!("rukong kvproxy: stopped");
    Ok(())
}

/// `rukong executor` (and an executor binary with its own functions): slot actors pulling
/// from Redis, until a shutdown signal. `crash_after_fan_in` is fault injection for tests
/// (see [`ExecutorConfig::crash_after_fan_in`]).
pub async fn run_executor(
    s: Settings,
    mut registry: Registry,
    crash_after_fan_in: Option<std::path::PathBuf>,
) -> Result<(), BoxError> {
    let mut config = serve_config(&s)?;
    config.executor.crash_after_fan_in = crash_after_fan_in;
    let id = config.executor.id.clone();
    let allow = rukong_executor::functions::builtins::process::AllowList::resolve(
        &s.executor.allow_process,
    )?;
    if !allow.is_empty() {
        eprintln!(
            "rukong executor {id}: process tasks may run {}",
            allow.names()
        );
    }
    registry.allow_process(allow);
    rukong_executor::serve(registry, config, shutdown_signal()).await?;
    Ok(())
}

/// An executor process's configuration from the settings: the store, the proxy, the
/// executor (slots, id, timeouts) and its GPU.
pub fn serve_config(s: &Settings) -> Result<ServeConfig, BoxError> {
    let slots = if s.executor.slots == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        s.executor.slots
    };
    let host = hostname();
    let mut config = ExecutorConfig::new(slots);
    if s.executor.threads > 0 {
        config.threads = s.executor.threads.min(slots);
    }
    config.id = ExecutorId::new(if s.executor.id.is_empty() {
        format!("{host}-{}", std::process::id())
    } else {
        s.executor.id.clone()
    });
    config.visibility_timeout = Some(Settings::ms(s.executor.visibility_timeout_ms));
    config.heartbeat_every = Settings::ms(s.executor.heartbeat_ms);
    config.max_deliveries = s.executor.max_deliveries;
    config.host = format!("{host} pid {}", std::process::id());
    Ok(ServeConfig {
        redis: redis_config(s),
        proxy: s.proxy_addr(),
        share_host_objects: s.proxy.share_host,
        token: s.token.clone(),
        executor: config,
        gpu: s.gpu.config()?,
        patience: PATIENCE,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

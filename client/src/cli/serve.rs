//! The long-running cluster processes: `rukong engine`, `rukong kvproxy`,
//! `rukong executor`. Each connects to Redis, serves until SIGINT or SIGTERM, then shuts
//! down cleanly.

use super::settings::Settings;
use rukong_core::proxy::remote::{RemoteConfig, RemoteProxy};
use rukong_core::store::redis::{RedisConfig, RedisStore};
use rukong_core::{ExecutorId, JobConfig, Limits};
use rukong_engine::http::{HttpConfig, router, serve as serve_http};
use rukong_engine::{Engine, EngineConfig, JobService, ServiceConfig};
use rukong_executor::{ExecutorConfig, Registry};
use rukong_kvstore_proxy::{ObjectBackend, ServerConfig, serve as serve_proxy};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    let t0 = Instant::now();
    loop {
        match RedisStore::connect(redis_config(s)).await {
            Ok(st) => return Ok(st),
            Err(e) if t0.elapsed() < patience => {
                tracing::warn!(error = %e, url = %s.redis.url, "Redis not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("cannot reach Redis at {}: {e}", s.redis.url).into()),
        }
    }
}

/// Connects to the proxy, retrying for up to `patience`.
pub async fn connect_proxy(s: &Settings, patience: Duration) -> Result<RemoteProxy, BoxError> {
    let t0 = Instant::now();
    let addr = s.proxy_addr();
    loop {
        match RemoteProxy::connect(addr.clone(), s.token.clone(), RemoteConfig::default()).await {
            Ok(p) => return Ok(p),
            Err(e) if e.is_retryable() && t0.elapsed() < patience => {
                tracing::warn!(error = %e, %addr, "proxy not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(format!("cannot reach the proxy at {addr}: {e}").into()),
        }
    }
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
        objects: if s.proxy.objects == "memory" {
            ObjectBackend::Memory
        } else {
            ObjectBackend::Store
        },
        ..ServerConfig::default()
    };
    serve_proxy(listener, store, config, shutdown_signal()).await?;
    eprintln!("rukong kvproxy: stopped");
    Ok(())
}

/// `rukong executor`: slot actors pulling from Redis, until a shutdown signal.
/// Runs an executor until a shutdown signal. `crash_after_fan_in` is fault injection for
/// tests (see [`ExecutorConfig::crash_after_fan_in`]).
pub async fn run_executor(
    s: Settings,
    mut registry: Registry,
    crash_after_fan_in: Option<std::path::PathBuf>,
) -> Result<(), BoxError> {
    let store = Arc::new(connect_store(&s, PATIENCE).await?);
    let proxy = Arc::new(connect_proxy(&s, PATIENCE).await?);
    let slots = if s.executor.slots == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        s.executor.slots
    };
    let host = hostname();
    let mut config = ExecutorConfig::new(slots);
    config.id = ExecutorId::new(if s.executor.id.is_empty() {
        format!("{host}-{}", std::process::id())
    } else {
        s.executor.id.clone()
    });
    config.visibility_timeout = Some(Settings::ms(s.executor.visibility_timeout_ms));
    config.heartbeat_every = Settings::ms(s.executor.heartbeat_ms);
    config.max_deliveries = s.executor.max_deliveries;
    config.crash_after_fan_in = crash_after_fan_in;
    config.host = format!("{host} pid {}", std::process::id());
    let id = config.id.clone();
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
    let registry = Arc::new(registry);
    // With a GPU: a second executor in this process, on the `gpu` queue, one set of
    // slots (lanes) per device.
    let gpu = match s.gpu.config()? {
        Some(g) => {
            let mut c = config.clone();
            c.id = ExecutorId::new(format!("{id}-gpu"));
            c.class = rukong_core::ExecClass::Gpu;
            let labels: Vec<String> = g.devices.iter().map(|d| d.label()).collect();
            c.gpu = g;
            let h = rukong_executor::start(c, store.clone(), proxy.clone(), registry.clone())?;
            eprintln!(
                "rukong executor {id}-gpu: {} slots on {}",
                h.config().slots,
                labels.join(", ")
            );
            Some(h)
        }
        None => None,
    };
    let handle = rukong_executor::start(config, store, proxy, registry)?;
    eprintln!(
        "rukong executor {id}: {slots} slots, pulling from {}",
        s.redis.url
    );
    shutdown_signal().await;
    eprintln!("rukong executor {id}: stopping");
    // Both executors share one store client: stop them together.
    tokio::task::spawn_blocking(move || {
        rukong_executor::stop_all(std::iter::once(handle).chain(gpu).collect())
    })
    .await?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

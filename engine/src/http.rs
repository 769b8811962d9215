//! The engine's HTTP API (axum).
//!
//! | route | what |
//! |---|---|
//! | `POST /jobs` | submit a DAG (JSON, YAML, MessagePack or the compact form by `Content-Type`; the last two decoded as they arrive, [`crate::upload`]); `201 {"job": id}` |
//! | `GET /jobs/{id}` | state, progress, failure, stats |
//! | `GET /jobs/{id}/outputs` | outputs, in the CLI's JSON form, and the skipped ones |
//! | `GET /jobs/{id}/trace` | task spans of a job submitted with `?trace=1` (timelines) |
//! | `DELETE /jobs/{id}` | cancel; the job's keys are freed |
//! | `GET /healthz` | store reachable, live executors and slots |
//! | `GET /metrics` | Prometheus text |
//! | `GET /ui` | the live dashboard, its assets and JSON views ([`crate::ui`]) |
//!
//! `/jobs` routes need `Authorization: Bearer <token>` unless the engine runs insecure.
//! Every error is a JSON body `{"error": message, "kind": kind}` with a 4xx or 5xx status.

use crate::engine::SubmitError;
use crate::service::{JobService, ServiceError};
use crate::upload::{BodyKind, UploadError, collect, decode_streamed, media_type};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rukong_core::dag::{DagFormat, DagSpec};
use rukong_core::messages::JobState;
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;
use rukong_core::{DagError, JobId};
use serde_json::json;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// The shared token clients must present; `None` only when running insecure.
    pub token: Option<String>,
    /// Largest request body, in bytes.
    pub max_body: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            token: None,
            max_body: 64 << 20,
        }
    }
}

/// A JSON error response.
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "kind": self.kind});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match &e {
            ServiceError::UnknownJob(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_job", e.to_string())
            }
            ServiceError::NotSucceeded { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_succeeded", e.to_string())
            }
            ServiceError::Store(_) | ServiceError::Engine(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            ),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match &e {
            SubmitError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_dag", e.to_string())
            }
            SubmitError::NoExecutors => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_executors",
                e.to_string(),
            ),
            SubmitError::Store(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            ),
        }
    }
}

type Svc<S, P> = Arc<JobService<S, P>>;

/// The API's routes over `svc`.
pub fn router<S: Store, P: Proxy>(svc: Svc<S, P>, config: HttpConfig) -> Router {
    let token = Arc::new(config.token.clone());
    let max_body = config.max_body;
    let jobs = Router::new()
        .route(
            "/jobs",
            axum::routing::post(move |state, query, headers, body| {
                submit::<S, P>(state, query, headers, max_body, body)
            }),
        )
        .route("/jobs/{id}", get(status::<S, P>).delete(cancel::<S, P>))
        .route("/jobs/{id}/outputs", get(outputs::<S, P>))
        .route("/jobs/{id}/trace", get(trace::<S, P>))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let token = token.clone();
            async move { authorize(token.as_deref(), req, next).await }
        }));
    Router::new()
        .merge(jobs)
        .route("/healthz", get(healthz::<S, P>))
        .route("/metrics", get(metrics::<S, P>))
        .merge(crate::ui::router::<S, P>(config.token.clone()))
        .layer(DefaultBodyLimit::max(config.max_body))
        .with_state(svc)
}

/// Serves `router` on an already-bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn authorize(token: Option<&str>, req: Request, next: Next) -> Response {
    if let Some(want) = token {
        let got = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match got {
            None => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing token: send `Authorization: Bearer <token>`",
                )
                .into_response();
            }
            Some(t) if !constant_time_eq(t.as_bytes(), want.as_bytes()) => {
                return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "wrong token")
                    .into_response();
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn parse_job_id(id: &str) -> Result<JobId, ApiError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_job_id",
            format!("not a job id: {id:?}"),
        ));
    }
    Ok(JobId::new(id))
}

/// Parses a DAG body by its content type (JSON, YAML, MessagePack, the compact form), or
/// sniffs JSON/YAML.
pub fn parse_dag(headers: &HeaderMap, body: &[u8]) -> Result<DagSpec, DagError> {
    let ctype = media_type(content_type(headers));
    match BodyKind::of(&ctype) {
        BodyKind::Compact => return rukong_core::dag::CompactDag::decode(body),
        BodyKind::Msgpack => return DagSpec::from_msgpack(body),
        BodyKind::Text => {}
    }
    let text = std::str::from_utf8(body).map_err(|e| DagError::Parse {
        format: "text",
        line: 0,
        column: 0,
        message: format!("the body is not UTF-8: {e}"),
    })?;
    let format = match ctype.as_str() {
        "application/json" => DagFormat::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => DagFormat::Yaml,
        _ => DagFormat::sniff(text),
    };
    DagSpec::parse(text, format)
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `POST /jobs` query: `?trace=1` records a span per task (`GET /jobs/{id}/trace`).
#[derive(serde::Deserialize, Default)]
struct SubmitQuery {
    #[serde(default)]
    trace: Option<String>,
}

async fn submit<S: Store, P: Proxy>(
    State(svc): State<Svc<S, P>>,
    axum::extract::Query(q): axum::extract::Query<SubmitQuery>,
    headers: HeaderMap,
    max_body: usize,
    body: Body,
) -> Result<Response, ApiError> {
    let invalid = |e: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_dag", e);
    let too_large = |max: usize| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over the limit of {max} bytes (engine.max_body)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(too_large(max_body));
    }
    let refused = |e: UploadError| match e {
        UploadError::TooLarge { max } => too_large(max),
        e => invalid(e.to_string()),
    };
    let spec = match BodyKind::of(&media_type(content_type(&headers))) {
        BodyKind::Text => {
            let bytes = collect(body.into_data_stream(), max_body)
                .await
                .map_err(refused)?;
            parse_dag(&headers, &bytes).map_err(|e| invalid(e.to_string()))?
        }
        kind => decode_streamed(kind, body.into_data_stream(), max_body)
            .await
            .map_err(refused)?,
    };
    let trace = matches!(q.trace.as_deref(), Some("1" | "true" | "yes"));
    let job = svc.submit_traced(spec, trace).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"job": job.as_str()})),
    )
        .into_response())
}

pub fn state_name(s: &JobState) -> &'static str {
    match s {
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed { .. } => "failed",
        JobState::Cancelled => "cancelled",
    }
}

pub(crate) async fn status<S: Store, P: Proxy>(
    State(svc): State<Svc<S, P>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job_id(&id)?;
    let st = svc.status(&job).await?;
    if let Some(e) = &st.store_error {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("job {job}: {e}"),
        ));
    }
    let s = &st.stats;
    let mut body = json!({
        "job": st.job.as_str(),
        "name": st.name,
        "state": state_name(&st.state),
        "done": st.done,
        "total": st.total,
        "elapsed_ms": st.elapsed.as_secs_f64() * 1e3,
        "stats": {
            "tasks": s.tasks, "cold_starts": s.cold_starts, "init_us": s.init_us,
            "objects_put": s.objects_put, "object_bytes": s.object_bytes,
            "invocations_sent": s.invocations_sent, "proxy_fanouts": s.proxy_fanouts,
            "warm_hits": s.warm_hits, "bundled": s.bundled, "skipped": s.skipped,
            "hints_issued": s.hints_issued, "hints_warmed": s.hints_warmed,
            "hints_noop": s.hints_noop, "hints_used": s.hints_used,
            "hints_wasted": s.hints_wasted, "hints_cancelled": s.hints_cancelled,
            "replans": s.replans, "hint_init_us": s.hint_init_us,
            "warm_idle_us": s.warm_idle_us, "redrives": s.redrives,
            "duplicates": s.duplicates, "kept_local": s.kept_local,
        },
    });
    if let JobState::Failed { task, error } = &st.state {
        body["error"] = json!({"task": task.as_str(), "message": error});
    }
    Ok(axum::Json(body).into_response())
}

async fn outputs<S: Store, P: Proxy>(
    State(svc): State<Svc<S, P>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job_id(&id)?;
    let outs = svc.outputs(&job).await?;
    let map: serde_json::Map<String, serde_json::Value> = outs
        .iter()
        .filter_map(|(id, v)| Some((id.to_string(), v.as_ref()?.to_output_json())))
        .collect();
    // Skipped outputs (`docs/conditional-branches.md`) have no value: they are listed apart, as in
    // the CLI.
    let skipped: Vec<&str> = outs
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(id, _)| id.as_str())
        .collect();
    Ok(
        axum::Json(json!({"job": job.as_str(), "outputs": map, "skipped": skipped}))
            .into_response(),
    )
}

async fn trace<S: Store, P: Proxy>(
    State(svc): State<Svc<S, P>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job_id(&id)?;
    let spans = svc.trace(&job).await?;
    Ok(axum::Json(json!({"job": job.as_str(), "spans": spans})).into_response())
}

async fn cancel<S: Store, P: Proxy>(
    State(svc): State<Svc<S, P>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job_id(&id)?;
    svc.cancel(&job).await?;
    Ok(axum::Json(json!({"job": job.as_str(), "state": "cancelled"})).into_response())
}

async fn healthz<S: Store, P: Proxy>(State(svc): State<Svc<S, P>>) -> Response {
    match svc.engine().store().executors().await {
        Ok(execs) => {
            let slots: u32 = execs.iter().map(|e| e.slots).sum();
            let gpus: Vec<_> = execs
                .iter()
                .filter(|e| e.class == rukong_core::ExecClass::Gpu)
                .flat_map(|e| {
                    e.devices
                        .iter()
                        .map(|d| json!({"executor": e.id.as_str(), "device": d}))
                })
                .collect();
            axum::Json(
                json!({"status": "ok", "executors": execs.len(), "slots": slots, "gpus": gpus}),
            )
            .into_response()
        }
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
        .into_response(),
    }
}

async fn metrics<S: Store, P: Proxy>(State(svc): State<Svc<S, P>>) -> Response {
    let c = &svc.counters;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    metric(
        "rukong_jobs_submitted_total",
        "counter",
        "Jobs accepted.",
        &[("", load(&c.submitted))],
    );
    metric(
        "rukong_jobs_rejected_total",
        "counter",
        "Submissions refused (invalid DAG, no executors, store down).",
        &[("", load(&c.rejected))],
    );
    metric(
        "rukong_jobs_finished_total",
        "counter",
        "Jobs that ended, by final state.",
        &[
            ("{state=\"succeeded\"}", load(&c.succeeded)),
            ("{state=\"failed\"}", load(&c.failed)),
            ("{state=\"cancelled\"}", load(&c.cancelled)),
        ],
    );
    metric(
        "rukong_jobs_running",
        "gauge",
        "Jobs this engine follows that have not ended.",
        &[("", svc.running() as u64)],
    );
    metric(
        "rukong_tasks_completed_total",
        "counter",
        "Tasks completed in finished jobs.",
        &[("", load(&c.tasks))],
    );
    metric(
        "rukong_cold_starts_total",
        "counter",
        "Function inits on the critical path in finished jobs.",
        &[("", load(&c.cold_starts))],
    );
    metric(
        "rukong_warm_hits_total",
        "counter",
        "Calls on device slots that found their warm state resident, in finished jobs.",
        &[("", load(&c.warm_hits))],
    );
    metric(
        "rukong_cold_start_delay_microseconds_total",
        "counter",
        "C_d: time tasks waited for an init (their own cold starts), in finished jobs.",
        &[("", load(&c.init_us))],
    );
    metric(
        "rukong_warmup_hints_total",
        "counter",
        "Warm-up hints in finished jobs: issued by the engine, used by a task, or dropped unused.",
        &[
            ("{outcome=\"issued\"}", load(&c.hints_issued)),
            ("{outcome=\"used\"}", load(&c.hints_used)),
            ("{outcome=\"wasted\"}", load(&c.hints_wasted)),
        ],
    );
    metric(
        "rukong_warm_idle_microseconds_total",
        "counter",
        "C_r: warm time hinted states were held before first use or until dropped, in finished jobs.",
        &[("", load(&c.warm_idle_us))],
    );
    metric(
        "rukong_bundled_tasks_total",
        "counter",
        "GPU tasks that ran inside a bundle (one call_batch), in finished jobs.",
        &[("", load(&c.bundled))],
    );
    let live = svc.engine().store().executors().await;
    let (execs, slots, up) = match &live {
        Ok(e) => (
            e.len() as u64,
            e.iter().map(|x| u64::from(x.slots)).sum(),
            1,
        ),
        Err(_) => (0, 0, 0),
    };
    // Per device of the live GPU executors: warm-cache and bundling counters.
    let devices: Vec<(String, &rukong_core::store::DeviceStats)> = live
        .as_ref()
        .map(|e| {
            e.iter()
                .flat_map(|x| {
                    x.device_stats.iter().map(move |d| {
                        let label = format!("{{executor=\"{}\",device=\"{}\"}}", x.id, d.device)
                            .replace('\n', " ");
                        (label, d)
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    type Pick = fn(&rukong_core::store::DeviceStats) -> u64;
    let gpu_metrics: [(&str, &str, &str, Pick); 6] = [
        (
            "rukong_gpu_cache_hits_total",
            "counter",
            "Calls that found their warm state resident on the device.",
            |d| d.hits,
        ),
        (
            "rukong_gpu_cache_misses_total",
            "counter",
            "Cold starts (init) on the device.",
            |d| d.misses,
        ),
        (
            "rukong_gpu_cache_evictions_total",
            "counter",
            "Warm states evicted under the device's memory budget.",
            |d| d.evictions,
        ),
        (
            "rukong_gpu_cold_start_microseconds_total",
            "counter",
            "Time spent in init on the device, in µs.",
            |d| d.cold_start_us,
        ),
        (
            "rukong_gpu_launches_total",
            "counter",
            "call_batch launches (bundles) on the device.",
            |d| d.launches,
        ),
        (
            "rukong_gpu_bundled_calls_total",
            "counter",
            "Calls served by those launches.",
            |d| d.bundled_calls,
        ),
    ];
    if !devices.is_empty() {
        for (name, kind, help, pick) in gpu_metrics {
            let rows: Vec<(&str, u64)> =
                devices.iter().map(|(l, d)| (l.as_str(), pick(d))).collect();
            metric(name, kind, help, &rows);
        }
    }
    metric(
        "rukong_executors",
        "gauge",
        "Executors with a live registration.",
        &[("", execs)],
    );
    metric(
        "rukong_executor_slots",
        "gauge",
        "Slots over the live executors.",
        &[("", slots)],
    );
    metric(
        "rukong_store_up",
        "gauge",
        "Whether the store answered this scrape.",
        &[("", up)],
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

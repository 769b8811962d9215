//! The JSON the dashboard reads, under `/ui/api/` (the job's own status is the API's
//! `GET /jobs/{id}` answer, served at `/ui/api/jobs/{id}` as well):
//!
//! | route | answer |
//! |---|---|
//! | `GET /ui/api/jobs` | `{"jobs": [{"job", "name", "state", "done", "total", "elapsed_ms"}]}`: the jobs in the store (at most [`MAX_JOBS`]), running first, then the most recent |
//! | `GET /ui/api/jobs/{id}/spans?from=N&limit=M` | spans `N..N+M` of a traced job: `{"job", "from", "next", "total", "spans": [{"task", "fn", "slot", "start_us", "dur_us", "init_us", "put"?, "bytes"?}]}` |
//! | `GET /ui/api/jobs/{id}/dag` | `{"job", "name", "tasks", "edges", "sources", "sinks", "traced", "functions": [{"fn", "count"}], "picture_limit", "graph"}`; `graph` is `{"nodes": [{"id", "fn", "gpu", "output"}], "edges": [[from, to]]}` (positions in `nodes`) for DAGs of at most `picture_limit` tasks, else null |
//! | `GET /ui/api/executors` | `{"executors": [ExecutorInfo]}`: the live registrations, with each GPU executor's `device_stats` |

use crate::http::{ApiError, parse_job_id};
use crate::service::{JobService, ServiceError};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use rukong_core::error::StoreError;
use rukong_core::messages::JobState;
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;
use serde_json::{Value as J, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The most jobs `GET /ui/api/jobs` lists.
pub const MAX_JOBS: usize = 500;
/// The largest DAG the page draws.
pub const PICTURE_LIMIT: usize = 150;
/// Spans per `spans` answer, by default and at most.
const SPANS_DEFAULT: usize = 5_000;
const SPANS_MAX: usize = 20_000;

type Svc<S, P> = Arc<JobService<S, P>>;

fn store_error(e: StoreError) -> ApiError {
    ApiError::from(ServiceError::from(e))
}

pub async fn jobs<S: Store, P: Proxy>(State(svc): State<Svc<S, P>>) -> Result<Response, ApiError> {
    let ids = svc
        .engine()
        .store()
        .list_jobs()
        .await
        .map_err(store_error)?;
    let mut rows = Vec::new();
    for id in ids.into_iter().take(MAX_JOBS) {
        match svc.status(&id).await {
            Ok(st) => rows.push(st),
            // Freed between the listing and the look-up.
            Err(ServiceError::UnknownJob(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Running jobs first; then the ones that ended most recently, by their age as the
    // engine knows it (shortest first), then by id for a stable order.
    rows.sort_by(|a, b| {
        let running = |s: &JobState| !s.is_finished();
        running(&b.state)
            .cmp(&running(&a.state))
            .then(a.elapsed.cmp(&b.elapsed))
            .then_with(|| a.job.as_str().cmp(b.job.as_str()))
    });
    let jobs: Vec<J> = rows
        .iter()
        .map(|st| {
            json!({
                "job": st.job.as_str(),
                "name": st.name,
                "state": crate::http::state_name(&st.state),
                "done": st.done,
                "total": st.total,
                "elapsed_ms": st.elapsed.as_secs_f64() * 1e3,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "jobs": jobs })).into_response())
}

#[derive(serde::Deserialize, Default)]
pub struct SpansQuery {
    #[serde(default)]
    from: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

pub async fn spans<S: Store, P: Proxy>(
    State(svc): State<Svc<S, P>>,
    Path(id): Path<String>,
    Query(q): Query<SpansQuery>,
) -> Result<Response, ApiError> {
    let job = parse_job_id(&id)?;
    let all = svc.trace(&job).await?;
    let total = all.len();
    let from = q.from.unwrap_or(0).min(total);
    let limit = q.limit.unwrap_or(SPANS_DEFAULT).clamp(1, SPANS_MAX);
    let next = from.saturating_add(limit).min(total);
    let spans: Vec<J> = all[from..next]
        .iter()
        .map(|s| {
            let mut o = json!({
                "task": s.task.as_str(), "fn": s.func, "slot": s.slot,
                "start_us": s.start_us, "dur_us": s.dur_us, "init_us": s.init_us,
            });
            if let Some(t) = s.transfer {
                o["put"] = json!(t.put);
                o["bytes"] = json!(t.bytes);
            }
            o
        })
        .collect();
    Ok(axum::Json(json!({
        "job": job.as_str(), "from": from, "next": next, "total": total, "spans": spans,
    }))
    .into_response())
}

pub async fn dag<S: Store, P: Proxy>(
    State(svc): State<Svc<S, P>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = parse_job_id(&id)?;
    let plan = match svc.engine().store().get_job(&job).await {
        Ok(p) => p,
        Err(StoreError::UnknownJob(_)) => return Err(ServiceError::UnknownJob(job).into()),
        Err(e) => return Err(store_error(e)),
    };
    let dag = &plan.dag;
    let mut by_fn: BTreeMap<&str, u64> = BTreeMap::new();
    for t in dag.tasks() {
        *by_fn.entry(dag.func_name(t)).or_default() += 1;
    }
    let mut functions: Vec<J> = by_fn
        .iter()
        .map(|(f, n)| json!({"fn": f, "count": n}))
        .collect();
    functions.sort_by(|a, b| b["count"].as_u64().cmp(&a["count"].as_u64()));
    let graph = (dag.len() <= PICTURE_LIMIT).then(|| {
        let nodes: Vec<J> = dag
            .tasks()
            .map(|t| {
                let gpu = dag
                    .extras(t)
                    .and_then(|e| e.resources.as_ref())
                    .is_some_and(|r| r.gpu > 0);
                json!({
                    "id": dag.id(t).as_str(), "fn": dag.func_name(t),
                    "gpu": gpu, "output": dag.is_output(t),
                })
            })
            .collect();
        let mut edges = Vec::new();
        for t in dag.tasks() {
            let mut deps: Vec<usize> = dag.deps(t).iter().map(|d| d.get()).collect();
            // A dependency listed twice is one edge in the picture.
            deps.sort_unstable();
            deps.dedup();
            edges.extend(deps.into_iter().map(|d| json!([d, t.get()])));
        }
        json!({"nodes": nodes, "edges": edges})
    });
    Ok(axum::Json(json!({
        "job": job.as_str(),
        "name": dag.name(),
        "tasks": dag.len(),
        "edges": dag.edge_count(),
        "sources": dag.sources().len(),
        "sinks": dag.sink_count(),
        "traced": plan.config.trace,
        "functions": functions,
        "picture_limit": PICTURE_LIMIT,
        "graph": graph,
    }))
    .into_response())
}

pub async fn executors<S: Store, P: Proxy>(
    State(svc): State<Svc<S, P>>,
) -> Result<Response, ApiError> {
    let mut execs = svc
        .engine()
        .store()
        .executors()
        .await
        .map_err(store_error)?;
    execs.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    Ok(axum::Json(json!({ "executors": execs })).into_response())
}

//! The live dashboard, served by the engine at `GET /ui`: the job list, and for one job
//! its progress by state, a task Gantt that grows while it runs (for traced jobs), the DAG
//! picture (small DAGs), cold starts and warm-up hints; and the executors and their GPUs.
//!
//! The page is plain HTML and JavaScript with no build step (`ui/static/`). It draws
//! with two vendored libraries (`ui/vendor/`: Chart.js and dagre), compiled into the
//! binary, so it needs no network beyond the engine. It polls small JSON views
//! ([`api`]) about once a second.
//!
//! | route | what |
//! |---|---|
//! | `GET /ui` | the page; `?token=…` sets the dashboard cookie and redirects ([`auth`]); `?job=ID` selects a job |
//! | `GET /ui/assets/{name}` | the page's script, style, libraries and their licenses ([`assets`]) |
//! | `GET /ui/api/…` | the JSON the page reads ([`api`]) |
//!
//! Every route needs the engine's token (the cookie, or `Authorization: Bearer`) unless
//! the engine runs insecure.

pub mod api;
pub mod assets;
pub mod auth;

#[cfg(test)]
mod tests;

use crate::service::JobService;
use auth::{UiAuth, Verdict};
use axum::Router;
use axum::extract::{Path, Query, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

type Svc<S, P> = Arc<JobService<S, P>>;

/// The dashboard's routes; `token` is the engine's (`None` when it runs insecure).
pub fn router<S: Store, P: Proxy>(token: Option<String>) -> Router<Svc<S, P>> {
    let auth = Arc::new(UiAuth::new(token));
    let guard = auth.clone();
    let guarded = Router::new()
        .route("/ui/assets/{name}", get(asset))
        .route("/ui/api/jobs", get(api::jobs::<S, P>))
        .route("/ui/api/jobs/{id}", get(crate::http::status::<S, P>))
        .route("/ui/api/jobs/{id}/spans", get(api::spans::<S, P>))
        .route("/ui/api/jobs/{id}/dag", get(api::dag::<S, P>))
        .route("/ui/api/executors", get(api::executors::<S, P>))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let auth = guard.clone();
            async move { authorize(&auth, req, next).await }
        }));
    Router::new()
        .route(
            "/ui",
            get(
                move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
                    let auth = auth.clone();
                    async move { page(&auth, &headers, &q) }
                },
            ),
        )
        .route("/ui/", get(|| async { see_other("/ui", None) }))
        .merge(guarded)
}

async fn authorize(auth: &UiAuth, req: Request, next: Next) -> Response {
    match auth.check(req.headers()) {
        Verdict::Allowed => next.run(req).await,
        Verdict::Missing => unauthorized_json(
            "missing token: open the dashboard at /ui?token=<token>, or send `Authorization: Bearer <token>`",
        ),
        Verdict::Wrong => unauthorized_json("wrong token"),
    }
}

fn unauthorized_json(message: &str) -> Response {
    let body = json!({"error": message, "kind": "unauthorized"});
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

/// `GET /ui`: a token in the query sets the cookie and redirects to the same page without
/// it; otherwise the page, to a request that holds the cookie or the bearer token.
fn page(auth: &UiAuth, headers: &HeaderMap, query: &HashMap<String, String>) -> Response {
    // Only a well-formed job id survives the redirect: the query is echoed into a header.
    let job = query
        .get("job")
        .filter(|j| crate::http::parse_job_id(j).is_ok());
    if let Some(t) = query.get("token") {
        if !auth.token_matches(t) {
            return unauthorized_page("The token in the address is wrong.");
        }
        let location = match job {
            Some(j) => format!("/ui?job={j}"),
            None => "/ui".to_owned(),
        };
        return see_other(&location, auth.set_cookie());
    }
    match auth.check(headers) {
        Verdict::Allowed => {}
        Verdict::Missing => {
            return unauthorized_page(
                "Open the dashboard with the engine's token: /ui?token=<token> (the RUKONG_TOKEN the engine was started with).",
            );
        }
        Verdict::Wrong => {
            return unauthorized_page(
                "The dashboard's cookie or bearer token is wrong (did the engine's token change?). Open /ui?token=<token> again.",
            );
        }
    }
    let mut h = security_headers();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    (StatusCode::OK, h, assets::INDEX_HTML).into_response()
}

fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut h = security_headers();
    match HeaderValue::from_str(location) {
        Ok(v) => h.insert(header::LOCATION, v),
        Err(_) => h.insert(header::LOCATION, HeaderValue::from_static("/ui")),
    };
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, c);
    }
    (StatusCode::SEE_OTHER, h).into_response()
}

fn unauthorized_page(message: &str) -> Response {
    let mut h = security_headers();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>rukong: unauthorized</title></head>\
         <body><h1>401: unauthorized</h1><p>{}</p></body></html>",
        escape_html(message)
    );
    (StatusCode::UNAUTHORIZED, h, body).into_response()
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Headers for the page and its redirects: never cached, never framed, no referrer (the
/// first address carries the token), and scripts only from the engine itself.
fn security_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'none'",
        ),
    );
    h
}

async fn asset(headers: HeaderMap, Path(name): Path<String>) -> Response {
    match assets::find(&name) {
        Some(a) => assets::respond(a, &headers),
        None => {
            let body =
                json!({"error": format!("no dashboard asset {name:?}"), "kind": "not_found"});
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}

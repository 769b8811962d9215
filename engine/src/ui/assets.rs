//! The dashboard's files, compiled into the engine: the page, its script and style, and
//! the vendored libraries with their licenses (`vendor/README.md` says where each comes
//! from). Nothing is fetched from anywhere else, so the page works offline.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The page itself (served at `/ui`).
pub const INDEX_HTML: &str = include_str!("static/index.html");

/// One file under `/ui/assets/`.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file under `/ui/assets/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("static/dashboard.js"),
    },
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("static/dashboard.css"),
    },
    Asset {
        name: "chart.umd.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("vendor/chart.umd.min.js"),
    },
    Asset {
        name: "dagre.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("vendor/dagre.min.js"),
    },
    Asset {
        name: "chart.js.LICENSE.md",
        content_type: "text/plain; charset=utf-8",
        body: include_str!("vendor/chart.js.LICENSE.md"),
    },
    Asset {
        name: "dagre.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_str!("vendor/dagre.LICENSE"),
    },
];

/// The asset called `name`.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// A strong entity tag per asset (a digest of its bytes), computed once.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body.as_bytes());
                let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    });
    tags.get(index).map(String::as_str).unwrap_or("\"\"")
}

/// The response for `asset`: `304` when the browser's copy (`If-None-Match`) is current.
pub fn respond(asset: &'static Asset, request: &HeaderMap) -> Response {
    let index = ASSETS
        .iter()
        .position(|a| std::ptr::eq(a, asset))
        .unwrap_or(0);
    let tag = etag(index);
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == tag);
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, HeaderValue::from_static(tag));
    // Behind the dashboard's cookie: private, and revalidated on every load (cheap with
    // the tag), so an upgraded engine never serves a stale script.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    (StatusCode::OK, headers, asset.body).into_response()
}

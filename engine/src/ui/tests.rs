//! The dashboard's routes over a real listener: the token-to-cookie handshake, the
//! assets, and the JSON views against an in-memory store.

use crate::http::{HttpConfig, router, serve};
use crate::{Engine, EngineConfig, JobService, ServiceConfig};
use bytes::Bytes;
use rukong_core::dag::DagSpec;
use rukong_core::messages::{Event, ObjectKey, Span, SpanKind, WalkStats};
use rukong_core::proxy::{FanOutReply, FanOutRequest, Proxy, ProxyError, ProxyResult};
use rukong_core::store::memory::MemoryStore;
use rukong_core::store::{EventLog, ExecutorInfo, MembershipStore};
use rukong_core::{ExecClass, ExecutorId, JobId, TaskIdx};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "ui-test-token";

/// The views never read objects: a proxy that has none.
struct NoProxy;

impl Proxy for NoProxy {
    async fn put_object(&self, _: &ObjectKey, _: Bytes) -> ProxyResult<()> {
        Err(ProxyError::Unavailable("no proxy in this test".into()))
    }
    async fn get_object(&self, _: &ObjectKey) -> ProxyResult<Option<Bytes>> {
        Ok(None)
    }
    async fn delete_object(&self, _: &ObjectKey) -> ProxyResult<()> {
        Ok(())
    }
    async fn discard_object(&self, _: &ObjectKey) -> ProxyResult<()> {
        Ok(())
    }
    async fn fan_out(&self, _: FanOutRequest) -> ProxyResult<FanOutReply> {
        Err(ProxyError::Unavailable("no proxy in this test".into()))
    }
}

type Svc = Arc<JobService<MemoryStore, NoProxy>>;

struct Server {
    addr: std::net::SocketAddr,
    svc: Svc,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(token: Option<&str>) -> Server {
    let store = Arc::new(MemoryStore::new());
    let functions = ["const", "identity", "add", "sleep"].map(String::from);
    let engine = Arc::new(Engine::new(
        store,
        Arc::new(NoProxy),
        EngineConfig::default(),
        functions,
    ));
    let svc = JobService::new(
        engine,
        ServiceConfig {
            poll: Duration::from_millis(20),
            ..ServiceConfig::default()
        },
    );
    let http = HttpConfig {
        token: token.map(String::from),
        ..HttpConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(svc.clone(), http);
    tokio::spawn(serve(listener, app, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        svc,
        _stop: tx,
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 GET with `headers`, on a fresh connection.
async fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("the engine answers within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// The `name=value` part of the reply's `Set-Cookie`.
fn cookie_of(r: &Reply) -> String {
    let c = r.header("set-cookie").expect("a Set-Cookie header");
    c.split(';').next().unwrap().trim().to_owned()
}

async fn cookie(addr: std::net::SocketAddr) -> String {
    cookie_of(&get(addr, &format!("/ui?token={TOKEN}"), &[]).await)
}

#[tokio::test]
async fn the_token_in_the_address_becomes_a_cookie_and_leaves_the_address() {
    let s = start(Some(TOKEN)).await;
    let bare = get(s.addr, "/ui", &[]).await;
    assert_eq!(bare.status, 401);
    assert!(
        bare.body.contains("/ui?token=&lt;token&gt;"),
        "{}",
        bare.body
    );
    assert_eq!(get(s.addr, "/ui?token=nope", &[]).await.status, 401);

    let r = get(s.addr, &format!("/ui?token={TOKEN}&job=jabc123"), &[]).await;
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/ui?job=jabc123"));
    let set = r.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(
        !set.contains(TOKEN),
        "the cookie holds a digest, not the token: {set}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    // A job id that is not one never reaches the Location header.
    let odd = get(s.addr, &format!("/ui?token={TOKEN}&job=a%0d%0aX:1"), &[]).await;
    assert_eq!(odd.header("location"), Some("/ui"));

    let c = cookie_of(&r);
    let page = get(s.addr, "/ui", &[("Cookie", &c)]).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.body.contains("/ui/assets/dashboard.js"));
    // Among other cookies, and through the bearer token.
    let mixed = format!("other=1; {c}; last=2");
    assert_eq!(get(s.addr, "/ui", &[("Cookie", &mixed)]).await.status, 200);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        get(s.addr, "/ui", &[("Authorization", &bearer)])
            .await
            .status,
        200
    );
    assert_eq!(
        get(s.addr, "/ui", &[("Cookie", "rukong_ui=v1-00")])
            .await
            .status,
        401
    );

    // The JSON views and assets take the cookie; a missing or wrong one is refused.
    assert_eq!(
        get(s.addr, "/ui/api/jobs", &[("Cookie", &c)]).await.status,
        200
    );
    let none = get(s.addr, "/ui/api/jobs", &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["kind"], "unauthorized");
    let wrong = get(s.addr, "/ui/api/executors", &[("Cookie", "rukong_ui=x")]).await;
    assert_eq!(
        (wrong.status, wrong.json()["error"].as_str()),
        (401, Some("wrong token"))
    );
    assert_eq!(
        get(s.addr, "/ui/assets/dashboard.js", &[]).await.status,
        401
    );
    // The cookie opens the dashboard only: the API still wants the bearer token.
    assert_eq!(
        get(s.addr, "/jobs/jabc", &[("Cookie", &c)]).await.status,
        401
    );
}

#[tokio::test]
async fn an_insecure_engine_opens_the_dashboard() {
    let s = start(None).await;
    assert_eq!(get(s.addr, "/ui", &[]).await.status, 200);
    assert_eq!(get(s.addr, "/ui/api/jobs", &[]).await.status, 200);
    let r = get(s.addr, "/ui?token=anything&job=j1", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui?job=j1"));
    assert!(r.header("set-cookie").is_none());
}

#[tokio::test]
async fn assets_are_served_with_tags_and_the_page_names_only_real_ones() {
    let s = start(Some(TOKEN)).await;
    let c = cookie(s.addr).await;
    for a in super::assets::ASSETS {
        let r = get(s.addr, &format!("/ui/assets/{}", a.name), &[("Cookie", &c)]).await;
        assert_eq!(r.status, 200, "{}", a.name);
        assert_eq!(r.header("content-type"), Some(a.content_type), "{}", a.name);
        assert_eq!(r.body.len(), a.body.len(), "{}", a.name);
        let tag = r.header("etag").expect("an ETag").to_owned();
        let again = get(
            s.addr,
            &format!("/ui/assets/{}", a.name),
            &[("Cookie", &c), ("If-None-Match", &tag)],
        )
        .await;
        assert_eq!(again.status, 304, "{}", a.name);
    }
    let missing = get(s.addr, "/ui/assets/nope.js", &[("Cookie", &c)]).await;
    assert_eq!(missing.status, 404);
    // Every asset the page and its footer name exists.
    let page = super::assets::INDEX_HTML;
    let named: Vec<&str> = page
        .split("/ui/assets/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert!(named.len() >= 5, "{named:?}");
    for n in named {
        assert!(super::assets::find(n).is_some(), "the page names {n}");
    }
}

fn diamond() -> DagSpec {
    DagSpec::from_yaml_str(
        "name: diamond\ntasks:\n  - {id: a, fn: const, args: [1]}\n  - {id: b, fn: identity, deps: [a]}\n  - {id: c, fn: identity, deps: [a]}\n  - {id: d, fn: add, deps: [b, c, b]}\n",
    )
    .unwrap()
}

fn wide(n: usize) -> DagSpec {
    let mut y = String::from("name: wide\ntasks:\n  - {id: s, fn: const, args: [1]}\n");
    for i in 0..n {
        y.push_str(&format!("  - {{id: t{i}, fn: identity, deps: [s]}}\n"));
    }
    DagSpec::from_yaml_str(&y).unwrap()
}

fn span(task: u32, start_us: u64, init_us: u64) -> Span {
    Span {
        task: TaskIdx(task),
        start_us,
        dur_us: 1_000,
        init_us,
        kind: SpanKind::Run,
        bytes: 0,
    }
}

#[tokio::test]
async fn the_json_views_describe_jobs_dags_spans_and_executors() {
    let s = start(Some(TOKEN)).await;
    let c = cookie(s.addr).await;
    let auth = [("Cookie", c.as_str())];
    let job = s.svc.submit_traced(diamond(), true).await.unwrap();
    let big = s.svc.submit(wide(200)).await.unwrap();

    let jobs = get(s.addr, "/ui/api/jobs", &auth).await.json();
    let rows = jobs["jobs"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{jobs}");
    let row = rows.iter().find(|r| r["job"] == job.as_str()).unwrap();
    assert_eq!(
        (row["name"].as_str(), row["state"].as_str()),
        (Some("diamond"), Some("running"))
    );
    assert_eq!(row["total"], 4);

    let dag = get(s.addr, &format!("/ui/api/jobs/{job}/dag"), &auth)
        .await
        .json();
    assert_eq!(
        (dag["tasks"].as_u64(), dag["traced"].as_bool()),
        (Some(4), Some(true))
    );
    let nodes = dag["graph"]["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert_eq!(nodes[3]["output"], true);
    // d lists b twice: one edge in the picture.
    let edges = dag["graph"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 4, "{edges:?}");
    assert!(edges.contains(&serde_json::json!([1, 3])));
    assert_eq!(
        dag["functions"][0],
        serde_json::json!({"fn": "identity", "count": 2})
    );
    let bigdag = get(s.addr, &format!("/ui/api/jobs/{big}/dag"), &auth)
        .await
        .json();
    assert_eq!(bigdag["tasks"], 201);
    assert!(bigdag["graph"].is_null(), "{bigdag}");
    assert_eq!(bigdag["traced"], false);

    // Spans and progress, as executors would report them.
    let store = s.svc.engine().store().clone();
    store
        .append_events(
            &job,
            vec![
                Event::Trace {
                    slot: "x/0".into(),
                    spans: vec![span(0, 10, 400), span(1, 2_000, 0), span(2, 3_000, 0)],
                },
                Event::Progress(WalkStats {
                    tasks: 3,
                    cold_starts: 1,
                    ..WalkStats::default()
                }),
            ],
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let first = loop {
        let r = get(s.addr, &format!("/ui/api/jobs/{job}/spans?limit=2"), &auth).await;
        let v = r.json();
        if v["total"] == 3 {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spans never arrived: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (first["from"].as_u64(), first["next"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(first["spans"][0]["task"], "a");
    assert_eq!(first["spans"][0]["fn"], "const");
    assert_eq!(first["spans"][0]["init_us"], 400);
    let rest = get(s.addr, &format!("/ui/api/jobs/{job}/spans?from=2"), &auth)
        .await
        .json();
    assert_eq!(rest["spans"].as_array().unwrap().len(), 1);
    assert_eq!(
        (rest["next"].as_u64(), rest["spans"][0]["task"].as_str()),
        (Some(3), Some("c"))
    );
    let past = get(s.addr, &format!("/ui/api/jobs/{job}/spans?from=99"), &auth)
        .await
        .json();
    assert_eq!(
        (
            past["from"].as_u64(),
            past["spans"].as_array().map(Vec::len)
        ),
        (Some(3), Some(0))
    );
    let st = get(s.addr, &format!("/ui/api/jobs/{job}"), &auth)
        .await
        .json();
    assert_eq!(
        (st["done"].as_u64(), st["stats"]["cold_starts"].as_u64()),
        (Some(3), Some(1))
    );

    // Executors, with their device counters.
    let info = ExecutorInfo {
        id: ExecutorId::new("gpu-1"),
        class: ExecClass::Gpu,
        slots: 4,
        functions: vec!["const".into()],
        devices: vec!["simulated:sim-gpu".into()],
        host: "h-1".into(),
        version: "0".into(),
        device_stats: vec![rukong_core::store::DeviceStats {
            device: "simulated:sim-gpu".into(),
            misses: 2,
            ..Default::default()
        }],
    };
    store
        .heartbeat(&info, Duration::from_secs(30))
        .await
        .unwrap();
    let ex = get(s.addr, "/ui/api/executors", &auth).await.json();
    assert_eq!(ex["executors"][0]["id"], "gpu-1");
    assert_eq!(ex["executors"][0]["class"], "gpu");
    assert_eq!(ex["executors"][0]["device_stats"][0]["misses"], 2);

    // Bad and unknown ids.
    assert_eq!(get(s.addr, "/ui/api/jobs/a:b/dag", &auth).await.status, 400);
    let unknown = JobId::new("jnone");
    assert_eq!(
        get(s.addr, &format!("/ui/api/jobs/{unknown}/dag"), &auth)
            .await
            .status,
        404
    );
    assert_eq!(
        get(s.addr, &format!("/ui/api/jobs/{unknown}/spans"), &auth)
            .await
            .status,
        404
    );
}

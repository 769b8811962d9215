//! The dashboard (`GET /ui`) in a real browser: headless Chromium against a real cluster
//! on loopback (a private `redis-server`, the proxy, the engine and two executors), while
//! a traced sleep fan-out runs. The page must show that job's progress moving between
//! two loads, its task stream growing, its DAG, the executors, and render a screenshot.
//!
//! Needs Chromium: `apt-get install -y --no-install-recommends chromium` (scripts/test.sh
//! installs it), or `CHROME_BIN=/path/to/chrome`. Without it the test fails, saying so.
//! `DASHBOARD_SCREENSHOT=out.png` keeps a copy of the screenshot.

mod common;

use common::cluster::{Cluster, Options, TOKEN};
use rukong_client::remote::submission_body;
use rukong_client::workloads::Workload;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const WIDTH: usize = 64;
const SLEEP_MS: u64 = 500;

/// The Chromium binary: `CHROME_BIN`, or the first of the usual names on `PATH`.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROME_BIN") {
        return PathBuf::from(p);
    }
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "this test drives the dashboard in headless Chromium, and none was found \
         (looked for {names:?} on PATH, and CHROME_BIN). Install it with \
         `apt-get install -y --no-install-recommends chromium` (scripts/test.sh does), \
         or set CHROME_BIN to a Chrome or Chromium binary"
    );
}

/// A fresh scratch directory for one test run.
fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rukong-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs headless Chromium on `url` with `extra` flags, each run with its own profile (so
/// no cookie survives from one load to the next: every load goes through `?token=`).
fn browse(scratch: &Path, run: usize, extra: &[&str], url: &str) -> Output {
    let profile = scratch.join(format!("profile-{run}"));
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless=new",
        // Tests run as root in containers, where Chromium's sandbox cannot start.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--hide-scrollbars",
        // Page timers run on virtual time, which waits for pending fetches: the page polls
        // a few times, then the DOM is taken.
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium().display()));
    common::cluster::finish_within(child, Duration::from_secs(60))
}

/// What one load of the page showed.
#[derive(Debug)]
struct Seen {
    state: String,
    done: u64,
    total: u64,
    spans: u64,
    dom: String,
}

/// The value of `attr="…"` on the element whose opening tag contains `marker`.
fn attr(dom: &str, marker: &str, attr: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].to_owned())
}

fn load(scratch: &Path, run: usize, url: &str) -> Seen {
    let out = browse(scratch, run, &["--dump-dom"], url);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("<html"),
        "chromium --dump-dom failed: {:?}\nstderr: {}\nstdout: {dom}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let num = |marker: &str, a: &str| -> u64 {
        attr(&dom, marker, a)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no numeric {a} on {marker} in the page:\n{dom}"))
    };
    let updates = num("<body", "data-updates");
    assert!(updates >= 1, "the page never refreshed:\n{dom}");
    // No fetch or script failed.
    assert!(
        attr(&dom, "id=\"errors\"", "hidden").is_some(),
        "the page shows errors:\n{dom}"
    );
    Seen {
        state: attr(&dom, "id=\"job\"", "data-state").unwrap_or_default(),
        done: num("id=\"job\"", "data-done"),
        total: num("id=\"job\"", "data-total"),
        spans: num("id=\"spans-count\"", "data-spans"),
        dom,
    }
}

#[test]
fn the_dashboard_shows_a_running_job_progressing_in_headless_chromium() {
    // Fail at once, before starting anything, when there is no browser.
    chromium();
    let t0 = Instant::now();
    // Each executor process also runs a GPU executor on the simulated device, so the GPU
    // panel has devices to show.
    let c = Cluster::start(Options {
        executors: 2,
        slots: 2,
        gpu: "simulated",
        ..Options::default()
    });
    let client = c.client();
    // 64 sleeps of 0.5 s on 4 CPU slots: about 8 s of work (cancelled once seen), traced
    // so that the Gantt has spans.
    let w = Workload::SleepFanout {
        width: WIDTH,
        ms: SLEEP_MS,
    };
    let (body, ctype) = submission_body(&w.generate());
    let job = client.submit_bytes_traced(&body, ctype, true).unwrap();
    let url = format!("{}/ui?token={TOKEN}&job={job}", c.engine_url);
    let dir = scratch();

    let first = load(&dir, 0, &url);
    let total = WIDTH as u64 + 2;
    assert_eq!(first.total, total, "{first:?}");
    assert_eq!(first.state, "running", "the job ended too soon: {first:?}");
    assert!(first.done < total, "{first:?}");
    // The job list, the job, its DAG picture and the executors are on the page.
    let dom = &first.dom;
    assert!(
        dom.contains(&format!("data-job=\"{job}\"")),
        "the job is not selected"
    );
    assert!(
        dom.contains(&format!("<tr data-job=\"{job}\"")),
        "the job is not in the list"
    );
    assert!(
        dom.contains(&format!("sleep-fanout-{WIDTH}x{SLEEP_MS}ms")),
        "no job name"
    );
    assert_eq!(
        attr(dom, "<svg", "data-nodes").as_deref(),
        Some(total.to_string().as_str()),
        "no DAG picture"
    );
    assert!(
        dom.contains("test-exec-0-") && dom.contains("test-exec-1-"),
        "executors missing"
    );
    let h = client.healthz().unwrap();
    let counts = format!("({}, {} slots)", h["executors"], h["slots"]);
    assert!(dom.contains(&counts), "no executor count {counts}");
    assert!(
        dom.contains("<td>gpu</td>") && dom.contains("<td>cpu</td>"),
        "executor classes missing"
    );
    assert!(
        dom.contains("data-device=\"simulated:"),
        "no GPU device in the GPU panel"
    );

    // Load again until the page shows more done (the job keeps running meanwhile).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut run = 1;
    let later = loop {
        let s = load(&dir, run, &url);
        run += 1;
        if s.done > first.done {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the page's progress never moved past {} of {total}: {s:?}",
            first.done
        );
    };
    assert!(later.done <= total, "{later:?}");
    assert!(
        later.spans > first.spans,
        "the task stream did not grow: {} then {}",
        first.spans,
        later.spans
    );
    assert!(later.spans <= total, "{later:?}");

    // A screenshot of the live page: a real PNG of the window's size, with content.
    let png = dir.join("dashboard.png");
    let shot = format!("--screenshot={}", png.display());
    let out = browse(&dir, run, &[&shot, "--window-size=1280,1400"], &url);
    assert!(
        out.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {png:?}: {e}"));
    // A page of one heading and a paragraph (the 401 page) is about 20 KB at this size;
    // the dashboard's tables, bars, charts and DAG take 150 KB or more.
    assert!(
        bytes.len() > 80_000,
        "the screenshot is nearly empty: {} bytes",
        bytes.len()
    );
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be32 =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    assert_eq!((be32(16), be32(20)), (1280, 1400), "the PNG's size (IHDR)");
    eprintln!(
        "dashboard: {run} loads in {:.1} s; done {} -> {} of {total}; spans {} -> {}; screenshot of {} bytes",
        t0.elapsed().as_secs_f64(),
        first.done,
        later.done,
        first.spans,
        later.spans,
        bytes.len()
    );
    if let Some(keep) = std::env::var_os("DASHBOARD_SCREENSHOT") {
        std::fs::copy(&png, &keep).unwrap();
    }
    let _ = client.cancel(&job);
    // The browser profiles and the screenshot (kept above when asked, and left in place
    // when an assertion failed, for a look).
    let _ = std::fs::remove_dir_all(&dir);
}

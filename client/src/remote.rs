//! A client for a cluster engine's HTTP API: submit, follow, fetch outputs, cancel.
//! Blocking (one HTTP request at a time); the CLI's `run --engine` and `status` use it.

use rukong_core::JobId;
use serde_json::Value as J;
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RemoteError {
    /// The engine refused the request (4xx) or could not serve it (5xx).
    #[error("engine answered {status} ({kind}): {message}")]
    Http {
        status: u16,
        kind: String,
        message: String,
    },
    #[error("cannot reach the engine at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("job {job} did not finish within {} s", .after.as_secs_f64())]
    Timeout { job: JobId, after: Duration },
}

impl RemoteError {
    /// Whether the DAG itself was rejected (the CLI exits 2).
    pub fn is_invalid_dag(&self) -> bool {
        matches!(self, RemoteError::Http { kind, .. } if kind == "invalid_dag")
    }
}

/// A job's status as the engine reports it (`GET /jobs/{id}`).
#[derive(Clone, Debug)]
pub struct RemoteStatus {
    pub json: J,
}

impl RemoteStatus {
    pub fn state(&self) -> &str {
        self.json["state"].as_str().unwrap_or("unknown")
    }
    pub fn is_finished(&self) -> bool {
        self.state() != "running"
    }
    pub fn done(&self) -> u64 {
        self.json["done"].as_u64().unwrap_or(0)
    }
    pub fn total(&self) -> u64 {
        self.json["total"].as_u64().unwrap_or(0)
    }
}

#[derive(Clone)]
pub struct EngineClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl EngineClient {
    /// `base`: the engine's URL (`http://host:port`). Every request is bounded by `timeout`.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        EngineClient {
            base: base.trim_end_matches('/').to_owned(),
            token,
            agent,
        }
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    fn finish(
        &self,
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<J, RemoteError> {
        let mut resp = r.map_err(|e| RemoteError::Transport {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| RemoteError::Transport {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        let json: J = serde_json::from_str(&text).unwrap_or_else(|_| J::String(text.clone()));
        if (200..300).contains(&status) {
            return Ok(json);
        }
        Err(RemoteError::Http {
            status,
            kind: json["kind"].as_str().unwrap_or("http").to_owned(),
            message: json["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| text.trim().to_owned()),
        })
    }

    fn get(&self, path: &str) -> Result<J, RemoteError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&url, req.call())
    }

    /// Submits a DAG as raw bytes with its content type (`application/json`,
    /// `application/yaml` or `application/msgpack`).
    pub fn submit_bytes(&self, body: &[u8], content_type: &str) -> Result<JobId, RemoteError> {
        self.submit_bytes_traced(body, content_type, false)
    }

    /// As [`EngineClient::submit_bytes`]; `trace` asks for a span per task, which
    /// [`EngineClient::trace`] then returns (for timelines).
    pub fn submit_bytes_traced(
        &self,
        body: &[u8],
        content_type: &str,
        trace: bool,
    ) -> Result<JobId, RemoteError> {
        self.post_job(content_type, trace, |req| req.send(body))
    }

    /// Submits `spec`, traced when `trace`. A DAG with a compact form goes in it, encoded
    /// while it is sent (chunked), so that neither side holds the whole body; the engine
    /// decodes it as it arrives. Others go as JSON, so that the engine names the problem.
    pub fn submit_spec_traced(
        &self,
        spec: &rukong_core::DagSpec,
        trace: bool,
    ) -> Result<JobId, RemoteError> {
        match rukong_core::dag::CompactDag::from_spec(spec) {
            Some(c) => {
                let body = rukong_core::chunks::pipe(8, move |w| c.write_to(w));
                self.post_job(rukong_core::dag::compact::CONTENT_TYPE, trace, |req| {
                    req.send(ureq::SendBody::from_owned_reader(body))
                })
            }
            None => self.submit_bytes_traced(spec.to_json().as_bytes(), "application/json", trace),
        }
    }

    /// `POST /jobs`, the body sent by `send`.
    fn post_job(
        &self,
        content_type: &str,
        trace: bool,
        send: impl FnOnce(
            ureq::RequestBuilder<ureq::typestate::WithBody>,
        ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<JobId, RemoteError> {
        let url = if trace {
            format!("{}/jobs?trace=1", self.base)
        } else {
            format!("{}/jobs", self.base)
        };
        let mut req = self.agent.post(&url).header("Content-Type", content_type);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        let j = self.finish(&url, send(req))?;
        Ok(JobId::new(j["job"].as_str().unwrap_or_default()))
    }

    pub fn submit(&self, spec: &rukong_core::DagSpec) -> Result<JobId, RemoteError> {
        self.submit_spec_traced(spec, false)
    }

    pub fn status(&self, job: &JobId) -> Result<RemoteStatus, RemoteError> {
        Ok(RemoteStatus {
            json: self.get(&format!("/jobs/{job}"))?,
        })
    }

    /// `{task: value}` in the CLI's JSON form.
    pub fn outputs(&self, job: &JobId) -> Result<J, RemoteError> {
        Ok(self.get(&format!("/jobs/{job}/outputs"))?["outputs"].take())
    }

    /// `{"job", "outputs": {task: value}, "skipped": [task]}`: the outputs, and the ones
    /// that were skipped (`docs/conditional-branches.md`).
    pub fn outputs_and_skipped(&self, job: &JobId) -> Result<J, RemoteError> {
        self.get(&format!("/jobs/{job}/outputs"))
    }

    /// The task spans of a job submitted with tracing.
    pub fn trace(&self, job: &JobId) -> Result<Vec<rukong_engine::TracedTask>, RemoteError> {
        let j = self.get(&format!("/jobs/{job}/trace"))?;
        serde_json::from_value(j["spans"].clone()).map_err(|e| RemoteError::Transport {
            url: format!("{}/jobs/{job}/trace", self.base),
            message: format!("unexpected answer: {e}"),
        })
    }

    pub fn cancel(&self, job: &JobId) -> Result<(), RemoteError> {
        let url = format!("{}/jobs/{job}", self.base);
        let mut req = self.agent.delete(&url);
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&url, req.call()).map(|_| ())
    }

    pub fn healthz(&self) -> Result<J, RemoteError> {
        self.get("/healthz")
    }

    /// Polls until the job ends, calling `on_progress(done, total)`. A store outage the
    /// engine reports (503) for longer than `outage_grace` ends the wait with that error.
    /// So does an engine that cannot be reached (refused, reset, timed out: a transport
    /// error) for longer than `outage_grace`, so that a wait survives an engine restart.
    pub fn wait(
        &self,
        job: &JobId,
        timeout: Option<Duration>,
        outage_grace: Duration,
        mut on_progress: impl FnMut(u64, u64),
    ) -> Result<RemoteStatus, RemoteError> {
        let t0 = Instant::now();
        let mut outage: Option<Instant> = None;
        let mut pause = Duration::from_millis(2);
        loop {
            match self.status(job) {
                Ok(s) => {
                    outage = None;
                    on_progress(s.done(), s.total());
                    if s.is_finished() {
                        return Ok(s);
                    }
                }
                Err(
                    e @ (RemoteError::Http { status: 503, .. } | RemoteError::Transport { .. }),
                ) => {
                    let since = *outage.get_or_insert_with(Instant::now);
                    if since.elapsed() >= outage_grace {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
            if let Some(limit) = timeout
                && t0.elapsed() > limit
            {
                return Err(RemoteError::Timeout {
                    job: job.clone(),
                    after: limit,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

/// The body `spec` is submitted as: the compact form (positional MessagePack, a fraction
/// of the JSON's size), or JSON when some reference does not resolve (so that the engine
/// names the problem from the document).
pub fn submission_body(spec: &rukong_core::DagSpec) -> (Vec<u8>, &'static str) {
    match rukong_core::dag::CompactDag::from_spec(spec) {
        Some(c) => (c.to_msgpack(), rukong_core::dag::compact::CONTENT_TYPE),
        None => (spec.to_json().into_bytes(), "application/json"),
    }
}

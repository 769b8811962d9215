//! A walk's object I/O: an output as it travels (inline, or put once as an object), payloads
//! fetched back as values, and the release of stored outputs its readers are done with.

use super::{BackendError, WalkError, Walker, unix_us};
use rukong_core::error::StoreError;
use rukong_core::messages::{ObjectKey, Payload, SpanKind};
use rukong_core::proxy::{Proxy, ProxyError};
use rukong_core::store::{Store, is_tombstone};
use rukong_core::{TaskIdx, Value};
use std::time::Instant;

impl<S: Store, P: Proxy> Walker<'_, S, P> {
    /// Records a transfer of `t`'s output that began at `started` (traced jobs only).
    fn trace_transfer(
        &mut self,
        t: TaskIdx,
        kind: SpanKind,
        started: Option<(u64, Instant)>,
        bytes: u64,
    ) {
        if let Some((start_us, t0)) = started {
            self.spans.push(rukong_core::messages::Span {
                task: t,
                start_us,
                dur_us: t0.elapsed().as_micros() as u64,
                init_us: 0,
                kind,
                bytes,
            });
        }
    }

    /// The output as it travels: inline up to P, else put once in the object store.
    pub(crate) async fn payload(
        &mut self,
        t: TaskIdx,
        out: &Value,
        cached: &mut Option<Payload>,
    ) -> Result<Payload, WalkError> {
        if let Some(p) = cached {
            return Ok(p.clone());
        }
        let p = if out.approx_size() > self.plan.config.inline_limit {
            let key = ObjectKey::for_output(&self.plan.job, t);
            let started = self.plan.config.trace.then(|| (unix_us(), Instant::now()));
            let bytes = out.to_msgpack();
            let size = bytes.len() as u64;
            self.stats.objects_put += 1;
            self.stats.object_bytes += size;
            match self.svc.proxy.put_object(&key, bytes.into()).await {
                Ok(()) => self.trace_transfer(t, SpanKind::Put, started, size),
                Err(ProxyError::Store(StoreError::TooLarge { size, max, .. })) => {
                    return Err(WalkError::Task {
                        task: t,
                        attempts: 1,
                        error: format!("output is {size} bytes, over the object limit of {max}"),
                    });
                }
                Err(e) => return Err(e.into()),
            }
            Payload::Object(key)
        } else {
            Payload::Inline(out.clone())
        };
        *cached = Some(p.clone());
        Ok(p)
    }

    /// A payload as a value (fetching a large object through the proxy); `None` when the
    /// object was released by all its readers (see [`Walker::resolve_all`]).
    pub(crate) async fn resolve(
        &mut self,
        t: TaskIdx,
        from: TaskIdx,
        p: Payload,
    ) -> Result<Option<Value>, WalkError> {
        match p {
            Payload::Inline(v) => Ok(Some(v)),
            // A skipped task's marker reads as null (walks never ask; see `frontier`).
            Payload::Skipped => Ok(Some(Value::Null)),
            p => Ok(self.resolve_all(vec![(t, from, p)]).await?.pop().flatten()),
        }
    }

    /// Payloads as values: `(reader, producer, payload)` each. Objects are fetched through
    /// the proxy concurrently (its connection pool carries them in parallel). `None` for an
    /// object that is a tombstone: every reader released it, so the reader asking now is
    /// a duplicate of one that finished.
    pub(crate) async fn resolve_all(
        &mut self,
        items: Vec<(TaskIdx, TaskIdx, Payload)>,
    ) -> Result<Vec<Option<Value>>, WalkError> {
        let svc = self.svc;
        let traced = self.plan.config.trace;
        let fetches = items.iter().filter_map(|(_, _, p)| match p {
            Payload::Object(key) => Some(async move {
                let started = traced.then(|| (unix_us(), Instant::now()));
                (svc.proxy.get_object(key).await, started)
            }),
            Payload::Inline(_) | Payload::Skipped => None,
        });
        let mut fetched = futures_util::future::join_all(fetches).await.into_iter();
        let mut out = Vec::with_capacity(items.len());
        for (t, from, p) in items {
            let key = match p {
                Payload::Inline(v) => {
                    out.push(Some(v));
                    continue;
                }
                Payload::Skipped => {
                    out.push(Some(Value::Null));
                    continue;
                }
                Payload::Object(key) => key,
            };
            let Some((got, started)) = fetched.next() else {
                break;
            };
            let dag = &self.plan.dag;
            let bytes = got?.ok_or_else(|| BackendError::MissingObject {
                reader: dag.id(t).clone(),
                producer: dag.id(from).clone(),
                key: key.clone(),
            })?;
            if is_tombstone(&bytes) {
                out.push(None);
                continue;
            }
            let value =
                Value::from_msgpack_shared(&bytes).map_err(|e| BackendError::CorruptObject {
                    key: key.clone(),
                    message: e.to_string(),
                })?;
            self.trace_transfer(from, SpanKind::Get, started, bytes.len() as u64);
            out.push(Some(value));
        }
        Ok(out)
    }

    /// Releases the stored outputs this walk read (after its effects are durable, so a
    /// reader that finds one released may drop its duplicate walk), and discards what the
    /// proxy keeps of those whose last reader this was. Best effort: an output not released
    /// stays until the job ends.
    pub(super) async fn release(&mut self) {
        let releases = std::mem::take(&mut self.releases);
        if releases.is_empty() {
            return;
        }
        let job = &self.plan.job;
        let freed = match self.svc.store.release_outputs(job, &releases).await {
            Ok(freed) => freed,
            Err(e) => {
                tracing::debug!(%job, error = %e, "could not release outputs; they stay until the job ends");
                return;
            }
        };
        let proxy = &self.svc.proxy;
        let discards = freed.into_iter().map(|t| async move {
            let key = ObjectKey::for_output(job, t);
            if let Err(e) = proxy.discard_object(&key).await {
                tracing::debug!(%key, error = %e, "could not discard a released object; it stays until the job ends");
            }
        });
        futures_util::future::join_all(discards).await;
    }
}

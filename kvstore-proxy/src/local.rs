//! The in-process proxy (embedded mode): the same [`Proxy`] interface that cluster mode
//! serves over TCP, over any [`Store`].

use bytes::Bytes;
use rukong_core::ExecClass;
use rukong_core::error::StoreError;
use rukong_core::messages::ObjectKey;
use rukong_core::proxy::{FanOutReply, FanOutRequest, Proxy, ProxyResult};
use rukong_core::step;
use rukong_core::store::Store;
use std::sync::Arc;

/// Invocations pushed per queue call on a large fan-out (one pipelined batch in Redis).
const PUSH_BATCH: usize = 1024;

pub struct LocalProxy<S> {
    store: Arc<S>,
    max_object: usize,
}

impl<S: Store> LocalProxy<S> {
    pub fn new(store: Arc<S>) -> Self {
        Self::with_max_object(store, rukong_core::store::memory::DEFAULT_MAX_OBJECT)
    }

    /// The store it works on.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// A proxy that refuses objects larger than `max_object` bytes.
    pub fn with_max_object(store: Arc<S>, max_object: usize) -> Self {
        LocalProxy { store, max_object }
    }
}

impl<S: Store> Proxy for LocalProxy<S> {
    async fn put_object(&self, key: &ObjectKey, data: Bytes) -> ProxyResult<()> {
        if data.len() > self.max_object {
            return Err(StoreError::TooLarge {
                key: key.to_string(),
                size: data.len(),
                max: self.max_object,
            }
            .into());
        }
        Ok(self.store.put_object(key, data).await?)
    }

    async fn get_object(&self, key: &ObjectKey) -> ProxyResult<Option<Bytes>> {
        Ok(self.store.get_object(key).await?)
    }

    async fn delete_object(&self, key: &ObjectKey) -> ProxyResult<()> {
        Ok(self.store.delete_object(key).await?)
    }

    /// Objects live in the store only, and its release already freed them.
    async fn discard_object(&self, _: &ObjectKey) -> ProxyResult<()> {
        Ok(())
    }

    async fn fan_out(&self, req: FanOutRequest) -> ProxyResult<FanOutReply> {
        let plan = self.store.get_job(&req.job).await?;
        let dag = &plan.dag;
        if let Some(c) = req.children.iter().find(|c| c.task.get() >= dag.len()) {
            return Err(rukong_core::proxy::ProxyError::Protocol(format!(
                "fan-out names task {}, but job {} has {}",
                c.task,
                req.job,
                dag.len()
            )));
        }
        let skipped = req.payload.is_skipped();
        let reqs = step::fan_out_arrivals(dag, &req.children, skipped);
        let arrivals = if reqs.is_empty() {
            Vec::new()
        } else {
            self.store.record_flagged_arrivals(&req.job, &reqs).await?
        };
        let sends = step::fan_out(dag, req.parent, &req.children, skipped, &arrivals);
        let waiting = arrivals.iter().filter(|a| !a.completes()).count() as u32;
        let mut invocations = 0u32;
        let by_class = step::pack(&req.job, &plan.config, &sends, |_| req.payload.clone());
        for (class, invs) in [ExecClass::Cpu, ExecClass::Gpu].into_iter().zip(by_class) {
            invocations += invs.len() as u32;
            for batch in invs.chunks(PUSH_BATCH) {
                self.store.push(class, batch.to_vec()).await?;
            }
        }
        Ok(FanOutReply {
            enqueued: sends.len() as u32,
            invocations,
            waiting,
        })
    }
}

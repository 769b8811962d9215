//! What every slot of one executor shares.

use crate::config::ExecutorConfig;
use crate::functions::Registry;
use crate::pool::Pool;
use rukong_core::ExecutorId;
use std::sync::Arc;

pub struct Services<S, P> {
    pub store: Arc<S>,
    pub proxy: Arc<P>,
    pub registry: Arc<Registry>,
    pub config: ExecutorConfig,
    /// Where the slots take work from (pulled, or kept in the process).
    pub pool: Pool,
}

impl<S, P> Services<S, P> {
    /// The queue consumer this executor pulls, reclaims and refreshes claims as: one name,
    /// so that a slot's refresh finds the entry the dispatcher pulled.
    pub fn consumer(&self) -> ExecutorId {
        ExecutorId::new(format!("{}-d", self.config.id))
    }
}

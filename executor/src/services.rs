//! What every slot of one executor shares.

use crate::config::ExecutorConfig;
use crate::functions::Registry;
use crate::pool::Pool;
use std::sync::Arc;

pub struct Services<S, P> {
    pub store: Arc<S>,
    pub proxy: Arc<P>,
    pub registry: Arc<Registry>,
    pub config: ExecutorConfig,
    /// Where the slots take work from (pulled, or kept in the process).
    pub pool: Pool,
}

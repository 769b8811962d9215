//! Test helpers for other crates' tests (feature `test-util`, never in release builds).
//!
//! - [`RedisServer`]: a throwaway `redis-server` on a free loopback port, stopped on drop.
//! - [`RedisCluster`]: a throwaway Redis Cluster of a few such servers.
//! - [`Faulty`]: a store wrapper that fails calls before or after performing them.

mod faulty;
mod redis_server;

pub use faulty::{FaultCounts, FaultRates, Faulty};
pub use redis_server::{RedisCluster, RedisServer};

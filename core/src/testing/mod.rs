//! Test helpers for other crates' tests (feature `test-util`, never in release builds).
//!
//! - [`RedisServer`]: a throwaway `redis-server` on a free loopback port, stopped on drop.
//! - [`RedisCluster`]: a throwaway Redis Cluster of a few such servers.

mod redis_server;

pub use redis_server::{RedisCluster, RedisServer};

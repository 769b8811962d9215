//! Executor membership: `rk:exec:<id>` holds the registration (MessagePack) and expires with
//! the heartbeat's TTL; `rk:execs` is the set of registered ids.
//!
//! Round trips: `heartbeat` 1 (`SET … PX` + `SADD`, pipelined; 2 on a cluster, where the two
//! keys lie in different slots), `deregister` likewise, `executors` 2 (`SMEMBERS`, `MGET`)
//! plus 1 (`SREM`) when some registrations lapsed.

use super::{RedisStore, decode, encode};
use crate::ids::ExecutorId;
use crate::store::{ExecutorInfo, MembershipStore, StoreResult};
use redis::Cmd;
use std::time::Duration;

const MEMBERS: &str = "rk:execs";

fn member_key(id: &ExecutorId) -> String {
    format!("rk:exec:{id}")
}

impl RedisStore {
    /// Commands on keys of different slots: one pipeline on a single node, one at a time on
    /// a cluster.
    async fn run_all(&self, cmds: &[Cmd], ctx: &str) -> StoreResult<()> {
        if self.is_cluster() {
            for c in cmds {
                let _: redis::Value = self.query(c).await.map_err(|e| self.err(e, None, ctx))?;
            }
        } else {
            let mut p = redis::pipe();
            for c in cmds {
                p.add_command(c.clone()).ignore();
            }
            let () = self
                .query_pipe(&p)
                .await
                .map_err(|e| self.err(e, None, ctx))?;
        }
        Ok(())
    }
}

impl MembershipStore for RedisStore {
    async fn heartbeat(&self, info: &ExecutorInfo, ttl: Duration) -> StoreResult<()> {
        let key = member_key(&info.id);
        let mut set = redis::cmd("SET");
        set.arg(&key)
            .arg(encode(info))
            .arg("PX")
            .arg((ttl.as_millis() as u64).max(1));
        let mut add = redis::cmd("SADD");
        add.arg(MEMBERS).arg(info.id.as_str());
        self.run_all(&[set, add], &key).await
    }

    async fn deregister(&self, id: &ExecutorId) -> StoreResult<()> {
        let key = member_key(id);
        let mut del = redis::cmd("DEL");
        del.arg(&key);
        let mut rem = redis::cmd("SREM");
        rem.arg(MEMBERS).arg(id.as_str());
        self.run_all(&[del, rem], &key).await
    }

    async fn executors(&self) -> StoreResult<Vec<ExecutorInfo>> {
        let ids: Vec<String> = self
            .query(redis::cmd("SMEMBERS").arg(MEMBERS))
            .await
            .map_err(|e| self.err(e, None, MEMBERS))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| member_key(&ExecutorId::new(id.as_str())))
            .collect();
        let values: Vec<Option<Vec<u8>>> = self
            .query(redis::cmd("MGET").arg(&keys))
            .await
            .map_err(|e| self.err(e, None, MEMBERS))?;
        let mut live = Vec::with_capacity(ids.len());
        let mut lapsed = Vec::new();
        for ((id, key), value) in ids.iter().zip(&keys).zip(values) {
            match value {
                Some(v) => live.push(decode::<ExecutorInfo>(&v, key)?),
                None => lapsed.push(id.as_str()),
            }
        }
        if !lapsed.is_empty() {
            let _: i64 = self
                .query(redis::cmd("SREM").arg(MEMBERS).arg(&lapsed))
                .await
                .map_err(|e| self.err(e, None, MEMBERS))?;
        }
        live.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(live)
    }
}

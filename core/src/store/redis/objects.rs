//! Objects, whole or not at all.
//!
//! A value up to `chunk_size` is stored under its key as `0x00` + bytes (one `SET`). A larger
//! one is written as chunks `<key>:v<version>:<i>` first (pipelines of about 8 MiB; a key
//! without a hash tag gets chunks `{<key>}:v<version>:<i>`, which hash to the key's own slot),
//! then
//! published by a manifest under the key, `0x01` + version + length + chunk size (one
//! `SET … GET`, which also returns the value it replaced, whose chunks are then unlinked).
//! A reader gets the manifest, then the chunks; a chunk missing because the object was
//! replaced or deleted meanwhile makes it start over (a few times), so it never returns a
//! part of a value. Job objects (keys under `rk:{job}:`) expire with the job's keys and are
//! listed in `rk:{job}:objects` for `delete_job`.

use super::scripts::SCRIPTS;
use super::{RedisStore, job_key, reply};
use crate::error::StoreError;
use crate::ids::{JobId, TaskIdx};
use crate::messages::{ObjectKey, Payload};
use crate::store::{ObjectStore, Release, StoreResult};
use bytes::{Bytes, BytesMut};
use redis::Cmd;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

const INLINE: u8 = 0;
const MANIFEST: u8 = 1;
const MANIFEST_LEN: usize = 1 + 8 * 3;
/// Bytes per pipelined round trip of chunks.
const BATCH_BYTES: usize = 8 << 20;
/// How much longer a job object's chunks live than its manifest.
const CHUNK_EXTRA_TTL_MS: u64 = 60_000;
/// Reads started over because the object changed underneath.
const READ_ATTEMPTS: usize = 8;

struct Manifest {
    version: u64,
    len: u64,
    chunk: u64,
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(MANIFEST_LEN);
        v.push(MANIFEST);
        v.extend_from_slice(&self.version.to_le_bytes());
        v.extend_from_slice(&self.len.to_le_bytes());
        v.extend_from_slice(&self.chunk.to_le_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<Manifest> {
        if v.len() != MANIFEST_LEN || v[0] != MANIFEST {
            return None;
        }
        let word =
            |i: usize| u64::from_le_bytes(v[1 + 8 * i..9 + 8 * i].try_into().unwrap_or_default());
        let m = Manifest {
            version: word(0),
            len: word(1),
            chunk: word(2),
        };
        (m.chunk > 0).then_some(m)
    }

    fn chunks(&self) -> u64 {
        self.len.div_ceil(self.chunk)
    }

    fn chunk_key(&self, key: &str, i: u64) -> String {
        if has_tag(key) || key.contains(['{', '}']) {
            format!("{key}:v{:016x}:{i}", self.version)
        } else {
            format!("{{{key}}}:v{:016x}:{i}", self.version)
        }
    }
}

/// Whether the key has a Redis Cluster hash tag (a non-empty `{…}`).
fn has_tag(key: &str) -> bool {
    key.find('{')
        .and_then(|open| key[open + 1..].find('}'))
        .is_some_and(|len| len > 0)
}

/// Whether the key's chunks lie in the key's slot: true but for odd keys with braces and no
/// tag.
fn chunks_share_slot(key: &str) -> bool {
    has_tag(key) || !key.contains(['{', '}'])
}

/// The chunk keys of the object stored under `key` with the stored value `value` (none for
/// an inline value).
pub(super) fn chunk_keys(key: &str, value: &[u8]) -> Vec<String> {
    match Manifest::decode(value) {
        Some(m) => (0..m.chunks()).map(|i| m.chunk_key(key, i)).collect(),
        None => Vec::new(),
    }
}

/// The job a key belongs to: `rk:{<job>}:…`.
fn owner(key: &str) -> Option<JobId> {
    crate::messages::key_owner(key).map(|(job, _)| JobId::new(job))
}

/// A version no other writer picks: time, process and a counter, mixed.
fn new_version() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut z =
        nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

enum Read {
    Whole(Option<Bytes>),
    /// The object changed while we read it.
    Changed,
}

impl RedisStore {
    fn chunks_per_batch(&self, chunk: u64) -> usize {
        (BATCH_BYTES as u64 / chunk.max(1)).max(1) as usize
    }

    /// Commands on one object's chunks: one pipeline when the chunks share a slot (always on
    /// a single node), else one command at a time.
    async fn chunk_cmds(&self, key: &str, cmds: Vec<Cmd>) -> StoreResult<Vec<redis::Value>> {
        if !self.is_cluster() || chunks_share_slot(key) {
            let mut p = redis::pipe();
            for c in cmds {
                p.add_command(c);
            }
            self.query_pipe(&p)
                .await
                .map_err(|e| self.err(e, None, key))
        } else {
            let mut out = Vec::with_capacity(cmds.len());
            for c in &cmds {
                out.push(self.query(c).await.map_err(|e| self.err(e, None, key))?);
            }
            Ok(out)
        }
    }

    async fn unlink_chunks(&self, key: &str, chunks: &[String]) -> StoreResult<()> {
        for batch in chunks.chunks(256) {
            let cmds = batch
                .iter()
                .map(|k| {
                    let mut c = redis::cmd("UNLINK");
                    c.arg(k);
                    c
                })
                .collect();
            self.chunk_cmds(key, cmds).await?;
        }
        Ok(())
    }

    async fn read_object(&self, key: &str) -> StoreResult<Read> {
        let value: Option<Vec<u8>> = self
            .query(redis::cmd("GET").arg(key))
            .await
            .map_err(|e| self.err(e, None, key))?;
        let Some(value) = value else {
            return Ok(Read::Whole(None));
        };
        if value.first() == Some(&INLINE) {
            return Ok(Read::Whole(Some(Bytes::from(value).slice(1..))));
        }
        let m = Manifest::decode(&value).ok_or_else(|| StoreError::Corrupt {
            key: key.to_owned(),
            message: "neither an inline object nor a manifest".into(),
        })?;
        let mut buf = BytesMut::with_capacity(m.len as usize);
        let per = self.chunks_per_batch(m.chunk) as u64;
        let mut i = 0;
        while i < m.chunks() {
            let end = (i + per).min(m.chunks());
            let cmds = (i..end)
                .map(|c| {
                    let mut cmd = redis::cmd("GET");
                    cmd.arg(m.chunk_key(key, c));
                    cmd
                })
                .collect();
            let parts = self.chunk_cmds(key, cmds).await?;
            for (c, part) in (i..end).zip(parts) {
                let expected = (m.len - c * m.chunk).min(m.chunk) as usize;
                match reply::as_bytes(part) {
                    Some(part) if part.len() == expected => buf.extend_from_slice(&part),
                    _ => {
                        // Replaced or deleted meanwhile? Then start over; else it is broken.
                        let now: Option<Vec<u8>> = self
                            .query(redis::cmd("GET").arg(key))
                            .await
                            .map_err(|e| self.err(e, None, key))?;
                        return match now {
                            None => Ok(Read::Whole(None)),
                            Some(v) if v != value => Ok(Read::Changed),
                            Some(_) => Err(StoreError::Corrupt {
                                key: m.chunk_key(key, c),
                                message: "object chunk missing or of the wrong size".into(),
                            }),
                        };
                    }
                }
            }
            i = end;
        }
        Ok(Read::Whole(Some(buf.freeze())))
    }
}

impl ObjectStore for RedisStore {
    async fn put_object(&self, key: &ObjectKey, data: Bytes) -> StoreResult<()> {
        let max = self.inner.cfg.max_object;
        if data.len() > max {
            return Err(StoreError::TooLarge {
                key: key.to_string(),
                size: data.len(),
                max,
            });
        }
        let k = key.as_str();
        let job = owner(k);
        let ttl = job.as_ref().map(|_| self.ttl_ms());
        let chunk = self.inner.cfg.chunk_size;
        let value = if data.len() <= chunk {
            let mut v = Vec::with_capacity(data.len() + 1);
            v.push(INLINE);
            v.extend_from_slice(&data);
            v
        } else {
            let m = Manifest {
                version: new_version(),
                len: data.len() as u64,
                chunk: chunk as u64,
            };
            let keys: Vec<String> = (0..m.chunks()).map(|i| m.chunk_key(k, i)).collect();
            let parts: Vec<(&String, &[u8])> = keys.iter().zip(data.chunks(chunk)).collect();
            for batch in parts.chunks(self.chunks_per_batch(m.chunk)) {
                let cmds = batch
                    .iter()
                    .map(|(ck, part)| {
                        let mut c = redis::cmd("SET");
                        c.arg(*ck).arg(*part);
                        if let Some(ttl) = ttl {
                            // Chunks outlive their manifest, so that a manifest never
                            // points at expired chunks.
                            c.arg("PX").arg(ttl + CHUNK_EXTRA_TTL_MS);
                        }
                        c
                    })
                    .collect();
                self.chunk_cmds(k, cmds).await?;
            }
            m.encode()
        };
        // Publish: one SET, which hands back the value it replaced.
        let mut p = redis::pipe();
        p.cmd("SET").arg(k).arg(&value);
        if let Some(ttl) = ttl {
            p.arg("PX").arg(ttl);
        }
        p.arg("GET");
        if let Some(job) = &job {
            // Same hash tag as the key: one slot, one round trip.
            let set = job_key(job, "objects");
            p.cmd("SADD").arg(&set).arg(k).ignore();
            p.cmd("PEXPIRE").arg(&set).arg(self.ttl_ms()).ignore();
        }
        let (old,): (Option<Vec<u8>>,) = self
            .query_pipe(&p)
            .await
            .map_err(|e| self.err(e, None, k))?;
        // The replaced version's chunks (a new version never reuses a key).
        if let Some(old) = old {
            self.unlink_chunks(k, &chunk_keys(k, &old)).await?;
        }
        Ok(())
    }

    async fn get_object(&self, key: &ObjectKey) -> StoreResult<Option<Bytes>> {
        for _ in 0..READ_ATTEMPTS {
            if let Read::Whole(v) = self.read_object(key.as_str()).await? {
                return Ok(v);
            }
        }
        Err(StoreError::Unavailable(format!(
            "object {key} kept changing while being read"
        )))
    }

    async fn delete_object(&self, key: &ObjectKey) -> StoreResult<()> {
        let k = key.as_str();
        let old: Option<Vec<u8>> = self
            .query(redis::cmd("GETDEL").arg(k))
            .await
            .map_err(|e| self.err(e, None, k))?;
        if let Some(old) = old {
            self.unlink_chunks(k, &chunk_keys(k, &old)).await?;
        }
        if let Some(job) = owner(k) {
            let set = job_key(&job, "objects");
            let _: i64 = self
                .query(redis::cmd("SREM").arg(&set).arg(k))
                .await
                .map_err(|e| self.err(e, None, &set))?;
        }
        Ok(())
    }

    async fn release_outputs(
        &self,
        job: &JobId,
        releases: &[Release],
    ) -> StoreResult<Vec<TaskIdx>> {
        if releases.is_empty() {
            return Ok(Vec::new());
        }
        let mut freed = Vec::new();
        // One script per batch: every key is under the job's hash tag (one slot).
        for batch in releases.chunks(RELEASE_BATCH) {
            let mut inv = SCRIPTS.release_outputs.prepare_invoke();
            inv.key(job_key(job, "out"))
                .key(job_key(job, "objects"))
                .arg(self.ttl_ms());
            let mut producers = HashMap::with_capacity(batch.len());
            for r in batch {
                let obj = ObjectKey::for_output(job, r.producer);
                let pointer = super::encode(&Payload::Object(obj.clone()));
                producers.insert(obj.as_str().to_string(), r.producer);
                inv.key(obj.as_str())
                    .key(reader_set(obj.as_str()))
                    .arg(r.reader.0)
                    .arg(r.readers)
                    .arg(r.producer.0)
                    .arg(pointer);
            }
            let out: Vec<Vec<u8>> = self
                .invoke(&inv)
                .await
                .map_err(|e| self.err(e, Some(job), "release"))?;
            for pair in out.chunks(2) {
                let [key, old] = pair else { continue };
                let key = String::from_utf8_lossy(key);
                if !old.is_empty() {
                    self.unlink_chunks(&key, &chunk_keys(&key, old)).await?;
                }
                freed.extend(producers.get(key.as_ref()).copied());
            }
        }
        Ok(freed)
    }
}

/// Releases per script call.
const RELEASE_BATCH: usize = 512;

/// Where the readers that released an output are kept (freed with the job).
pub(super) fn reader_set(object_key: &str) -> String {
    format!("{object_key}:rel")
}

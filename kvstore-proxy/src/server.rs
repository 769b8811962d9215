//! The proxy's TCP server (cluster mode): the [`Proxy`] interface of a [`LocalProxy`],
//! served to [`RemoteProxy`](rukong_core::proxy::remote::RemoteProxy) clients over the
//! [`wire`] protocol.
//!
//! One task per connection: the handshake first (bounded by
//! [`ServerConfig::handshake_timeout`]), then requests answered one at a time, in order
//! (clients pool connections rather than pipeline). A request is handled only once its whole
//! frame has arrived, and a put only once every byte of its object has (the bytes follow
//! the frame raw), so a client that dies mid-put never leaves part of an object. Objects
//! bound for the shared directory are written there chunk by chunk as they arrive, and
//! objects read from it are sent the same way, so the proxy never holds a whole one.
//!
//! **Objects** live where [`ServerConfig::objects`] says. With [`ObjectBackend::Shared`] they
//! are files in a directory ([`SharedDir`]) that executors on this host read and write
//! directly (the handshake tells them where); other clients' objects go there through this
//! server. With [`ObjectBackend::Memory`] or `Shared`, a released object is discarded when
//! its last reader says so ([`ToProxy::Discard`]), and a sweep every
//! [`ServerConfig::sweep_interval`] drops the objects of jobs the store no longer has (a
//! finished job's retention ran out, or it was deleted). A miss falls back to the store,
//! where a released object's tombstone is.
//!
//! Shutdown: stop accepting, drop connections that are waiting for (or in the middle of)
//! a request, let requests being handled finish and answer, for at most
//! [`ServerConfig::shutdown_grace`].

use crate::LocalProxy;
use crate::transfer::{self, Received};
use bytes::Bytes;
use rukong_core::JobId;
use rukong_core::error::StoreError;
use rukong_core::messages::ObjectKey;
use rukong_core::proxy::shared::SharedDir;
use rukong_core::proxy::wire::{
    self, ClientHello, FrameError, FromProxy, MAX_FRAME, MAX_HELLO, MAX_OBJECT, ObjectsOffer,
    Request, RequestId, Response, ToProxy,
};
use rukong_core::proxy::{FanOutReply, FanOutRequest, Proxy, ProxyError, ProxyResult};
use rukong_core::store::Store;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Where the proxy keeps objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ObjectBackend {
    /// The store's object API (in cluster mode, Redis, which writes chunks atomically).
    #[default]
    Store,
    /// The proxy process's own memory: objects die with the proxy.
    Memory,
    /// Files in a directory on the proxy's host ([`ServerConfig::shared_dir`]), which
    /// executors on the same host share; a tmpfs such as `/dev/shm` keeps them in memory.
    /// Objects outlive a proxy restart that keeps the directory, not the host. A write that
    /// fails there (a full tmpfs) goes to the store instead.
    Shared,
}

/// How the server authenticates, limits and times out its clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The shared secret clients must present; `None` accepts every client.
    pub token: Option<String>,
    /// The largest object accepted, in bytes; at most [`wire::MAX_OBJECT`].
    pub max_object: usize,
    pub objects: ObjectBackend,
    /// The directory of [`ObjectBackend::Shared`]; `None`: [`default_shared_dir`] for the
    /// listening port.
    pub shared_dir: Option<PathBuf>,
    /// How often objects of jobs gone from the store are dropped ([`ObjectBackend::Memory`]
    /// and [`ObjectBackend::Shared`]).
    pub sweep_interval: Duration,
    /// How long a new connection has to complete its handshake.
    pub handshake_timeout: Duration,
    /// A connection with no request for this long is closed; so is one that takes longer
    /// than this to send one request frame.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for requests being handled.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            max_object: MAX_OBJECT,
            objects: ObjectBackend::Store,
            shared_dir: None,
            sweep_interval: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A [`ServerConfig`] the proxy cannot serve with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("max_object {max_object} is over the wire limit of {limit}")]
    ObjectOverWireLimit { max_object: usize, limit: usize },
    #[error("max_connections must be at least 1")]
    NoConnections,
    #[error("the token must not be empty (use no token instead)")]
    EmptyToken,
}

impl From<ConfigError> for io::Error {
    fn from(e: ConfigError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_object > MAX_OBJECT {
            return Err(ConfigError::ObjectOverWireLimit {
                max_object: self.max_object,
                limit: MAX_OBJECT,
            });
        }
        if self.max_connections == 0 {
            return Err(ConfigError::NoConnections);
        }
        if self.token.as_deref() == Some("") {
            return Err(ConfigError::EmptyToken);
        }
        Ok(())
    }
}

/// Where [`ObjectBackend::Shared`] keeps objects by default for a proxy listening on `port`:
/// `/dev/shm/rukong-proxy-<port>` where `/dev/shm` exists, else the same under the
/// temporary directory.
pub fn default_shared_dir(port: u16) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("rukong-proxy-{port}"))
}

/// What every connection shares.
struct Shared<S> {
    proxy: LocalProxy<S>,
    kept: Kept,
    /// What accepted clients are told about objects.
    offer: ObjectsOffer,
    config: ServerConfig,
}

/// Where the proxy itself keeps objects ([`ServerConfig::objects`]).
enum Kept {
    /// Nowhere: the store has them.
    Store,
    Memory(Mutex<HashMap<ObjectKey, Bytes>>),
    Dir(SharedDir),
}

/// Serves the proxy on `listener` until `shutdown` completes, then drains (see the module
/// doc) and returns. Errors only on an invalid `config`.
pub async fn serve<S: Store>(
    listener: TcpListener,
    store: Arc<S>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    config.validate()?;
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        auth = config.token.is_some(),
        objects = ?config.objects,
        "proxy listening"
    );
    let (kept, probe) = match config.objects {
        ObjectBackend::Store => (Kept::Store, None),
        ObjectBackend::Memory => (Kept::Memory(Mutex::new(HashMap::new())), None),
        ObjectBackend::Shared => {
            let path = config
                .shared_dir
                .clone()
                .unwrap_or_else(|| default_shared_dir(local.port()));
            let (dir, probe) = SharedDir::create(&path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot use {} for shared objects: {e}", path.display()),
                )
            })?;
            tracing::info!(dir = %path.display(), "objects shared on this host");
            (Kept::Dir(dir), Some(probe))
        }
    };
    let offer = ObjectsOffer {
        max_object: config.max_object as u64,
        kept: !matches!(kept, Kept::Store),
        shared_dir: match &kept {
            Kept::Dir(d) => Some(d.path().to_string_lossy().into_owned()),
            _ => None,
        },
        probe,
    };
    let shared = Arc::new(Shared {
        proxy: LocalProxy::with_max_object(store, config.max_object),
        kept,
        offer,
        config,
    });
    let sweeper = (!matches!(shared.kept, Kept::Store)).then(|| {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                shared.sweep().await;
                tokio::time::sleep(shared.config.sweep_interval).await;
            }
        })
    });
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (sock, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (shared, stop) = (shared.clone(), stop_rx.clone());
        conns.spawn(async move {
            connection(sock, peer, shared, stop).await;
            drop(permit);
        });
        while let Some(done) = conns.try_join_next() {
            log_join(done);
        }
    }
    drop(listener);
    if let Some(s) = sweeper {
        s.abort();
    }
    let _ = stop_tx.send(true);
    tracing::info!(addr = %local, open = conns.len(), "proxy shutting down");
    let grace = shared.config.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        while let Some(done) = conns.join_next().await {
            log_join(done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = conns.len(),
            grace_ms = grace.as_millis() as u64,
            "aborting connections still busy after the grace period"
        );
        conns.shutdown().await;
    }
    tracing::info!(addr = %local, "proxy stopped");
    Ok(())
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    match done {
        Err(e) if e.is_panic() => tracing::error!(error = %e, "proxy connection task panicked"),
        _ => {}
    }
}

/// Why a connection ended, for the log.
enum End {
    Closed,
    Idle,
    Shutdown,
    Refused(Refusal),
    Failed(FrameError),
}

/// Why a handshake was refused.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("no handshake in time")]
    Timeout,
    /// The hello's answer said no (a wrong token, an unsupported version).
    #[error("{0}")]
    Answered(String),
}

async fn connection<S: Store>(
    sock: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<S>>,
    mut stop: watch::Receiver<bool>,
) {
    sock.set_nodelay(true).ok();
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    let greeted = tokio::select! {
        _ = stop.wait_for(|&s| s) => Err(End::Shutdown),
        r = handshake(&mut rd, &mut wr, &shared.config, &shared.offer) => r,
    };
    let end = match greeted {
        Ok(()) => {
            tracing::debug!(%peer, "proxy client connected");
            requests(&mut rd, &mut wr, &shared, &mut stop).await
        }
        Err(end) => end,
    };
    match end {
        End::Closed | End::Idle | End::Shutdown => {
            let why = match end {
                End::Closed => "closed by the client",
                End::Idle => "idle",
                _ => "shutdown",
            };
            tracing::debug!(%peer, why, "proxy connection ended");
        }
        End::Refused(reason) => tracing::warn!(%peer, %reason, "proxy handshake refused"),
        End::Failed(error) => tracing::warn!(%peer, %error, "proxy connection dropped"),
    }
}

type Reader = BufReader<tokio::net::tcp::OwnedReadHalf>;
type Writer = tokio::net::tcp::OwnedWriteHalf;

async fn handshake(
    rd: &mut Reader,
    wr: &mut Writer,
    config: &ServerConfig,
    offer: &ObjectsOffer,
) -> Result<(), End> {
    let hello = tokio::time::timeout(
        config.handshake_timeout,
        wire::read_frame::<_, ClientHello>(rd, MAX_HELLO),
    )
    .await
    .map_err(|_| End::Refused(Refusal::Timeout))?
    .map_err(End::Failed)?
    .ok_or(End::Closed)?;
    let mut answer = hello.answer(config.token.as_deref());
    if answer.accepted {
        answer.objects = offer.clone();
    }
    wire::write_frame(wr, &answer).await.map_err(End::Failed)?;
    match answer.reason {
        Some(reason) => Err(End::Refused(Refusal::Answered(reason))),
        None => Ok(()),
    }
}

async fn requests<S: Store>(
    rd: &mut Reader,
    wr: &mut Writer,
    shared: &Shared<S>,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let idle = shared.config.idle_timeout;
    loop {
        // Wait for the next request to start arriving; waiting is cancel safe.
        tokio::select! {
            _ = stop.wait_for(|&s| s) => return End::Shutdown,
            r = tokio::time::timeout(idle, rd.fill_buf()) => match r {
                Err(_) => return End::Idle,
                Ok(Err(e)) => return End::Failed(e.into()),
                Ok(Ok([])) => return End::Closed,
                Ok(Ok(_)) => {}
            },
        }
        // Read it whole. Shutdown drops a partly read request: it was never handled.
        let frame = tokio::select! {
            _ = stop.wait_for(|&s| s) => return End::Shutdown,
            r = tokio::time::timeout(idle, wire::read_frame_bytes(rd, MAX_FRAME)) => match r {
                Err(_) => return End::Idle,
                Ok(Err(e)) => return End::Failed(e),
                Ok(Ok(None)) => return End::Closed,
                Ok(Ok(Some(frame))) => frame,
            },
        };
        let (req_id, answer) = match wire::decode::<Request>(&frame) {
            Ok(Request { req_id, body }) => {
                drop(frame);
                let answer = match body {
                    // Its object follows, and arrives whole before anything is stored;
                    // shutdown drops a partly read one, like a partly read frame.
                    ToProxy::Put { key, len } => {
                        let received = tokio::select! {
                            _ = stop.wait_for(|&s| s) => return End::Shutdown,
                            r = tokio::time::timeout(idle, shared.receive(rd, &key, len)) => match r {
                                Err(_) => return End::Idle,
                                Ok(Err(e)) => return End::Failed(e),
                                Ok(Ok(received)) => received,
                            },
                        };
                        shared.keep(&key, received).await
                    }
                    body => shared.handle(body).await,
                };
                (req_id, answer)
            }
            // A request from a newer client: answer it, the connection is still in step.
            Err(e) => match wire::decode::<RequestId>(&frame) {
                Ok(RequestId { req_id }) => (
                    req_id,
                    Answer::Frame(FromProxy::error(&ProxyError::Protocol(format!(
                        "unknown request: {e}"
                    )))),
                ),
                Err(_) => return End::Failed(e),
            },
        };
        if let Err(e) = answer.send(wr, req_id).await {
            return End::Failed(e);
        }
    }
}

/// An answer as it is sent: one frame, or a value's frame and its object's bytes.
enum Answer {
    Frame(FromProxy),
    /// An object in memory.
    Object(Bytes),
    /// An object in the shared directory, opened, and its length.
    File(std::fs::File, u64),
}

impl From<ProxyResult<FromProxy>> for Answer {
    fn from(r: ProxyResult<FromProxy>) -> Self {
        Answer::Frame(r.unwrap_or_else(|e| FromProxy::error(&e)))
    }
}

impl Answer {
    async fn send(self, wr: &mut Writer, req_id: u64) -> Result<(), FrameError> {
        let frame = |body| wire::encode_frame(&Response { req_id, body }, 128);
        let value = |len| frame(FromProxy::Value { len: Some(len) });
        match self {
            Answer::Frame(body) => wire::write_encoded(wr, &frame(body)?).await,
            Answer::Object(data) => {
                wire::write_with_tail(wr, &value(data.len() as u64)?, &data).await
            }
            Answer::File(file, len) => {
                wire::write_encoded(wr, &value(len)?).await?;
                transfer::send_file(wr, file, len).await
            }
        }
    }
}

impl<S: Store> Shared<S> {
    /// Answers every request but a put (whose object the caller reads first).
    async fn handle(&self, req: ToProxy) -> Answer {
        match req {
            ToProxy::Put { .. } => Err(ProxyError::Protocol("a put without its object".into())),
            ToProxy::Get { key } => {
                return self
                    .get(&key)
                    .await
                    .unwrap_or_else(|e| Answer::Frame(FromProxy::error(&e)));
            }
            ToProxy::Delete { key } => self.delete(&key).await.map(|()| FromProxy::Done),
            ToProxy::Discard { key } => self.discard(&key).await.map(|()| FromProxy::Done),
            ToProxy::FanOut(req) => self.fan_out(req).await.map(FromProxy::FanOut),
            ToProxy::Ping => Ok(FromProxy::Pong),
            ToProxy::Prefetch { job } => {
                // The store keeps the plan once loaded; a failure here is met again, and
                // reported, at the job's first fan-out.
                let store = self.proxy.store().clone();
                tokio::spawn(async move {
                    if let Err(error) = store.get_job(&job).await {
                        tracing::debug!(%job, %error, "plan prefetch failed");
                    }
                });
                Ok(FromProxy::Done)
            }
        }
        .into()
    }

    async fn fan_out(&self, req: FanOutRequest) -> ProxyResult<FanOutReply> {
        let (job, parent, children) = (req.job.clone(), req.parent, req.children.len());
        let r = self.proxy.fan_out(req).await;
        match &r {
            Ok(reply) => tracing::debug!(
                %job,
                %parent,
                children,
                enqueued = reply.enqueued,
                invocations = reply.invocations,
                waiting = reply.waiting,
                "fan-out served"
            ),
            Err(error) => tracing::warn!(%job, %parent, children, %error, "fan-out failed"),
        }
        r
    }

    /// Reads the `len` bytes of a put's object off the connection: into the shared
    /// directory (committed there once whole) when it keeps the key, else into memory. The
    /// inner error is the answer to the put (an object over the limit, read and dropped);
    /// the outer one is the connection's.
    async fn receive(
        &self,
        rd: &mut Reader,
        key: &ObjectKey,
        len: u64,
    ) -> Result<ProxyResult<Received>, FrameError> {
        let len = wire::tail_len(len)?;
        if len > self.config.max_object {
            wire::skip_tail(rd, len).await?;
            return Ok(Err(StoreError::TooLarge {
                key: key.to_string(),
                size: len,
                max: self.config.max_object,
            }
            .into()));
        }
        if let Kept::Dir(dir) = &self.kept {
            let (dir, k) = (dir.clone(), key.clone());
            match blocking(move || dir.writer(&k)).await {
                Ok(Some(w)) => return transfer::receive_into(rd, w, len).await.map(Ok),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%key, error = %e, "cannot write a shared object; storing it in the store")
                }
            }
        }
        let data = wire::read_tail(rd, len).await?;
        Ok(Ok(Received::Held(Bytes::from(data))))
    }

    /// Answers a put whose object arrived: one held in memory is kept in the proxy's memory
    /// or in the store (never the shared directory, which did not take it).
    async fn keep(&self, key: &ObjectKey, received: ProxyResult<Received>) -> Answer {
        let kept = match received {
            Err(e) => Err(e),
            Ok(Received::Written) => Ok(()),
            Ok(Received::Held(data)) => match &self.kept {
                Kept::Memory(memory) => {
                    lock(memory).insert(key.clone(), data);
                    Ok(())
                }
                Kept::Store | Kept::Dir(_) => self.proxy.put_object(key, data).await,
            },
        };
        kept.map(|()| FromProxy::Done).into()
    }

    async fn get(&self, key: &ObjectKey) -> ProxyResult<Answer> {
        match &self.kept {
            Kept::Store => {}
            Kept::Memory(memory) => {
                if let Some(data) = lock(memory).get(key).cloned() {
                    return Ok(Answer::Object(data));
                }
            }
            Kept::Dir(dir) => {
                let (dir, k) = (dir.clone(), key.clone());
                match blocking(move || dir.open_object(&k)).await {
                    Ok(Some((file, len))) => return Ok(Answer::File(file, len)),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(%key, error = %e, "cannot read a shared object"),
                }
            }
        }
        // Not kept here: in the store, or released (its tombstone is in the store).
        Ok(match self.proxy.get_object(key).await? {
            Some(data) => Answer::Object(data),
            None => Answer::Frame(FromProxy::Value { len: None }),
        })
    }

    async fn delete(&self, key: &ObjectKey) -> ProxyResult<()> {
        self.discard(key).await?;
        self.proxy.delete_object(key).await
    }

    async fn discard(&self, key: &ObjectKey) -> ProxyResult<()> {
        match &self.kept {
            Kept::Store => {}
            Kept::Memory(memory) => {
                lock(memory).remove(key);
            }
            Kept::Dir(dir) => {
                let (dir, k) = (dir.clone(), key.clone());
                blocking(move || dir.remove(&k))
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("cannot delete {key}: {e}")))?;
            }
        }
        Ok(())
    }

    /// Drops the objects of every job the store no longer has.
    async fn sweep(&self) {
        let jobs: Vec<JobId> = match &self.kept {
            Kept::Store => return,
            Kept::Memory(memory) => {
                let mut jobs: Vec<JobId> = lock(memory)
                    .keys()
                    .filter_map(|k| k.owner().map(|(job, _)| JobId::new(job)))
                    .collect();
                jobs.sort();
                jobs.dedup();
                jobs
            }
            Kept::Dir(dir) => {
                let dir = dir.clone();
                match blocking(move || dir.jobs()).await {
                    Ok(jobs) => jobs,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list shared objects");
                        return;
                    }
                }
            }
        };
        for job in jobs {
            match self.proxy.store().job_state(&job).await {
                Err(StoreError::UnknownJob(_)) => {}
                // Still there, or the store cannot say: keep its objects.
                _ => continue,
            }
            let freed = match &self.kept {
                Kept::Store => 0,
                Kept::Memory(memory) => {
                    let mut freed = 0;
                    lock(memory).retain(|k, v| {
                        let gone = k.belongs_to(&job);
                        if gone {
                            freed += v.len() as u64;
                        }
                        !gone
                    });
                    freed
                }
                Kept::Dir(dir) => {
                    let (dir, j) = (dir.clone(), job.clone());
                    match blocking(move || dir.remove_job(&j)).await {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            tracing::warn!(%job, error = %e, "cannot delete a job's shared objects");
                            continue;
                        }
                    }
                }
            };
            tracing::debug!(%job, bytes = freed, "dropped the objects of a job the store no longer has");
        }
    }
}

/// Runs file I/O on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_the_proxy_cannot_serve_is_named() {
        let ok = ServerConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let big = ServerConfig {
            max_object: MAX_OBJECT + 1,
            ..ServerConfig::default()
        };
        assert!(matches!(
            big.validate(),
            Err(ConfigError::ObjectOverWireLimit { .. })
        ));
        let none = ServerConfig {
            max_connections: 0,
            ..ServerConfig::default()
        };
        assert_eq!(none.validate(), Err(ConfigError::NoConnections));
        let empty = ServerConfig {
            token: Some(String::new()),
            ..ServerConfig::default()
        };
        let e: io::Error = empty.validate().unwrap_err().into();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("token must not be empty"), "{e}");
    }
}

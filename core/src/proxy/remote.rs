//! [`RemoteProxy`]: the [`Proxy`] interface over TCP, to a `rukong-kvstore-proxy` server
//! (cluster mode), speaking the [`wire`] protocol.
//!
//! **Pooling.** Up to [`RemoteConfig::max_connections`] connections, each carrying one
//! request at a time; a request waits for a free one. Idle connections are kept for the next
//! request; one that the proxy closed meanwhile is dropped and a new one dialed, so a
//! restarted proxy is reconnected to transparently.
//!
//! **Objects** go raw after their request or answer frame ([`wire`]'s module doc): a put
//! writes the caller's bytes to the socket as they are, and a get reads the object into the
//! buffer that becomes its value, with no encoding or frame buffer on the way.
//!
//! **Timeouts.** Dialing plus the handshake is bounded by [`RemoteConfig::connect_timeout`];
//! a whole request (waiting for a connection, dialing, every attempt) by
//! [`RemoteConfig::request_timeout`]. A request that runs out of time fails with
//! [`ProxyError::Unavailable`] and its connection is dropped.
//!
//! **Retries.** A request whose connection fails fails with [`ProxyError::Unavailable`]
//! (retryable). Puts, gets and deletes are idempotent, so they are retried at once on a
//! fresh connection, up to [`RemoteConfig::retries`] more times, within the request timeout.
//! A fan-out is never resent here: it is idempotent for fan-in children, but resending it
//! could enqueue its ready children twice, so the caller decides. Errors that the proxy
//! answered (a store error, a protocol error) are returned as they are, never retried here.
//!
//! **Same host.** When the proxy's handshake offers a shared directory
//! ([`super::shared::SharedDir`]) and its probe reads back here, objects are written and
//! read as files there, with no request to the proxy; a key the directory does not keep,
//! or a file that cannot be written (a full tmpfs, say), goes through the proxy as before.

use super::shared::SharedDir;
use super::wire::{
    self, ClientHello, FromProxy, MAX_FRAME, MAX_HELLO, MAX_OBJECT, ObjectsOffer, Response,
    ServerHello, ToProxy,
};
use super::{FanOutReply, FanOutRequest, Proxy, ProxyError, ProxyResult};
use crate::error::StoreError;
use crate::ids::JobId;
use crate::messages::{ObjectKey, PROTOCOL_VERSION};
use bytes::Bytes;
use serde::Serialize;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How a [`RemoteProxy`] connects, times out and retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteConfig {
    /// Bounds dialing plus the handshake.
    pub connect_timeout: Duration,
    /// Bounds a whole request, retries included. Large objects travel in one request, so
    /// this is generous.
    pub request_timeout: Duration,
    /// Connections open at once (and requests in flight at once).
    pub max_connections: usize,
    /// Extra attempts for a put, get or delete whose connection failed.
    pub retries: u32,
    /// Use the proxy's shared directory when it is on this host (see the module doc).
    pub share_host_objects: bool,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_connections: 16,
            retries: 2,
            share_host_objects: true,
        }
    }
}

/// A [`Proxy`] reached over TCP. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct RemoteProxy {
    pool: Arc<Pool>,
}

struct Pool {
    /// The runtime that dials every connection. Sockets register with the reactor of the
    /// runtime that creates them; executors call the proxy from several single-threaded
    /// actix arbiters, and a socket registered with one of those would stall whenever that
    /// arbiter's thread is busy walking a schedule. Dialing on the (multi-threaded) runtime
    /// that built the proxy keeps every socket's readiness on a reactor that is always driven.
    dialer: tokio::runtime::Handle,
    addr: String,
    token: Option<String>,
    config: RemoteConfig,
    idle: Mutex<Vec<TcpStream>>,
    slots: Semaphore,
    next_id: AtomicU64,
    /// What the latest handshake said about objects.
    objects: Mutex<Arc<Objects>>,
}

/// Where the proxy keeps objects, as this client uses them.
#[derive(Debug, Default)]
struct Objects {
    max_object: usize,
    /// The proxy keeps objects outside the store: released ones must be discarded there.
    kept: bool,
    /// The proxy's shared directory, readable from this host.
    local: Option<SharedDir>,
}

impl fmt::Debug for RemoteProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteProxy")
            .field("addr", &self.pool.addr)
            .field("config", &self.pool.config)
            .finish_non_exhaustive()
    }
}

/// A request as it is written: [`wire::Request`], borrowing its body.
#[derive(Serialize)]
struct RequestRef<'a> {
    req_id: u64,
    body: &'a ToProxy,
}

impl RemoteProxy {
    /// Connects to the proxy at `addr` (`host:port`) and completes one handshake, so that a
    /// wrong address, version or token shows here rather than on the first request.
    pub async fn connect(
        addr: String,
        token: Option<String>,
        config: RemoteConfig,
    ) -> ProxyResult<RemoteProxy> {
        let pool = Pool {
            dialer: tokio::runtime::Handle::current(),
            addr,
            token,
            slots: Semaphore::new(config.max_connections.max(1)),
            config,
            idle: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            objects: Mutex::new(Arc::default()),
        };
        let first = pool.dial().await?;
        pool.release(first);
        Ok(RemoteProxy {
            pool: Arc::new(pool),
        })
    }

    /// The address this proxy connects to.
    pub fn addr(&self) -> &str {
        &self.pool.addr
    }

    /// The proxy's shared directory, when this client writes and reads objects there.
    pub fn shared_dir(&self) -> Option<std::path::PathBuf> {
        self.pool
            .objects()
            .local
            .as_ref()
            .map(|d| d.path().to_path_buf())
    }

    /// Runs file I/O on the proxy client's runtime's blocking threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        self.pool
            .dialer
            .spawn_blocking(f)
            .await
            .map_err(io::Error::other)?
    }

    /// A round trip to the proxy.
    pub async fn ping(&self) -> ProxyResult<()> {
        match self.call(&ToProxy::Ping, true).await? {
            FromProxy::Pong => Ok(()),
            other => Err(unexpected("Ping", &other)),
        }
    }

    /// Sends `body` and returns the answer, retrying a failed connection when `idempotent`.
    async fn call(&self, body: &ToProxy, idempotent: bool) -> ProxyResult<FromProxy> {
        self.exchange(body, None, idempotent)
            .await
            .map(|(answer, _)| answer)
    }

    /// Sends `body`, then `tail` raw when there is one, and returns the answer with the
    /// object that followed it (a [`FromProxy::Value`]'s); retries a failed connection when
    /// `idempotent`.
    async fn exchange(
        &self,
        body: &ToProxy,
        tail: Option<&Bytes>,
        idempotent: bool,
    ) -> ProxyResult<(FromProxy, Option<Bytes>)> {
        let p = &self.pool;
        let attempts = if idempotent { 1 + p.config.retries } else { 1 };
        let all = async {
            let mut attempt = 1;
            loop {
                match p.attempt(body, tail).await {
                    Err(ProxyError::Unavailable(_)) if attempt < attempts => attempt += 1,
                    Ok((FromProxy::Error { kind, message }, _)) => {
                        return Err(kind.into_error(message));
                    }
                    other => return other,
                }
            }
        };
        match tokio::time::timeout(p.config.request_timeout, all).await {
            Ok(r) => r,
            Err(_) => Err(ProxyError::Unavailable(format!(
                "no answer from proxy {} within {} ms",
                p.addr,
                p.config.request_timeout.as_millis()
            ))),
        }
    }
}

impl Pool {
    /// One try on one connection. The connection goes back to the pool only after a
    /// complete, matching answer (and the whole object that follows a value); on any
    /// failure it is dropped.
    async fn attempt(
        &self,
        body: &ToProxy,
        tail: Option<&Bytes>,
    ) -> ProxyResult<(FromProxy, Option<Bytes>)> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ProxyError::Unavailable("connection pool closed".into()))?;
        let mut conn = match self.take_idle() {
            Some(c) => c,
            None => self.dial().await?,
        };
        let req_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode_frame(&RequestRef { req_id, body }, body.size_hint())?;
        if frame.len() - 4 > MAX_FRAME {
            return Err(ProxyError::Protocol(format!(
                "request of {} bytes, over the frame limit of {MAX_FRAME}",
                frame.len() - 4
            )));
        }
        wire::write_with_tail(&mut conn, &frame, tail.map_or(&[][..], |t| &t[..])).await?;
        drop(frame);
        let resp: Response = wire::read_frame(&mut conn, MAX_FRAME)
            .await?
            .ok_or_else(|| {
                ProxyError::Unavailable(format!("proxy {} closed the connection", self.addr))
            })?;
        if resp.req_id != req_id {
            return Err(ProxyError::Protocol(format!(
                "answer to request {} where {req_id} was expected",
                resp.req_id
            )));
        }
        let data = match resp.body {
            FromProxy::Value { len: Some(len) } => {
                let len = wire::tail_len(len)?;
                Some(Bytes::from(wire::read_tail(&mut conn, len).await?))
            }
            _ => None,
        };
        self.release(conn);
        Ok((resp.body, data))
    }

    /// An idle connection that the proxy has not closed meanwhile.
    fn take_idle(&self) -> Option<TcpStream> {
        loop {
            let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            // Between requests a healthy connection has nothing to read. End of stream, stray
            // bytes or an error mean it is unusable.
            match conn.try_read(&mut [0u8; 1]) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(conn),
                _ => {} // dropped
            }
        }
    }

    fn objects(&self) -> Arc<Objects> {
        self.objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes in what a handshake said about objects.
    fn learn(&self, offer: &ObjectsOffer) {
        let local = match (&offer.shared_dir, &offer.probe) {
            (Some(dir), Some(probe)) if self.config.share_host_objects => {
                SharedDir::open(std::path::Path::new(dir), probe)
            }
            _ => None,
        };
        let objects = Objects {
            max_object: match offer.max_object {
                0 => MAX_OBJECT,
                n => (n as usize).min(MAX_OBJECT),
            },
            kept: offer.kept,
            local,
        };
        *self.objects.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(objects);
    }

    fn release(&self, conn: TcpStream) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }

    /// A new connection, past the handshake.
    async fn dial(&self) -> ProxyResult<TcpStream> {
        let handshake = async {
            let addr = self.addr.clone();
            let mut conn = self
                .dialer
                .spawn(async move { TcpStream::connect(addr).await })
                .await
                .map_err(|e| ProxyError::Unavailable(format!("dialing proxy {}: {e}", self.addr)))?
                .map_err(|e| {
                    ProxyError::Unavailable(format!("cannot connect to proxy {}: {e}", self.addr))
                })?;
            conn.set_nodelay(true).ok();
            wire::write_frame(&mut conn, &ClientHello::new(self.token.clone())).await?;
            let hello: ServerHello =
                wire::read_frame(&mut conn, MAX_HELLO)
                    .await?
                    .ok_or_else(|| {
                        ProxyError::Unavailable(format!(
                            "proxy {} closed the connection during the handshake",
                            self.addr
                        ))
                    })?;
            hello.check(PROTOCOL_VERSION)?;
            self.learn(&hello.objects);
            Ok(conn)
        };
        match tokio::time::timeout(self.config.connect_timeout, handshake).await {
            Ok(r) => r,
            Err(_) => Err(ProxyError::Unavailable(format!(
                "no handshake from proxy {} within {} ms",
                self.addr,
                self.config.connect_timeout.as_millis()
            ))),
        }
    }
}

fn unexpected(request: &str, got: &FromProxy) -> ProxyError {
    let what = match got {
        FromProxy::Done => "Done",
        FromProxy::Value { .. } => "Value",
        FromProxy::FanOut(_) => "FanOut",
        FromProxy::Pong => "Pong",
        FromProxy::Error { .. } => "Error",
    };
    ProxyError::Protocol(format!("proxy answered {what} to {request}"))
}

impl Proxy for RemoteProxy {
    async fn put_object(&self, key: &ObjectKey, data: Bytes) -> ProxyResult<()> {
        let objects = self.pool.objects();
        if data.len() > objects.max_object {
            return Err(StoreError::TooLarge {
                key: key.to_string(),
                size: data.len(),
                max: objects.max_object,
            }
            .into());
        }
        if let Some(dir) = objects.local.clone() {
            let (k, d) = (key.clone(), data.clone());
            // A key the directory does not keep, or a failed write, goes to the proxy.
            if let Ok(true) = self.blocking(move || dir.put(&k, &d)).await {
                return Ok(());
            }
        }
        let body = ToProxy::Put {
            key: key.clone(),
            len: data.len() as u64,
        };
        match self.exchange(&body, Some(&data), true).await?.0 {
            FromProxy::Done => Ok(()),
            other => Err(unexpected("Put", &other)),
        }
    }

    async fn get_object(&self, key: &ObjectKey) -> ProxyResult<Option<Bytes>> {
        if let Some(dir) = self.pool.objects().local.clone() {
            let k = key.clone();
            // Not there (another host wrote it, or it went through the proxy): ask.
            if let Ok(Some(data)) = self.blocking(move || dir.get(&k)).await {
                return Ok(Some(data));
            }
        }
        match self
            .exchange(&ToProxy::Get { key: key.clone() }, None, true)
            .await?
        {
            (FromProxy::Value { .. }, data) => Ok(data),
            (other, _) => Err(unexpected("Get", &other)),
        }
    }

    async fn delete_object(&self, key: &ObjectKey) -> ProxyResult<()> {
        match self
            .call(&ToProxy::Delete { key: key.clone() }, true)
            .await?
        {
            FromProxy::Done => Ok(()),
            other => Err(unexpected("Delete", &other)),
        }
    }

    async fn discard_object(&self, key: &ObjectKey) -> ProxyResult<()> {
        let objects = self.pool.objects();
        if let Some(dir) = objects.local.clone() {
            let k = key.clone();
            if self.blocking(move || dir.remove(&k)).await.is_ok() {
                return Ok(());
            }
        }
        if !objects.kept {
            return Ok(());
        }
        match self
            .call(&ToProxy::Discard { key: key.clone() }, true)
            .await?
        {
            FromProxy::Done => Ok(()),
            other => Err(unexpected("Discard", &other)),
        }
    }

    async fn fan_out(&self, req: FanOutRequest) -> ProxyResult<FanOutReply> {
        match self.call(&ToProxy::FanOut(req), false).await? {
            FromProxy::FanOut(reply) => Ok(reply),
            other => Err(unexpected("FanOut", &other)),
        }
    }

    async fn prefetch_plan(&self, job: &JobId) -> ProxyResult<()> {
        let req = ToProxy::Prefetch { job: job.clone() };
        match self.call(&req, true).await? {
            FromProxy::Done => Ok(()),
            other => Err(unexpected("Prefetch", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}

    #[test]
    fn remote_proxy_is_shareable() {
        assert_shareable::<RemoteProxy>();
    }

    #[tokio::test]
    async fn no_proxy_is_unavailable_quickly() {
        // Bind then drop, so the port is very likely closed.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = RemoteProxy::connect(addr.to_string(), None, RemoteConfig::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ProxyError::Unavailable(_)), "{err}");
        assert!(err.is_retryable());
    }
}

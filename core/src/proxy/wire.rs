//! The proxy's TCP protocol, shared by the server (`rukong-kvstore-proxy`) and the client
//! ([`super::remote::RemoteProxy`]).
//!
//! **Frames.** Every message is one frame: a `u32` big-endian body length, then the body in
//! MessagePack with named fields ([`rmp_serde::to_vec_named`]'s encoding). A declared length
//! over the reader's limit ([`MAX_FRAME`], [`MAX_HELLO`] during the handshake) is a protocol
//! error: the reader closes the connection without allocating it.
//!
//! **Handshake.** The client's first frame is a [`ClientHello`]; the server answers a
//! [`ServerHello`] and closes the connection unless it accepted. A protocol version mismatch
//! becomes [`ProxyError::VersionMismatch`], a refused token [`ProxyError::Unauthorized`];
//! neither is retried.
//!
//! **Requests.** Then the client sends [`Request`]s (a [`ToProxy`] with a `req_id`) and the
//! server answers each with a [`Response`] (a [`FromProxy`] with the same `req_id`), in
//! order.
//!
//! **Objects travel raw.** An object's bytes are never inside a frame: a
//! [`ToProxy::Put`] frame, and a [`FromProxy::Value`] frame of an object that exists, are
//! followed on the connection by exactly the `len` bytes they declare, as they are. Either
//! side moves them in chunks ([`read_tail`], [`skip_tail`], or straight from a file), so
//! no side encodes, decodes or buffers a whole frame of them. A declared length over
//! [`MAX_OBJECT`] is a protocol error: the connection is closed, since its tail cannot be
//! skipped. The protocol grows additively: a request whose body this build cannot decode is
//! answered with an [`ErrorKind::Protocol`] error, and the connection stays usable.

use super::{FanOutReply, FanOutRequest, ProxyError};
use crate::error::StoreError;
use crate::ids::JobId;
use crate::messages::ObjectKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest object that travels through the proxy, in bytes.
pub const MAX_OBJECT: usize = 64 << 20;
/// The largest frame body either side reads after the handshake (objects travel after their
/// frame, not in it; this bounds a fan-out request of a million children and its payload).
pub const MAX_FRAME: usize = MAX_OBJECT + (1 << 20);
/// The largest handshake frame.
pub const MAX_HELLO: usize = 64 << 10;
/// Frame bodies and object tails are read in steps of this size (at first, then doubling),
/// so a peer that declares a large frame and sends nothing does not make the reader
/// allocate it.
const READ_STEP: usize = 1 << 20;

/// The client's first frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    pub protocol: u32,
    /// The shared secret, when the proxy requires one.
    pub token: Option<String>,
}

/// The server's answer to a [`ClientHello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// The version the server speaks, whatever the client sent.
    pub protocol: u32,
    pub accepted: bool,
    /// Why the connection was refused.
    pub reason: Option<String>,
    /// Where the proxy keeps objects (on an accepted connection).
    #[serde(default)]
    pub objects: ObjectsOffer,
}

/// What an accepted client learns about where the proxy keeps objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectsOffer {
    /// The largest object the proxy accepts, in bytes (0: [`MAX_OBJECT`]).
    pub max_object: u64,
    /// The proxy keeps objects outside the store (its memory, or `shared_dir`), so a
    /// released object is discarded there too ([`ToProxy::Discard`]).
    pub kept: bool,
    /// A directory of objects ([`super::shared::SharedDir`]) that a client on the proxy's
    /// host may read and write directly, and the nonce its probe file holds.
    pub shared_dir: Option<String>,
    pub probe: Option<String>,
}

impl ClientHello {
    /// This build's hello.
    pub fn new(token: Option<String>) -> Self {
        ClientHello {
            protocol: crate::messages::PROTOCOL_VERSION,
            token,
        }
    }

    /// The server's answer, for a server that speaks [`crate::messages::PROTOCOL_VERSION`]
    /// and requires `token` (when it is set).
    pub fn answer(&self, token: Option<&str>) -> ServerHello {
        let ours = crate::messages::PROTOCOL_VERSION;
        let reason = if self.protocol != ours {
            Some(format!(
                "protocol version mismatch: client speaks {}, proxy speaks {ours}",
                self.protocol
            ))
        } else {
            match (token, self.token.as_deref()) {
                (None, _) => None,
                (Some(_), None) => Some("the proxy requires a token and none was sent".into()),
                (Some(want), Some(got)) if !same_secret(want, got) => {
                    Some("the proxy refused the token".into())
                }
                (Some(_), Some(_)) => None,
            }
        };
        ServerHello {
            protocol: ours,
            accepted: reason.is_none(),
            reason,
            objects: ObjectsOffer::default(),
        }
    }
}

impl ServerHello {
    /// The client's verdict on the answer, for a client that speaks `ours`.
    pub fn check(&self, ours: u32) -> Result<(), ProxyError> {
        if self.protocol != ours {
            return Err(ProxyError::VersionMismatch {
                ours,
                theirs: self.protocol,
            });
        }
        if !self.accepted {
            return Err(ProxyError::Unauthorized(
                self.reason
                    .clone()
                    .unwrap_or_else(|| "the proxy refused the connection".into()),
            ));
        }
        Ok(())
    }
}

/// Compares secrets in time that depends on their lengths only.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request and the id its response carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub req_id: u64,
    pub body: ToProxy,
}

/// Just the id of a request: enough to answer one whose body this build cannot decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct RequestId {
    pub req_id: u64,
}

/// A response, carrying its request's id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub req_id: u64,
    pub body: FromProxy,
}

/// Requests, client to proxy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToProxy {
    /// Store an object whole: the frame is followed by its `len` bytes, raw (see the module
    /// doc); answered [`FromProxy::Done`] once all of them arrived and were stored.
    Put { key: ObjectKey, len: u64 },
    /// Answered [`FromProxy::Value`].
    Get { key: ObjectKey },
    /// Answered [`FromProxy::Done`] (also when there was no such object).
    Delete { key: ObjectKey },
    /// Drop the proxy's own copy of a released object, keeping the store's tombstone
    /// ([`super::Proxy::discard_object`]); answered [`FromProxy::Done`].
    Discard { key: ObjectKey },
    /// Answered [`FromProxy::FanOut`].
    FanOut(FanOutRequest),
    /// Answered [`FromProxy::Pong`].
    Ping,
    /// Load a job's plan in the background ([`super::Proxy::prefetch_plan`]); answered
    /// [`FromProxy::Done`] at once.
    Prefetch { job: JobId },
}

/// Responses, proxy to client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromProxy {
    Done,
    /// The answer to a get: `Some(len)` when the object exists, and then the frame is
    /// followed by its `len` bytes, raw; `None` when it does not.
    Value {
        len: Option<u64>,
    },
    FanOut(FanOutReply),
    Pong,
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// What went wrong with a request, with what the client needs to rebuild the error.
/// `Unavailable` and `Timeout` are retryable; the others are not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The store behind the proxy is unavailable.
    Unavailable,
    /// The store behind the proxy timed out.
    Timeout {
        ms: u64,
    },
    UnknownJob {
        job: JobId,
    },
    Corrupt {
        key: String,
    },
    TooLarge {
        key: String,
        size: u64,
        max: u64,
    },
    /// The request made no sense to the proxy (an unknown request, a task out of range).
    Protocol,
}

impl ErrorKind {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Timeout { .. })
    }

    /// Rebuilds the error the proxy met.
    pub fn into_error(self, message: String) -> ProxyError {
        match self {
            ErrorKind::Unavailable => StoreError::Unavailable(message).into(),
            ErrorKind::Timeout { ms } => StoreError::Timeout { ms }.into(),
            ErrorKind::UnknownJob { job } => StoreError::UnknownJob(job).into(),
            ErrorKind::Corrupt { key } => StoreError::Corrupt { key, message }.into(),
            ErrorKind::TooLarge { key, size, max } => StoreError::TooLarge {
                key,
                size: size as usize,
                max: max as usize,
            }
            .into(),
            ErrorKind::Protocol => ProxyError::Protocol(message),
        }
    }
}

impl FromProxy {
    /// The response that carries `e` to the client.
    pub fn error(e: &ProxyError) -> FromProxy {
        let (kind, message) = match e {
            ProxyError::Store(s) => match s {
                StoreError::Unavailable(m) => (ErrorKind::Unavailable, m.clone()),
                StoreError::Timeout { ms } => (ErrorKind::Timeout { ms: *ms }, s.to_string()),
                StoreError::UnknownJob(job) => {
                    (ErrorKind::UnknownJob { job: job.clone() }, s.to_string())
                }
                StoreError::Corrupt { key, message } => {
                    (ErrorKind::Corrupt { key: key.clone() }, message.clone())
                }
                StoreError::TooLarge { key, size, max } => (
                    ErrorKind::TooLarge {
                        key: key.clone(),
                        size: *size as u64,
                        max: *max as u64,
                    },
                    s.to_string(),
                ),
            },
            ProxyError::Unavailable(m) => (ErrorKind::Unavailable, m.clone()),
            ProxyError::Protocol(m) => (ErrorKind::Protocol, m.clone()),
            ProxyError::VersionMismatch { .. } | ProxyError::Unauthorized(_) => {
                (ErrorKind::Protocol, e.to_string())
            }
        };
        FromProxy::Error { kind, message }
    }
}

impl ToProxy {
    /// About how many bytes the encoded request takes, to allocate its frame once.
    pub fn size_hint(&self) -> usize {
        match self {
            ToProxy::FanOut(f) => 256 + 24 * f.children.len(),
            _ => 128,
        }
    }
}

/// The length of an object tail as this side reads it: at most [`MAX_OBJECT`].
pub fn tail_len(len: u64) -> Result<usize, FrameError> {
    match usize::try_from(len) {
        Ok(n) if n <= MAX_OBJECT => Ok(n),
        _ => Err(FrameError::TooLarge {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            max: MAX_OBJECT,
        }),
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The connection failed or closed mid-frame.
    #[error("proxy connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("frame of {len} bytes, over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("cannot encode a frame: {0}")]
    Encode(String),
    #[error("cannot decode a frame: {0}")]
    Decode(String),
}

impl From<FrameError> for ProxyError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(_) => ProxyError::Unavailable(e.to_string()),
            _ => ProxyError::Protocol(e.to_string()),
        }
    }
}

/// Encodes `msg` as a whole frame (length prefix included), reserving `capacity` bytes.
pub fn encode_frame<T: Serialize>(msg: &T, capacity: usize) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(capacity.saturating_add(4));
    buf.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write_named(&mut buf, msg).map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = buf.len() - 4;
    let len32 = u32::try_from(len).map_err(|_| FrameError::TooLarge {
        len,
        max: u32::MAX as usize,
    })?;
    buf[..4].copy_from_slice(&len32.to_be_bytes());
    Ok(buf)
}

/// Decodes a frame body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    crate::msgpack::from_slice(body).map_err(|e| FrameError::Decode(e.to_string()))
}

/// Writes an encoded frame and flushes it.
pub async fn write_encoded<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &[u8],
) -> Result<(), FrameError> {
    write_with_tail(w, frame, &[]).await
}

/// Encodes `msg` and writes it as one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), FrameError> {
    write_encoded(w, &encode_frame(msg, 128)?).await
}

/// Reads one frame body of at most `max` bytes; `None` when the peer closed the connection
/// between frames. Not cancel safe: a cancelled read leaves the stream mid-frame, so the
/// connection must be dropped.
pub async fn read_frame_bytes<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; 4];
    let n = r.read(&mut header).await?;
    if n == 0 {
        return Ok(None);
    }
    r.read_exact(&mut header[n..]).await?;
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    read_tail(r, len).await.map(Some)
}

/// Reads exactly `len` bytes (a frame body, an object's tail), allocating as they arrive.
/// Not cancel safe, like [`read_frame_bytes`].
pub async fn read_tail<R: AsyncRead + Unpin>(r: &mut R, len: usize) -> Result<Vec<u8>, FrameError> {
    let mut body = Vec::with_capacity(len.min(READ_STEP));
    while body.len() < len {
        let have = body.len();
        if body.capacity() == have {
            body.reserve_exact((len - have).min(READ_STEP.max(have)));
        }
        // Straight into the spare capacity: no zeroing, no copy.
        let room = (len - have).min(body.capacity() - have);
        if (&mut *r).take(room as u64).read_buf(&mut body).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the connection closed {} bytes short", len - have),
            )
            .into());
        }
    }
    Ok(body)
}

/// Reads and drops exactly `len` bytes (the tail of a put that is refused), keeping the
/// connection in step.
pub async fn skip_tail<R: AsyncRead + Unpin>(r: &mut R, len: usize) -> Result<(), FrameError> {
    let mut buf = vec![0u8; len.min(crate::chunks::CHUNK)];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        r.read_exact(&mut buf[..n]).await?;
        left -= n;
    }
    Ok(())
}

/// Writes an encoded header frame and the raw tail that follows it, and flushes.
pub async fn write_with_tail<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &[u8],
    tail: &[u8],
) -> Result<(), FrameError> {
    w.write_all(frame).await?;
    w.write_all(tail).await?;
    w.flush().await?;
    Ok(())
}

/// Reads and decodes one frame; `None` when the peer closed the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
    max: usize,
) -> Result<Option<T>, FrameError> {
    match read_frame_bytes(r, max).await? {
        Some(body) => decode(&body).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::PROTOCOL_VERSION;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let req = Request {
            req_id: 7,
            body: ToProxy::FanOut(FanOutRequest {
                job: JobId::new("j"),
                parent: crate::ids::TaskIdx(0),
                payload: crate::messages::Payload::Inline(crate::value::Value::Bytes(
                    vec![5u8; 3 << 20].into(),
                )),
                children: Vec::new(),
            }),
        };
        let frame = encode_frame(&req, 4 << 20).unwrap();
        let mut r = &frame[..];
        let got: Request = read_frame(&mut r, MAX_FRAME).await.unwrap().unwrap();
        assert_eq!(got, req);
        assert!(
            read_frame::<_, Request>(&mut r, MAX_FRAME)
                .await
                .unwrap()
                .is_none()
        );

        let mut r = &frame[..];
        let err = read_frame::<_, Request>(&mut r, 1 << 20).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        let mut r = &frame[..frame.len() - 1];
        let err = read_frame::<_, Request>(&mut r, MAX_FRAME)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Io(_)), "{err}");
        assert!(ProxyError::from(err).is_retryable());

        for body in [
            ToProxy::Ping,
            ToProxy::Get {
                key: ObjectKey::new("x"),
            },
        ] {
            let mut buf = Vec::new();
            write_frame(
                &mut buf,
                &Request {
                    req_id: 1,
                    body: body.clone(),
                },
            )
            .await
            .unwrap();
            let got: Request = read_frame(&mut &buf[..], MAX_FRAME).await.unwrap().unwrap();
            assert_eq!(got.body, body);
        }
    }

    #[tokio::test]
    async fn an_object_travels_raw_after_its_frame() {
        let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
        let put = Request {
            req_id: 3,
            body: ToProxy::Put {
                key: ObjectKey::new("k"),
                len: data.len() as u64,
            },
        };
        let mut wire = Vec::new();
        write_with_tail(&mut wire, &encode_frame(&put, 128).unwrap(), &data)
            .await
            .unwrap();
        assert!(wire.len() < data.len() + 64, "the object is not re-encoded");
        // Twice over: once read, once skipped, and the stream stays in step.
        wire.extend_from_within(..);
        let mut r = &wire[..];
        for read in [true, false] {
            let got: Request = read_frame(&mut r, MAX_FRAME).await.unwrap().unwrap();
            assert_eq!(got, put);
            let ToProxy::Put { len, .. } = got.body else {
                unreachable!()
            };
            let len = tail_len(len).unwrap();
            if read {
                assert_eq!(read_tail(&mut r, len).await.unwrap(), data);
            } else {
                skip_tail(&mut r, len).await.unwrap();
            }
        }
        assert!(r.is_empty());
        // A cut tail is a failed connection; an oversized one is refused unread.
        let cut = &wire[..wire.len() / 2 - 10];
        let mut r = cut;
        let _: Request = read_frame(&mut r, MAX_FRAME).await.unwrap().unwrap();
        let err = read_tail(&mut r, data.len()).await.unwrap_err();
        assert!(matches!(err, FrameError::Io(_)), "{err}");
        assert!(tail_len(MAX_OBJECT as u64).is_ok());
        for len in [MAX_OBJECT as u64 + 1, u64::MAX] {
            assert!(matches!(tail_len(len), Err(FrameError::TooLarge { .. })));
        }
    }

    #[test]
    fn an_unknown_request_still_yields_its_id() {
        #[derive(Serialize)]
        enum Newer {
            Compact { level: u32 },
        }
        #[derive(Serialize)]
        struct NewerRequest {
            req_id: u64,
            body: Newer,
        }
        let frame = encode_frame(
            &NewerRequest {
                req_id: 42,
                body: Newer::Compact { level: 3 },
            },
            64,
        )
        .unwrap();
        assert!(decode::<Request>(&frame[4..]).is_err());
        assert_eq!(decode::<RequestId>(&frame[4..]).unwrap().req_id, 42);
    }

    #[test]
    fn handshake_answers() {
        let ok = ClientHello::new(Some("s3cret".into()));
        assert!(ok.answer(Some("s3cret")).check(PROTOCOL_VERSION).is_ok());
        assert!(ok.answer(None).check(PROTOCOL_VERSION).is_ok());
        let bad = ClientHello::new(Some("guess".into())).answer(Some("s3cret"));
        let err = bad.check(PROTOCOL_VERSION).unwrap_err();
        assert!(matches!(err, ProxyError::Unauthorized(_)) && !err.is_retryable());
        let none = ClientHello::new(None).answer(Some("s3cret"));
        assert!(matches!(
            none.check(PROTOCOL_VERSION),
            Err(ProxyError::Unauthorized(_))
        ));
        let newer = ClientHello {
            protocol: PROTOCOL_VERSION + 1,
            token: None,
        };
        let answer = newer.answer(None);
        assert!(!answer.accepted);
        assert_eq!(
            answer.check(PROTOCOL_VERSION + 1),
            Err(ProxyError::VersionMismatch {
                ours: PROTOCOL_VERSION + 1,
                theirs: PROTOCOL_VERSION
            })
        );
    }

    #[test]
    fn errors_keep_their_kind_and_retryability() {
        let errors: Vec<ProxyError> = vec![
            StoreError::Unavailable("down".into()).into(),
            StoreError::Timeout { ms: 5 }.into(),
            StoreError::UnknownJob(JobId::new("j")).into(),
            StoreError::Corrupt {
                key: "k".into(),
                message: "bad".into(),
            }
            .into(),
            StoreError::TooLarge {
                key: "k".into(),
                size: 10,
                max: 5,
            }
            .into(),
            ProxyError::Protocol("what".into()),
        ];
        for e in errors {
            let FromProxy::Error { kind, message } = FromProxy::error(&e) else {
                panic!("an error response");
            };
            assert_eq!(kind.is_retryable(), e.is_retryable());
            let buf = encode_frame(&FromProxy::Error { kind, message }, 64).unwrap();
            let FromProxy::Error { kind, message } = decode(&buf[4..]).unwrap() else {
                panic!("an error response");
            };
            assert_eq!(kind.into_error(message), e);
        }
    }
}

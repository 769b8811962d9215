//! The handshake, and peers that do not speak the protocol.

mod common;

use common::{TestServer, remote_config, server_config, within};
use rukong_core::messages::PROTOCOL_VERSION;
use rukong_core::proxy::remote::RemoteProxy;
use rukong_core::proxy::wire::{
    self, ClientHello, ErrorKind, FromProxy, MAX_FRAME, MAX_HELLO, Response, ServerHello,
};
use rukong_core::proxy::{Proxy, ProxyError};
use rukong_core::store::memory::MemoryStore;
use rukong_kvstore_proxy::ServerConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn server() -> TestServer {
    TestServer::start(Arc::new(MemoryStore::new()), server_config()).await
}

/// Whether the server closed `conn`: it reads to the end without a byte (or a reset).
async fn closed_by_server(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match within("the server closing", conn.read(&mut buf)).await {
        Ok(n) => n == 0,
        Err(_) => true,
    }
}

#[tokio::test]
async fn a_client_of_another_version_is_refused() {
    let server = server().await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    let hello = ClientHello {
        protocol: PROTOCOL_VERSION + 1,
        token: None,
    };
    wire::write_frame(&mut conn, &hello).await.unwrap();
    let answer: ServerHello = wire::read_frame(&mut conn, MAX_HELLO)
        .await
        .unwrap()
        .unwrap();
    assert!(!answer.accepted);
    assert_eq!(answer.protocol, PROTOCOL_VERSION);
    let err = answer.check(PROTOCOL_VERSION + 1).unwrap_err();
    assert_eq!(
        err,
        ProxyError::VersionMismatch {
            ours: PROTOCOL_VERSION + 1,
            theirs: PROTOCOL_VERSION
        }
    );
    assert!(!err.is_retryable());
    assert!(closed_by_server(&mut conn).await);
    server.stop().await;
}

#[tokio::test]
async fn a_proxy_of_another_version_is_a_version_mismatch() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let _: ClientHello = wire::read_frame(&mut conn, MAX_HELLO)
            .await
            .unwrap()
            .unwrap();
        let answer = ServerHello {
            protocol: PROTOCOL_VERSION + 1,
            accepted: false,
            reason: Some("newer".into()),
            objects: Default::default(),
        };
        wire::write_frame(&mut conn, &answer).await.unwrap();
    });
    let err = within(
        "connect",
        RemoteProxy::connect(addr.to_string(), None, remote_config()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        ProxyError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: PROTOCOL_VERSION + 1
        }
    );
    assert!(!err.is_retryable());
    fake.await.unwrap();
}

#[tokio::test]
async fn tokens_are_checked() {
    let config = ServerConfig {
        token: Some("s3cret".into()),
        ..server_config()
    };
    let server = TestServer::start(Arc::new(MemoryStore::new()), config).await;
    let connect = |token: Option<&str>| {
        RemoteProxy::connect(
            server.addr.to_string(),
            token.map(String::from),
            remote_config(),
        )
    };
    for token in [Some("guess"), Some(""), None] {
        let err = within("connect", connect(token)).await.unwrap_err();
        assert!(
            matches!(err, ProxyError::Unauthorized(_)),
            "{token:?}: {err:?}"
        );
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("authentication failed"), "{err}");
    }
    let proxy = within("connect", connect(Some("s3cret"))).await.unwrap();
    proxy.ping().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn garbage_closes_that_connection_only() {
    let server = server().await;
    let proxy = server.client(None).await;

    // Not the protocol at all: "GET " declares a frame of over a gigabyte.
    let mut http = TcpStream::connect(server.addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut http).await);

    // A good handshake, then an oversized length prefix.
    let mut big = server.raw_client().await;
    big.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert!(closed_by_server(&mut big).await);
    let mut just_over = server.raw_client().await;
    just_over
        .write_all(&((MAX_FRAME + 1) as u32).to_be_bytes())
        .await
        .unwrap();
    assert!(closed_by_server(&mut just_over).await);

    // A frame of the right size holding no MessagePack request.
    let mut junk = server.raw_client().await;
    junk.write_all(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1])
        .await
        .unwrap();
    assert!(closed_by_server(&mut junk).await);

    proxy.ping().await.unwrap();
    proxy
        .put_object(&rukong_core::messages::ObjectKey::new("k"), "v".into())
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_request_is_answered_and_the_connection_stays() {
    // `{req_id: 9, body: {Compact: {level: 1}}}` in MessagePack: a request that a newer
    // client might send.
    let mut body = vec![0x82, 0xa6];
    body.extend_from_slice(b"req_id");
    body.extend_from_slice(&[0x09, 0xa4]);
    body.extend_from_slice(b"body");
    body.extend_from_slice(&[0x81, 0xa7]);
    body.extend_from_slice(b"Compact");
    body.extend_from_slice(&[0x81, 0xa5]);
    body.extend_from_slice(b"level");
    body.push(0x01);
    let server = server().await;
    let mut conn = server.raw_client().await;
    conn.write_all(&(body.len() as u32).to_be_bytes())
        .await
        .unwrap();
    conn.write_all(&body).await.unwrap();
    let resp: Response = wire::read_frame(&mut conn, MAX_FRAME)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.req_id, 9);
    assert!(matches!(
        resp.body,
        FromProxy::Error {
            kind: ErrorKind::Protocol,
            ..
        }
    ));
    let ping = wire::Request {
        req_id: 10,
        body: wire::ToProxy::Ping,
    };
    wire::write_frame(&mut conn, &ping).await.unwrap();
    let resp: Response = wire::read_frame(&mut conn, MAX_FRAME)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((resp.req_id, resp.body), (10, FromProxy::Pong));
    server.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let config = ServerConfig {
        handshake_timeout: Duration::from_millis(200),
        ..server_config()
    };
    let server = TestServer::start(Arc::new(MemoryStore::new()), config).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed_by_server(&mut silent).await);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_the_client_reconnects() {
    let config = ServerConfig {
        idle_timeout: Duration::from_millis(200),
        ..server_config()
    };
    let server = TestServer::start(Arc::new(MemoryStore::new()), config).await;
    let proxy = server.client(None).await;
    let mut idle = server.raw_client().await;
    assert!(closed_by_server(&mut idle).await);
    // The pooled connection was closed the same way; the next request dials again.
    proxy.ping().await.unwrap();
    server.stop().await;
}

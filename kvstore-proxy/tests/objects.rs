//! Objects through the TCP proxy: round trips, limits, concurrency, a dead proxy and a
//! proxy killed mid-put.

mod common;

use bytes::Bytes;
use common::{TEST_MAX_OBJECT, TestServer, server_config, within};
use rukong_core::error::StoreError;
use rukong_core::messages::ObjectKey;
use rukong_core::proxy::wire::{self, MAX_OBJECT, Request};
use rukong_core::proxy::{Proxy, ProxyError};
use rukong_core::store::ObjectStore;
use rukong_core::store::memory::MemoryStore;
use rukong_kvstore_proxy::ObjectBackend;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn blob(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

fn store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::with_max_object(TEST_MAX_OBJECT))
}

#[tokio::test]
async fn objects_round_trip() {
    let server = TestServer::start(store(), server_config()).await;
    let proxy = server.client(None).await;
    let key = |s: &str| ObjectKey::new(format!("rk:{{j}}:obj:{s}"));

    for (name, data) in [
        ("small", blob(1000, 1)),
        ("empty", Bytes::new()),
        ("big", blob(20 << 20, 2)),
    ] {
        within("put", proxy.put_object(&key(name), data.clone()))
            .await
            .unwrap();
        let got = within("get", proxy.get_object(&key(name))).await.unwrap();
        assert_eq!(got.as_ref(), Some(&data), "{name}");
        // The server stored it in the store's object API.
        let stored = server.store.get_object(&key(name)).await.unwrap();
        assert_eq!(stored.as_ref(), Some(&data), "{name}");
    }
    assert_eq!(proxy.get_object(&key("missing")).await.unwrap(), None);

    proxy.delete_object(&key("big")).await.unwrap();
    assert_eq!(proxy.get_object(&key("big")).await.unwrap(), None);
    proxy.delete_object(&key("big")).await.unwrap(); // deleting nothing is fine
    assert_eq!(server.store.object_count(), 2);
    server.stop().await;
}

#[tokio::test]
async fn over_limit_puts_are_too_large_and_the_connection_keeps_working() {
    let server = TestServer::start(store(), server_config()).await;
    let proxy = server.client(None).await;
    let key = ObjectKey::new("huge");

    // Over the proxy's limit: the client learnt it in the handshake and refuses to send.
    for len in [TEST_MAX_OBJECT + 1, MAX_OBJECT + 1] {
        let err = proxy
            .put_object(&key, Bytes::from(vec![0u8; len]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                ProxyError::Store(StoreError::TooLarge { size, max, .. })
                    if *size == len && *max == TEST_MAX_OBJECT
            ),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }

    // Sent anyway (a client that ignores the limit): refused by the server, and the
    // connection stays in step.
    let mut conn = server.raw_client().await;
    conn.write_all(&put_frame(&key, blob(TEST_MAX_OBJECT + 1, 3)))
        .await
        .unwrap();
    let resp: wire::Response = wire::read_frame(&mut conn, wire::MAX_FRAME)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            &resp.body,
            wire::FromProxy::Error { kind: wire::ErrorKind::TooLarge { max, .. }, .. }
                if *max == TEST_MAX_OBJECT as u64
        ),
        "{resp:?}"
    );
    let ping = Request {
        req_id: 2,
        body: wire::ToProxy::Ping,
    };
    wire::write_frame(&mut conn, &ping).await.unwrap();
    let pong: wire::Response = wire::read_frame(&mut conn, wire::MAX_FRAME)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pong.body, wire::FromProxy::Pong);

    proxy.ping().await.unwrap();
    proxy.put_object(&key, blob(10, 4)).await.unwrap();
    assert_eq!(proxy.get_object(&key).await.unwrap(), Some(blob(10, 4)));
    server.stop().await;
}

#[tokio::test]
async fn the_memory_backend_keeps_objects_in_the_proxy() {
    let config = rukong_kvstore_proxy::ServerConfig {
        objects: ObjectBackend::Memory,
        ..server_config()
    };
    let server = TestServer::start(store(), config).await;
    let proxy = server.client(None).await;
    let key = ObjectKey::new("m");
    proxy.put_object(&key, blob(5000, 5)).await.unwrap();
    assert_eq!(proxy.get_object(&key).await.unwrap(), Some(blob(5000, 5)));
    assert_eq!(server.store.object_count(), 0, "not in the store");
    let err = proxy
        .put_object(&key, blob(TEST_MAX_OBJECT + 1, 6))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ProxyError::Store(StoreError::TooLarge { .. })
    ));
    proxy.delete_object(&key).await.unwrap();
    assert_eq!(proxy.get_object(&key).await.unwrap(), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_one_remote_proxy() {
    let server = TestServer::start(store(), server_config()).await;
    let proxy = server.client(None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64usize {
        let proxy = proxy.clone();
        tasks.spawn(async move {
            let key = ObjectKey::new(format!("k{i}"));
            let data = blob(1 + i * 997, i as u8);
            for _ in 0..5 {
                proxy.put_object(&key, data.clone()).await?;
                assert_eq!(proxy.get_object(&key).await?, Some(data.clone()));
            }
            Ok::<_, ProxyError>(())
        });
    }
    within("64 tasks", async {
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
    })
    .await;
    assert_eq!(server.store.object_count(), 64);
    server.stop().await;
}

#[tokio::test]
async fn a_dead_proxy_is_unavailable_and_a_restarted_one_is_reconnected() {
    let store = store();
    let server = TestServer::start(store.clone(), server_config()).await;
    let addr = server.addr;
    let proxy = server.client(None).await;
    let key = ObjectKey::new("survives");
    proxy.put_object(&key, blob(100, 7)).await.unwrap();
    server.stop().await;

    let started = Instant::now();
    let err = within("a request to a dead proxy", proxy.get_object(&key))
        .await
        .unwrap_err();
    assert!(matches!(err, ProxyError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < common::remote_config().request_timeout,
        "failed within the request timeout: {:?}",
        started.elapsed()
    );
    let err = proxy.ping().await.unwrap_err();
    assert!(matches!(err, ProxyError::Unavailable(_)), "{err:?}");

    let server = TestServer::start_on(addr, store, server_config()).await;
    let got = within("a request after the restart", proxy.get_object(&key)).await;
    assert_eq!(got.unwrap(), Some(blob(100, 7)));
    server.stop().await;
}

/// What a put of `data` at `key` sends: its frame, then the object's bytes.
fn put_frame(key: &ObjectKey, data: Bytes) -> Vec<u8> {
    let req = Request {
        req_id: 1,
        body: wire::ToProxy::Put {
            key: key.clone(),
            len: data.len() as u64,
        },
    };
    let mut sent = wire::encode_frame(&req, data.len() + 128).unwrap();
    sent.extend_from_slice(&data);
    sent
}

#[tokio::test]
async fn a_proxy_shut_down_mid_put_stores_nothing() {
    let store = store();
    let server = TestServer::start(store.clone(), server_config()).await;
    let addr = server.addr;
    let key = ObjectKey::new("partial");
    let frame = put_frame(&key, blob(32 << 20, 8));
    let mut conn = server.raw_client().await;
    conn.write_all(&frame[..frame.len() / 2]).await.unwrap();
    conn.flush().await.unwrap();
    // Let the server start reading the frame, then stop it: it must not wait for the rest.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no waiting for a partial request"
    );

    let server = TestServer::start_on(addr, store.clone(), server_config()).await;
    let proxy = server.client(None).await;
    assert_eq!(proxy.get_object(&key).await.unwrap(), None);
    assert_eq!(store.get_object(&key).await.unwrap(), None);
    assert_eq!(store.object_count(), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_client_dying_mid_put_stores_nothing() {
    let server = TestServer::start(store(), server_config()).await;
    let key = ObjectKey::new("partial");
    let frame = put_frame(&key, blob(32 << 20, 9));
    let mut conn = server.raw_client().await;
    conn.write_all(&frame[..frame.len() - 1]).await.unwrap();
    drop(conn);

    let proxy = server.client(None).await;
    proxy.ping().await.unwrap();
    assert_eq!(proxy.get_object(&key).await.unwrap(), None);
    assert_eq!(server.store.object_count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_raced_with_shutdown_stores_all_or_nothing() {
    let store = store();
    let server = TestServer::start(store.clone(), server_config()).await;
    let addr = server.addr;
    let proxy = server.client(None).await;
    let key = ObjectKey::new("raced");
    let data = blob(32 << 20, 10);
    let put = tokio::spawn({
        let (proxy, key, data) = (proxy.clone(), key.clone(), data.clone());
        async move { proxy.put_object(&key, data).await }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    server.stop().await;
    let put = within("the put", put).await.unwrap();

    let server = TestServer::start_on(addr, store.clone(), server_config()).await;
    let fresh = server.client(None).await;
    let got = fresh.get_object(&key).await.unwrap();
    match put {
        Ok(()) => assert_eq!(got, Some(data)),
        // Failed, or retried onto the restarted server: never a partial object.
        Err(e) => {
            assert!(e.is_retryable(), "{e:?}");
            assert!(got.is_none() || got == Some(data));
        }
    }
    server.stop().await;
}

//! Objects in Redis: chunked objects read whole or not at all, and released outputs.

use super::{raw, scan, store_for};
use bytes::Bytes;
use rukong_core::StoreError;
use rukong_core::ids::{JobId, TaskIdx};
use rukong_core::messages::ObjectKey;
use rukong_core::store::conformance::sample_plan;
use rukong_core::store::redis::{RedisConfig, RedisStore};
use rukong_core::store::{JobStore, ObjectStore, Release};
use rukong_core::testing::RedisServer;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunked_objects_are_whole_or_absent() {
    let server = RedisServer::start();
    let s = Arc::new(
        RedisStore::connect(RedisConfig {
            url: server.url(),
            chunk_size: 64 << 10,
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    let mut con = raw(&server.url()).await;
    let key = ObjectKey::new("big-object");
    let big: Bytes = (0..3u32 << 20)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    s.put_object(&key, big.clone()).await.unwrap();
    assert_eq!(s.get_object(&key).await.unwrap(), Some(big.clone()));
    assert_eq!(scan(&mut con, "{big-object}:v*").await.len(), 48);

    // Overwrites (of different sizes) and deletes race a reader.
    let a = Bytes::from(vec![1u8; 3 << 20]);
    let b = Bytes::from(vec![2u8; (5 << 19) + 7]);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s, key, a, b, done) = (s.clone(), key.clone(), a.clone(), b.clone(), done.clone());
        tokio::spawn(async move {
            let (mut whole, mut none, mut retried) = (0, 0, 0);
            while !done.load(Ordering::Acquire) {
                match s.get_object(&key).await {
                    Ok(Some(v)) => {
                        assert!(
                            v == a || v == b || v == big,
                            "partial or mixed object of {} bytes",
                            v.len()
                        );
                        whole += 1;
                    }
                    Ok(None) => none += 1,
                    Err(e) => {
                        assert!(e.is_retryable(), "{e}");
                        retried += 1;
                    }
                }
            }
            (whole, none, retried)
        })
    };
    for i in 0..40 {
        let v = if i % 2 == 0 { a.clone() } else { b.clone() };
        s.put_object(&key, v).await.unwrap();
        if i % 7 == 6 {
            s.delete_object(&key).await.unwrap();
        }
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::Release);
    let (whole, none, retried) = reader.await.unwrap();
    eprintln!("reader: {whole} whole, {none} none, {retried} retried");
    assert!(
        whole > 0,
        "the reader saw whole objects ({none} none, {retried} retried)"
    );
    // Every replaced version's chunks were freed.
    assert_eq!(
        scan(&mut con, "{big-object}:v*").await.len(),
        b.len().div_ceil(64 << 10)
    );
    s.delete_object(&key).await.unwrap();
    assert!(scan(&mut con, "*big-object*").await.is_empty());
    assert_eq!(s.get_object(&key).await.unwrap(), None);

    // Over the limit.
    let small = RedisStore::connect(RedisConfig {
        url: server.url(),
        max_object: 1000,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(matches!(
        small.put_object(&key, Bytes::from(vec![0u8; 1001])).await,
        Err(StoreError::TooLarge {
            size: 1001,
            max: 1000,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_chunked_output_leaves_only_its_tombstone() {
    let server = RedisServer::start();
    let s = store_for(server.url()).await;
    let mut con = raw(&server.url()).await;
    let plan = sample_plan(&format!("rel-{}", JobId::generate()));
    s.put_job(plan.clone()).await.unwrap();
    let key = ObjectKey::for_output(&plan.job, TaskIdx(0));
    s.put_object(&key, Bytes::from(vec![9u8; 5 << 20]))
        .await
        .unwrap();
    let chunks = format!("{key}:v*");
    assert!(
        scan(&mut con, &chunks).await.len() > 1,
        "a chunked object expected"
    );
    let rel = |reader| Release {
        producer: TaskIdx(0),
        reader: TaskIdx(reader),
        readers: 2,
    };
    s.release_outputs(&plan.job, &[rel(2)]).await.unwrap();
    let set = format!("{key}:rel");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&set)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(ttl > 0, "the reader set has no expiry ({ttl})");
    assert_eq!(
        s.release_outputs(&plan.job, &[rel(73)]).await.unwrap(),
        vec![TaskIdx(0)]
    );
    assert_eq!(scan(&mut con, &chunks).await, Vec::<String>::new());
    assert_eq!(scan(&mut con, &set).await, Vec::<String>::new());
    let left: Vec<u8> = redis::cmd("GET")
        .arg(key.as_str())
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(left, vec![0u8], "the tombstone is one inline byte");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(key.as_str())
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(ttl > 0, "the tombstone keeps the object's expiry ({ttl})");
    // A partial release's reader set goes with the job.
    let other = ObjectKey::for_output(&plan.job, TaskIdx(1));
    s.put_object(&other, Bytes::from_static(b"z"))
        .await
        .unwrap();
    s.release_outputs(
        &plan.job,
        &[Release {
            producer: TaskIdx(1),
            reader: TaskIdx(2),
            readers: 2,
        }],
    )
    .await
    .unwrap();
    s.delete_job(&plan.job).await.unwrap();
    let pattern = format!("rk:{{{}}}:*", plan.job);
    assert_eq!(scan(&mut con, &pattern).await, Vec::<String>::new());
}

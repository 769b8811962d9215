//! Objects shared on the proxy's host ([`ObjectBackend::Shared`]): clients there write and
//! read them as files, clients elsewhere through the proxy; a released object is discarded
//! and its tombstone found in the store; a job's objects go once the store forgets it; an
//! object streamed through the proxy appears whole or not at all.

mod common;

use bytes::Bytes;
use common::{TEST_MAX_OBJECT, TestServer, remote_config, server_config, within};
use rukong_core::error::StoreError;
use rukong_core::messages::ObjectKey;
use rukong_core::proxy::remote::{RemoteConfig, RemoteProxy};
use rukong_core::proxy::wire::{self, Request, ToProxy};
use rukong_core::proxy::{Proxy, ProxyError};
use rukong_core::store::memory::MemoryStore;
use rukong_core::store::{JobStore, ObjectStore, Release, is_tombstone};
use rukong_core::{JobId, JobPlan, TaskIdx};
use rukong_kvstore_proxy::{ObjectBackend, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn blob(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(17).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// A two-task job `a -> b`, so that `a`'s output has one reader.
fn plan(job: &str) -> Arc<JobPlan> {
    let yaml = "name: pair\ntasks:\n  - {id: a, fn: const, args: [1]}\n  - {id: b, fn: identity, deps: [a]}\n";
    common::plan(job, yaml)
}

/// A private directory for the proxy's objects, and a store.
fn setup() -> (tempfile::TempDir, PathBuf, Arc<MemoryStore>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("objects");
    (
        tmp,
        dir,
        Arc::new(MemoryStore::with_max_object(TEST_MAX_OBJECT)),
    )
}

fn shared_config(dir: &Path) -> ServerConfig {
    ServerConfig {
        objects: ObjectBackend::Shared,
        shared_dir: Some(dir.to_path_buf()),
        ..server_config()
    }
}

/// A client that never uses the shared directory, as one on another host would.
async fn off_host_client(server: &TestServer) -> RemoteProxy {
    let config = RemoteConfig {
        share_host_objects: false,
        ..remote_config()
    };
    within(
        "connect",
        RemoteProxy::connect(server.addr.to_string(), None, config),
    )
    .await
    .unwrap()
}

fn file(dir: &Path, job: &str, task: u32) -> PathBuf {
    dir.join(job).join(format!("obj:{task}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_the_host_share_objects_as_files_and_others_go_through_the_proxy() {
    let (_tmp, dir, store) = setup();
    let server = TestServer::start(store.clone(), shared_config(&dir)).await;
    let here = server.client(None).await;
    let there = off_host_client(&server).await;
    assert_eq!(here.shared_dir(), Some(dir.clone()));
    assert_eq!(there.shared_dir(), None);

    let job = JobId::new("j1");
    let k1 = ObjectKey::for_output(&job, TaskIdx(1));
    let big = blob(9 << 20, 1);
    within("put here", here.put_object(&k1, big.clone()))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(file(&dir, "j1", 1)).unwrap(),
        big,
        "written as a file"
    );
    assert_eq!(store.object_count(), 0, "nothing went to the store");
    let got = within("get there", there.get_object(&k1)).await.unwrap();
    assert_eq!(
        got.as_ref(),
        Some(&big),
        "served by the proxy from the file"
    );

    // A client elsewhere puts through the proxy, which writes the file; one here reads it.
    let k2 = ObjectKey::for_output(&job, TaskIdx(2));
    within("put there", there.put_object(&k2, blob(1000, 2)))
        .await
        .unwrap();
    assert!(file(&dir, "j1", 2).is_file());
    assert_eq!(here.get_object(&k2).await.unwrap(), Some(blob(1000, 2)));
    // Objects of many chunks, and of none, go both ways through the proxy.
    for (task, len) in [(3, (5 << 20) + 3), (4, 0), (5, 1)] {
        let k = ObjectKey::for_output(&job, TaskIdx(task));
        let data = blob(len, task as u8);
        within("put there", there.put_object(&k, data.clone()))
            .await
            .unwrap();
        assert_eq!(std::fs::read(file(&dir, "j1", task)).unwrap(), data);
        let got = within("get there", there.get_object(&k)).await.unwrap();
        assert_eq!(got, Some(data), "{len} bytes");
    }
    assert_eq!(store.object_count(), 0, "nothing went to the store");

    // The proxy's limit holds here too, without a request.
    let err = here
        .put_object(&k1, blob(TEST_MAX_OBJECT + 1, 3))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProxyError::Store(StoreError::TooLarge { max, .. }) if max == TEST_MAX_OBJECT),
        "{err}"
    );
    assert_eq!(here.get_object(&k1).await.unwrap(), Some(big.clone()));

    // A key of no job goes to the store.
    let loose = ObjectKey::new("loose-key");
    here.put_object(&loose, blob(10, 4)).await.unwrap();
    assert_eq!(store.object_count(), 1);
    assert_eq!(there.get_object(&loose).await.unwrap(), Some(blob(10, 4)));

    // Deleting goes for both copies.
    there.delete_object(&k2).await.unwrap();
    assert!(!file(&dir, "j1", 2).exists());
    assert_eq!(here.get_object(&k2).await.unwrap(), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_object_is_discarded_and_its_tombstone_found_in_the_store() {
    let (_tmp, dir, store) = setup();
    let server = TestServer::start(store.clone(), shared_config(&dir)).await;
    let here = server.client(None).await;
    let there = off_host_client(&server).await;
    for (name, client) in [("here", &here), ("there", &there)] {
        let p = plan(&format!("rel-{name}"));
        store.put_job(p.clone()).await.unwrap();
        let key = ObjectKey::for_output(&p.job, TaskIdx(0));
        client.put_object(&key, blob(4096, 5)).await.unwrap();
        let path = file(&dir, p.job.as_str(), 0);
        assert!(path.is_file(), "{name}");
        let freed = store
            .release_outputs(
                &p.job,
                &[Release {
                    producer: TaskIdx(0),
                    reader: TaskIdx(1),
                    readers: 1,
                }],
            )
            .await
            .unwrap();
        assert_eq!(freed, vec![TaskIdx(0)]);
        client.discard_object(&key).await.unwrap();
        assert!(!path.exists(), "{name}: the file is gone");
        client.discard_object(&key).await.unwrap(); // idempotent
        for c in [&here, &there] {
            let got = c.get_object(&key).await.unwrap().expect("a tombstone");
            assert!(is_tombstone(&got), "{name}: {} bytes", got.len());
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_objects_go_once_the_store_no_longer_has_it() {
    for backend in [ObjectBackend::Shared, ObjectBackend::Memory] {
        let (_tmp, dir, store) = setup();
        let config = ServerConfig {
            objects: backend,
            shared_dir: Some(dir.clone()),
            sweep_interval: Duration::from_millis(50),
            ..server_config()
        };
        let server = TestServer::start(store.clone(), config).await;
        let client = off_host_client(&server).await;
        let live = plan("live");
        store.put_job(live.clone()).await.unwrap();
        let (kl, kg) = (
            ObjectKey::for_output(&live.job, TaskIdx(0)),
            ObjectKey::for_output(&JobId::new("gone"), TaskIdx(0)),
        );
        client.put_object(&kl, blob(100, 6)).await.unwrap();
        client.put_object(&kg, blob(100, 7)).await.unwrap();
        let t0 = Instant::now();
        loop {
            if client.get_object(&kg).await.unwrap().is_none() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{backend:?}: the unknown job's object stayed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if backend == ObjectBackend::Shared {
            assert!(!dir.join("gone").exists());
        }
        assert_eq!(client.get_object(&kl).await.unwrap(), Some(blob(100, 6)));
        store.delete_job(&live.job).await.unwrap();
        let t0 = Instant::now();
        while client.get_object(&kl).await.unwrap().is_some() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{backend:?}: a deleted job's object stayed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_cannot_be_written_goes_to_the_store() {
    let (_tmp, dir, store) = setup();
    let server = TestServer::start(store.clone(), shared_config(&dir)).await;
    let here = server.client(None).await;
    // A plain file where the job's directory would be: no object can be written there.
    std::fs::write(dir.join("blocked"), b"not a directory").unwrap();
    let key = ObjectKey::for_output(&JobId::new("blocked"), TaskIdx(3));
    here.put_object(&key, blob(2048, 8)).await.unwrap();
    assert_eq!(store.object_count(), 1, "stored in the store instead");
    assert_eq!(here.get_object(&key).await.unwrap(), Some(blob(2048, 8)));
    let there = off_host_client(&server).await;
    assert_eq!(there.get_object(&key).await.unwrap(), Some(blob(2048, 8)));
    // Through the proxy too: the object it could not write arrives in the store whole.
    let big = ObjectKey::for_output(&JobId::new("blocked"), TaskIdx(4));
    there.put_object(&big, blob(3 << 20, 9)).await.unwrap();
    assert_eq!(store.object_count(), 2);
    assert_eq!(here.get_object(&big).await.unwrap(), Some(blob(3 << 20, 9)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_cut_off_through_the_proxy_leaves_no_file() {
    use tokio::io::AsyncWriteExt;
    let (_tmp, dir, store) = setup();
    let server = TestServer::start(store.clone(), shared_config(&dir)).await;
    let there = off_host_client(&server).await;
    let key = ObjectKey::for_output(&JobId::new("cut"), TaskIdx(1));
    let old = blob(1 << 20, 1);
    there.put_object(&key, old.clone()).await.unwrap();

    // A rewrite of the object dies after 3 MiB of its 8: the old object stays, whole, and
    // no temporary file is left once the proxy noticed.
    let mut conn = server.raw_client().await;
    let put = Request {
        req_id: 1,
        body: ToProxy::Put {
            key: key.clone(),
            len: 8 << 20,
        },
    };
    wire::write_encoded(&mut conn, &wire::encode_frame(&put, 128).unwrap())
        .await
        .unwrap();
    conn.write_all(&blob(3 << 20, 2)).await.unwrap();
    conn.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(conn);
    let job_dir = dir.join("cut");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&job_dir).unwrap().count() > 1 {
        assert!(Instant::now() < deadline, "a temporary file stayed behind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read(file(&dir, "cut", 1)).unwrap(), old);
    assert_eq!(there.get_object(&key).await.unwrap(), Some(old));
    assert_eq!(store.object_count(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_restarted_on_the_same_directory_still_serves_its_objects() {
    let (_tmp, dir, store) = setup();
    let p = plan("kept");
    store.put_job(p.clone()).await.unwrap();
    let key = ObjectKey::for_output(&p.job, TaskIdx(0));
    let server = TestServer::start(store.clone(), shared_config(&dir)).await;
    let addr = server.addr;
    server
        .client(None)
        .await
        .put_object(&key, blob(3000, 9))
        .await
        .unwrap();
    server.stop().await;
    let server = TestServer::start_on(addr, store.clone(), shared_config(&dir)).await;
    let there = off_host_client(&server).await;
    assert_eq!(there.get_object(&key).await.unwrap(), Some(blob(3000, 9)));
    server.stop().await;
}

//! A live proxy fed mutated byte streams: a hello and requests (the committed wire corpus),
//! with bits flipped, bytes set to edge values, runs inserted or deleted, and cut short.
//! Every stream must end with the server closing the connection (no hang), and the server
//! must go on serving a well-behaved client exactly.

mod common;

use common::{TestServer, remote_config, server_config, within};
use rukong_core::messages::ObjectKey;
use rukong_core::proxy::Proxy;
use rukong_core::proxy::remote::RemoteProxy;
use rukong_core::rng::SplitMix64;
use rukong_core::store::memory::MemoryStore;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Mutated streams per run (`RUKONG_FUZZ_CASES` / 5 when set).
fn cases() -> usize {
    std::env::var("RUKONG_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(2_000, |n| (n / 5).max(1))
}

/// The committed frames, by name.
fn frames() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fuzz_corpus/wire");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// A stream a client might send: the hello, then one to four requests (or, at times, any
/// frame first).
fn stream(rng: &mut SplitMix64, frames: &[(String, Vec<u8>)]) -> Vec<u8> {
    let pick = |rng: &mut SplitMix64| &frames[(rng.next_u64() % frames.len() as u64) as usize].1;
    let hello = &frames
        .iter()
        .find(|(n, _)| n == "hello")
        .expect("hello.bin")
        .1;
    let mut s = if rng.next_u64().is_multiple_of(8) {
        pick(rng).clone()
    } else {
        hello.clone()
    };
    for _ in 0..1 + rng.next_u64() % 4 {
        s.extend_from_slice(pick(rng));
    }
    s
}

fn mutate(rng: &mut SplitMix64, mut b: Vec<u8>) -> Vec<u8> {
    const EDGE: &[u8] = &[
        0x00, 0x7f, 0x80, 0xc0, 0xc1, 0xc4, 0xc6, 0xdb, 0xdd, 0xdf, 0xff,
    ];
    for _ in 0..1 + rng.next_u64() % 6 {
        let n = b.len().max(1) as u64;
        let at = (rng.next_u64() % n) as usize;
        match rng.next_u64() % 5 {
            0 if !b.is_empty() => b[at] ^= 1 << (rng.next_u64() % 8),
            1 if !b.is_empty() => b[at] = EDGE[(rng.next_u64() % EDGE.len() as u64) as usize],
            2 => {
                let run: Vec<u8> = (0..1 + rng.next_u64() % 12)
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                let at = at.min(b.len());
                b.splice(at..at, run);
            }
            3 if !b.is_empty() => {
                let end = (at + 1 + (rng.next_u64() % 32) as usize).min(b.len());
                b.drain(at..end);
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// Sends `bytes`, half-closes, and reads until the server closes the connection; returns
/// how many bytes the server sent back.
async fn feed(addr: std::net::SocketAddr, bytes: &[u8]) -> Result<usize, String> {
    let mut conn = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    // The server may close early (a bad hello): a failed write is an answer too.
    if conn.write_all(bytes).await.is_ok() {
        let _ = conn.shutdown().await;
    }
    let mut sink = vec![0u8; 1 << 16];
    let read_all = async {
        let mut got = 0;
        loop {
            match conn.read(&mut sink).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got += n,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .map_err(|_| "the server kept the connection open for 10 s after the stream ended".into())
}

/// A well-behaved client's put and get through the server.
async fn still_serves(server: &TestServer, round: usize) {
    let proxy = within(
        "connect",
        RemoteProxy::connect(server.addr.to_string(), None, remote_config()),
    )
    .await
    .expect("the server refuses a good client after fuzzing");
    let key = ObjectKey::new(format!("jfuzz/out/{round}"));
    let data = bytes::Bytes::from(vec![round as u8; 1000 + round]);
    within("put", proxy.put_object(&key, data.clone()))
        .await
        .unwrap();
    let got = within("get", proxy.get_object(&key)).await.unwrap();
    assert_eq!(got.as_deref(), Some(data.as_ref()), "round {round}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_streams_never_wedge_the_proxy_or_corrupt_what_it_serves() {
    let server = TestServer::start(Arc::new(MemoryStore::new()), server_config()).await;
    let frames = frames();
    assert!(frames.len() >= 8, "the wire corpus is missing frames");
    let mut rng = SplitMix64::new(0xf022);
    let n = cases();
    // Streams the server answered past its hello (a hello is 20 bytes or so).
    let mut answered = 0;
    for case in 0..n {
        let s = stream(&mut rng, &frames);
        let s = mutate(&mut rng, s);
        match feed(server.addr, &s).await {
            Ok(got) => answered += usize::from(got > 32),
            Err(e) => panic!(
                "case {case} ({} bytes: {:02x?}): {e}",
                s.len(),
                &s[..s.len().min(64)]
            ),
        }
        if case % 50 == 49 {
            still_serves(&server, case).await;
        }
    }
    still_serves(&server, n).await;
    assert!(
        answered * 5 >= n,
        "only {answered} of {n} streams got past the hello: the corpus no longer fits the protocol"
    );
    server.stop().await;
}

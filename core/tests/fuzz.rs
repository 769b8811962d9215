//! Bounded fuzzing of what rukong decodes from outside: DAG files and request bodies
//! (JSON, YAML, MessagePack, the compact form, then validation) and the KV-store proxy's
//! wire protocol (frame reading and the decoding of every message). Inputs are seeds from
//! `tests/fuzz_corpus/` and the repository's examples, mutated by proptest (bit flips,
//! interesting bytes, insertions, deletions, truncation, splices of two seeds), plus plain
//! random bytes.
//!
//! Each input must give `Ok` or a clear error: no panic, no stack overflow (the process
//! would die), and no allocation out of proportion to the input (a counting allocator
//! measures each decode's peak).
//!
//! Cases: `RUKONG_FUZZ_CASES` (default 1,500 per target; each case decodes one input in
//! every format of its target).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rukong_core::dag::{CompactDag, DagFormat, DagSpec, Limits, validate};
use rukong_core::messages::{ObjectKey, Payload};
use rukong_core::proxy::FanOutRequest;
use rukong_core::proxy::wire::{
    self, ClientHello, FromProxy, MAX_FRAME, Request, RequestId, Response, ServerHello, ToProxy,
};
use rukong_core::{JobId, TaskIdx, Value};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

// ----------------------------------------------------------------------------------------
// A capped allocator: each decode may allocate only so much beyond what was live before.
// ----------------------------------------------------------------------------------------

#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// One test of this file at a time, so that the cap sees one decode only (nextest runs
/// each test in its own process anyway).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one decode of `len` input bytes may allocate: a fixed allowance plus a generous
/// multiple of the input (a decoded value is a tree of small allocations).
fn allowance(len: usize) -> usize {
    (16 << 20) + 512 * len
}

/// Where the input being decoded is kept: a decode that allocates past its cap aborts the
/// process ("memory allocation of N bytes failed"), and this file holds what did it.
fn last_input_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-last-input")
}

/// Runs `f` with the allocator capped at what is live now plus `extra` bytes.
fn capped(extra: usize, f: impl FnOnce()) {
    let _ = ALLOC.set_limit(ALLOC.allocated().saturating_add(extra));
    f();
    let _ = ALLOC.set_limit(usize::MAX);
}

// ----------------------------------------------------------------------------------------
// Seeds and mutations
// ----------------------------------------------------------------------------------------

fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let seeds: Vec<(String, Vec<u8>)> = paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", root.display());
    seeds
}

/// The DAG seeds: the corpus, and every example in JSON, YAML and MessagePack.
fn dag_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = corpus("dag");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let spec = DagSpec::from_path(&p).unwrap();
        seeds.push((format!("{name}.json"), spec.to_json().into_bytes()));
        seeds.push((format!("{name}.msgpack"), spec.to_msgpack()));
        let compact = CompactDag::from_spec(&spec).expect("an example's references resolve");
        seeds.push((format!("{name}.compact"), compact.to_msgpack()));
        seeds.push((name, std::fs::read(&p).unwrap()));
    }
    seeds
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    /// Replaces the tail from `at` with the tail of seed `other` from `from`.
    Splice {
        at: usize,
        other: usize,
        from: usize,
    },
}

/// Bytes that often sit on a decoder's edge: MessagePack length markers, JSON and YAML
/// structure, UTF-8 starts, and all-ones.
const INTERESTING: &[u8] = &[
    0x00, 0x7f, 0x80, 0xc0, 0xc1, 0xc4, 0xc6, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff, b'[', b']',
    b'{', b'}', b'"', b'\\', b':', b'-', b'&', b'*', b'!', b'\n', 0xe2, 0xf0,
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        3 => (any::<usize>(), prop::sample::select(INTERESTING))
            .prop_map(|(at, byte)| Mutation::Set { at, byte }),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(at, other, from)| Mutation::Splice { at, other, from }),
    ]
}

fn mutate(seeds: &[(String, Vec<u8>)], seed: usize, ms: &[Mutation]) -> Vec<u8> {
    let mut b = seeds[seed % seeds.len()].1.clone();
    for m in ms {
        let at = |x: usize, n: usize| if n == 0 { 0 } else { x % n };
        match m {
            Mutation::Flip { at: a, bit } if !b.is_empty() => {
                let i = at(*a, b.len());
                b[i] ^= 1 << bit;
            }
            Mutation::Set { at: a, byte } if !b.is_empty() => {
                let i = at(*a, b.len());
                b[i] = *byte;
            }
            Mutation::Insert { at: a, bytes } => {
                let i = at(*a, b.len() + 1);
                b.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete { at: a, len } if !b.is_empty() => {
                let i = at(*a, b.len());
                b.drain(i..(i + len).min(b.len()));
            }
            Mutation::Truncate { at: a } => b.truncate(at(*a, b.len() + 1)),
            Mutation::Splice { at: a, other, from } => {
                let o = &seeds[other % seeds.len()].1;
                let i = at(*a, b.len() + 1);
                let j = at(*from, o.len() + 1);
                b.truncate(i);
                b.extend_from_slice(&o[j..]);
            }
            _ => {}
        }
    }
    b
}

/// A seed mutated 1 to 8 times, or (one case in eight) plain random bytes.
fn input(seeds: &[(String, Vec<u8>)]) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    let seeds = seeds.to_vec();
    prop_oneof![
        7 => (0..n, prop::collection::vec(mutation(), 1..=8))
            .prop_map(move |(s, ms)| mutate(&seeds, s, &ms)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn runner() -> TestRunner {
    let cases = std::env::var("RUKONG_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Runs `decode` on `bytes` under the allocation cap; a panic fails the case with the
/// input, an allocation past the cap aborts the test (see [`last_input_path`]).
fn bounded(what: &str, bytes: &[u8], decode: impl FnOnce()) -> Result<(), TestCaseError> {
    let _ = std::fs::write(last_input_path(), bytes);
    let mut panicked = None;
    capped(allowance(bytes.len()), || {
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
            panicked = Some(
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default(),
            );
        }
    });
    match panicked {
        Some(msg) => Err(TestCaseError::fail(format!(
            "{what} panicked ({msg}) on {} bytes: {:?}",
            bytes.len(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        ))),
        None => Ok(()),
    }
}

// ----------------------------------------------------------------------------------------
// DAG decoding
// ----------------------------------------------------------------------------------------

/// Every way a DAG is read: each format's decoder, the sniffing parser (a file with no
/// telling extension, a request body of no content type), then validation.
fn decode_dag(bytes: &[u8]) -> Result<(), TestCaseError> {
    let check = |r: Result<DagSpec, rukong_core::DagError>| match r {
        Ok(spec) => {
            let known = |f: &str| matches!(f, "const" | "add" | "identity" | "len");
            if let Err(e) = validate(spec, &Limits::default(), &known) {
                assert!(!e.to_string().is_empty(), "an empty validation error");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an empty decode error"),
    };
    bounded("the MessagePack decoder", bytes, || {
        check(DagSpec::from_msgpack(bytes))
    })?;
    bounded("the compact decoder", bytes, || {
        check(CompactDag::decode(bytes))
    })?;
    if let Ok(text) = std::str::from_utf8(bytes) {
        bounded("the JSON decoder", bytes, || {
            check(DagSpec::from_json_str(text))
        })?;
        bounded("the YAML decoder", bytes, || {
            check(DagSpec::from_yaml_str(text))
        })?;
        bounded("the sniffing parser", bytes, || {
            check(DagSpec::parse(text, DagFormat::sniff(text)))
        })?;
    }
    Ok(())
}

#[test]
fn the_dag_seeds_decode_to_a_dag_or_a_clear_error() {
    let _one = serial();
    for (name, bytes) in dag_seeds() {
        decode_dag(&bytes).unwrap_or_else(|e| panic!("seed {name}: {e}"));
    }
}

#[test]
fn mutated_dags_never_panic_or_allocate_without_bound() {
    let _one = serial();
    let seeds = dag_seeds();
    runner()
        .run(&input(&seeds), |bytes| decode_dag(&bytes))
        .unwrap();
}

#[test]
fn hostile_dag_seeds_are_refused_with_a_clear_error() {
    let _one = serial();
    let dag = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/dag");
    let read = |f: &str| std::fs::read_to_string(dag.join(f)).unwrap();
    let yaml = |f: &str| DagSpec::from_yaml_str(&read(f)).unwrap_err().to_string();
    assert!(
        yaml("billion-laughs.yaml").contains("repetition limit"),
        "{}",
        yaml("billion-laughs.yaml")
    );
    assert!(
        yaml("deep.yaml").contains("recursion limit"),
        "{}",
        yaml("deep.yaml")
    );
    assert!(yaml("unknown-field.yaml").contains("unknown field `color`"));
    let json = DagSpec::from_json_str(&read("deep.json"))
        .unwrap_err()
        .to_string();
    assert!(json.contains("recursion limit"), "{json}");
    let mp = |f: &str| {
        DagSpec::from_msgpack(&std::fs::read(dag.join(f)).unwrap())
            .unwrap_err()
            .to_string()
    };
    assert!(
        mp("deep.msgpack").contains("MessagePack"),
        "{}",
        mp("deep.msgpack")
    );
    assert!(
        mp("huge-lengths.msgpack").contains("MessagePack"),
        "{}",
        mp("huge-lengths.msgpack")
    );
    let tiny = DagSpec::from_msgpack(&std::fs::read(dag.join("tiny.msgpack")).unwrap()).unwrap();
    assert_eq!(tiny.tasks[0].args, vec![Value::Int(1)]);
}

// ----------------------------------------------------------------------------------------
// The proxy's wire protocol
// ----------------------------------------------------------------------------------------

/// One of every message, each as a whole frame (length prefix included), followed by its
/// object's bytes for a put and a value.
fn wire_messages() -> Vec<(String, Vec<u8>)> {
    let frame = |name: &str, m: &dyn Fn() -> Vec<u8>| (name.to_owned(), m());
    let enc = |r: &Request| wire::encode_frame(r, 64).unwrap();
    let key = ObjectKey::new("j0123456789abcdef/out/7");
    let fan = FanOutRequest {
        job: JobId::new("j0123456789abcdef"),
        parent: TaskIdx(3),
        payload: Payload::Inline(Value::Array(vec![Value::Int(-1), Value::Str("é".into())])),
        children: vec![rukong_core::dag::Child {
            task: TaskIdx(4),
            pos: 0,
        }],
    };
    vec![
        frame("hello", &|| {
            wire::encode_frame(&ClientHello::new(Some("t".into())), 0).unwrap()
        }),
        frame("server-hello", &|| {
            wire::encode_frame(
                &ServerHello {
                    protocol: 1,
                    accepted: false,
                    reason: Some("no".into()),
                    objects: wire::ObjectsOffer {
                        max_object: 1 << 20,
                        kept: true,
                        shared_dir: Some("/dev/shm/rukong-proxy-7070".into()),
                        probe: Some("j0123456789abcdef".into()),
                    },
                },
                0,
            )
            .unwrap()
        }),
        frame("put", &|| {
            enc(&Request {
                req_id: 1,
                body: ToProxy::Put {
                    key: key.clone(),
                    len: 300,
                },
            })
            .into_iter()
            .chain([7u8; 300])
            .collect()
        }),
        frame("get", &|| {
            enc(&Request {
                req_id: 2,
                body: ToProxy::Get { key: key.clone() },
            })
        }),
        frame("delete", &|| {
            enc(&Request {
                req_id: 3,
                body: ToProxy::Delete { key: key.clone() },
            })
        }),
        frame("discard", &|| {
            enc(&Request {
                req_id: 5,
                body: ToProxy::Discard { key: key.clone() },
            })
        }),
        frame("fan-out", &|| {
            enc(&Request {
                req_id: 4,
                body: ToProxy::FanOut(fan.clone()),
            })
        }),
        frame("ping", &|| {
            enc(&Request {
                req_id: 5,
                body: ToProxy::Ping,
            })
        }),
        frame("prefetch", &|| {
            enc(&Request {
                req_id: 6,
                body: ToProxy::Prefetch {
                    job: JobId::new("j0123456789abcdef"),
                },
            })
        }),
        frame("value", &|| {
            wire::encode_frame(
                &Response {
                    req_id: 2,
                    body: FromProxy::Value { len: Some(40) },
                },
                0,
            )
            .unwrap()
            .into_iter()
            .chain([1u8; 40])
            .collect()
        }),
    ]
}

/// The wire seeds: the corpus and one frame of every message.
fn wire_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = corpus("wire");
    seeds.extend(wire_messages());
    seeds
}

/// Reads frames off `bytes` as a peer's stream (at most a few), decoding each body as
/// every message type.
fn decode_wire(bytes: &[u8]) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    bounded("the frame reader", bytes, || {
        rt.block_on(async {
            let mut r: &[u8] = bytes;
            for _ in 0..4 {
                match wire::read_frame_bytes(&mut r, MAX_FRAME).await {
                    Ok(Some(body)) => {
                        let _ = wire::decode::<ClientHello>(&body);
                        let _ = wire::decode::<ServerHello>(&body);
                        let _ = wire::decode::<RequestId>(&body);
                        // An object's bytes follow a put and a value: read them as a peer
                        // would, within the object limit.
                        let tail = match (
                            wire::decode::<Request>(&body),
                            wire::decode::<Response>(&body),
                        ) {
                            (
                                Ok(Request {
                                    body: ToProxy::Put { len, .. },
                                    ..
                                }),
                                _,
                            )
                            | (
                                _,
                                Ok(Response {
                                    body: FromProxy::Value { len: Some(len) },
                                    ..
                                }),
                            ) => Some(len),
                            _ => None,
                        };
                        if let Some(len) = tail {
                            match wire::tail_len(len) {
                                Ok(n) => {
                                    if wire::read_tail(&mut r, n).await.is_err() {
                                        break;
                                    }
                                }
                                Err(e) => {
                                    assert!(!e.to_string().is_empty());
                                    break;
                                }
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert!(!e.to_string().is_empty());
                        break;
                    }
                }
            }
        })
    })?;
    // The bytes as a body on their own, too.
    bounded("the message decoders", bytes, || {
        let _ = wire::decode::<ClientHello>(bytes);
        let _ = wire::decode::<Request>(bytes);
        let _ = wire::decode::<Response>(bytes);
    })
}

#[test]
fn mutated_proxy_frames_never_panic_or_allocate_without_bound() {
    let _one = serial();
    let seeds = wire_seeds();
    for (name, bytes) in &seeds {
        decode_wire(bytes).unwrap_or_else(|e| panic!("seed {name}: {e}"));
    }
    runner()
        .run(&input(&seeds), |bytes| decode_wire(&bytes))
        .unwrap();
}

#[test]
fn the_wire_corpus_holds_every_message() {
    let _one = serial();
    // The committed seeds are these frames (regenerate with RUKONG_WRITE_CORPUS=1 when the
    // protocol changes); a stale corpus still fuzzes, but says so here.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/wire");
    for (name, bytes) in wire_messages() {
        let path = dir.join(format!("{name}.bin"));
        if std::env::var_os("RUKONG_WRITE_CORPUS").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert_eq!(
            committed,
            bytes,
            "{} is stale: rerun with RUKONG_WRITE_CORPUS=1",
            path.display()
        );
    }
}

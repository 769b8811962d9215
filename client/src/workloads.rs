//! Workload generators (`rukong gen …`), in the shapes of the WuKong evaluation. Each
//! workload also knows its expected outputs in closed form, so runs and benchmarks can check
//! their results.

use rukong_core::dag::DagSpec;
use rukong_core::value::sha256_hex;
use rukong_core::{TaskId, Value};

use crate::JobBuilder;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `leaves` `const(i)` leaves summed pairwise by `add` up to one root.
    TreeReduction { leaves: usize },
    /// One `const(1)` source, `width` children `add(src, i)`, one `add` sink over them all.
    FanoutFanin { width: usize },
    /// `const(0)` then `length - 1` tasks `add(prev, 1)`.
    Chain { length: usize },
    /// `a = const(3)`, `b = add(a, 1)`, `c = mul(a, 2)`, `d = add(b, c)`.
    Diamond,
    /// `producers` blobs of `size` bytes, each digested; all concatenated, then measured and
    /// digested. Sizes above the inline threshold exercise the object store.
    BlobDigest { producers: usize, size: usize },
    /// `src = const(1)`, `width` tasks `sleep(src, ms)` (each returns 1), one `add` sink:
    /// parallel efficiency (ideal wall = width × ms / slots).
    SleepFanout { width: usize, ms: u64 },
    /// Big data: `producers` blobs of `mib` MiB into one reducer, `sha256` of them all.
    BigData { producers: usize, mib: usize },
}

impl Workload {
    pub fn name(&self) -> String {
        match self {
            Workload::TreeReduction { leaves } => format!("tree-reduction-{leaves}"),
            Workload::FanoutFanin { width } => format!("fanout-fanin-{width}"),
            Workload::Chain { length } => format!("chain-{length}"),
            Workload::Diamond => "diamond".into(),
            Workload::BlobDigest { producers, size } => format!("blob-digest-{producers}x{size}"),
            Workload::SleepFanout { width, ms } => format!("sleep-fanout-{width}x{ms}ms"),
            Workload::BigData { producers, mib } => format!("big-data-{producers}x{mib}MiB"),
        }
    }

    /// Number of tasks the DAG will have.
    pub fn task_count(&self) -> usize {
        match *self {
            Workload::TreeReduction { leaves } => (2 * leaves).saturating_sub(1).max(1),
            Workload::FanoutFanin { width } => width + 2,
            Workload::Chain { length } => length.max(1),
            Workload::Diamond => 4,
            Workload::BlobDigest { producers, .. } => 2 * producers + 3,
            Workload::SleepFanout { width, .. } => width.max(1) + 2,
            Workload::BigData { producers, .. } => producers.max(1) + 1,
        }
    }

    pub fn generate(&self) -> DagSpec {
        match *self {
            Workload::TreeReduction { leaves } => tree_reduction(leaves.max(1)),
            Workload::FanoutFanin { width } => fanout_fanin(width.max(1)),
            Workload::Chain { length } => chain(length.max(1)),
            Workload::Diamond => diamond(),
            Workload::BlobDigest { producers, size } => blob_digest(producers.max(1), size),
            Workload::SleepFanout { width, ms } => sleep_fanout(width.max(1), ms),
            Workload::BigData { producers, mib } => big_data(producers.max(1), mib),
        }
    }

    /// The outputs the DAG must produce.
    pub fn expected(&self) -> Vec<(TaskId, Value)> {
        match *self {
            Workload::TreeReduction { leaves } => {
                let n = leaves.max(1) as i64;
                vec![(tree_root(leaves.max(1)), Value::Int(n * (n - 1) / 2))]
            }
            Workload::FanoutFanin { width } => {
                let w = width.max(1) as i64;
                vec![("sink".into(), Value::Int(w + w * (w - 1) / 2))]
            }
            Workload::Chain { length } => {
                let l = length.max(1);
                vec![(format!("c{}", l - 1).into(), Value::Int(l as i64 - 1))]
            }
            Workload::Diamond => vec![("d".into(), Value::Int(10))],
            Workload::BlobDigest { producers, size } => {
                let k = producers.max(1);
                let blobs: Vec<Vec<u8>> = (0..k).map(|i| blob_bytes(size, i as u64)).collect();
                let all: Vec<u8> = blobs.concat();
                let mut out = vec![
                    ("total_len".into(), Value::Int(all.len() as i64)),
                    ("total_sha256".into(), Value::Str(sha256_hex(&all))),
                ];
                for (i, b) in blobs.iter().enumerate() {
                    out.push((format!("d{i}").into(), Value::Str(sha256_hex(b))));
                }
                out
            }
            Workload::SleepFanout { width, .. } => {
                vec![("sink".into(), Value::Int(width.max(1) as i64))]
            }
            Workload::BigData { producers, mib } => {
                let mut h = <sha2::Sha256 as sha2::Digest>::new();
                for i in 0..producers.max(1) {
                    sha2::Digest::update(&mut h, blob_bytes(mib << 20, i as u64));
                }
                vec![(
                    "digest".into(),
                    Value::Str(rukong_core::value::hex(&sha2::Digest::finalize(h))),
                )]
            }
        }
    }
}

/// `blob(n, seed)`'s bytes: byte `i` is `(i * 31 + seed) mod 256`.
pub fn blob_bytes(n: usize, seed: u64) -> Vec<u8> {
    (0..n as u64)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 256) as u8)
        .collect()
}

fn tree_levels(leaves: usize) -> usize {
    let mut level = 0;
    let mut width = leaves;
    while width > 1 {
        width = width.div_ceil(2);
        level += 1;
    }
    level
}

fn tree_root(leaves: usize) -> TaskId {
    match tree_levels(leaves) {
        0 => "l0".into(),
        lv => format!("s{lv}_0").into(),
    }
}

fn tree_reduction(leaves: usize) -> DagSpec {
    let mut b = JobBuilder::new(format!("tree-reduction-{leaves}"));
    let mut prev: Vec<String> = (0..leaves).map(|i| format!("l{i}")).collect();
    for (i, id) in prev.iter().enumerate() {
        b.task(id.as_str(), "const").arg(i as i64);
    }
    let mut level = 0;
    while prev.len() > 1 {
        level += 1;
        let mut next = Vec::with_capacity(prev.len().div_ceil(2));
        for (j, pair) in prev.chunks(2).enumerate() {
            match pair {
                [x, y] => {
                    let id = format!("s{level}_{j}");
                    b.task(id.as_str(), "add").deps([x.as_str(), y.as_str()]);
                    next.push(id);
                }
                // An odd one out is carried up unchanged.
                [x] => next.push(x.clone()),
                _ => {}
            }
        }
        prev = next;
    }
    b.build()
}

fn fanout_fanin(width: usize) -> DagSpec {
    let mut b = JobBuilder::new(format!("fanout-fanin-{width}"));
    b.task("src", "const").arg(1);
    let mids: Vec<String> = (0..width).map(|i| format!("m{i}")).collect();
    for (i, m) in mids.iter().enumerate() {
        b.task(m.as_str(), "add").dep("src").arg(i as i64);
    }
    b.task("sink", "add").deps(mids.iter().map(String::as_str));
    b.build()
}

fn chain(length: usize) -> DagSpec {
    let mut b = JobBuilder::new(format!("chain-{length}"));
    b.task("c0", "const").arg(0);
    for i in 1..length {
        b.task(format!("c{i}"), "add")
            .dep(format!("c{}", i - 1))
            .arg(1);
    }
    b.build()
}

fn diamond() -> DagSpec {
    let mut b = JobBuilder::new("diamond");
    b.task("a", "const").arg(3);
    b.task("b", "add").dep("a").arg(1);
    b.task("c", "mul").dep("a").arg(2);
    b.task("d", "add").deps(["b", "c"]);
    b.build()
}

fn blob_digest(producers: usize, size: usize) -> DagSpec {
    let mut b = JobBuilder::new(format!("blob-digest-{producers}x{size}"));
    let blobs: Vec<String> = (0..producers).map(|i| format!("p{i}")).collect();
    for (i, p) in blobs.iter().enumerate() {
        b.task(p.as_str(), "blob").arg(size as i64).arg(i as i64);
        b.task(format!("d{i}"), "sha256").dep(p.as_str());
    }
    b.task("all", "concat")
        .deps(blobs.iter().map(String::as_str));
    b.task("total_len", "len").dep("all");
    b.task("total_sha256", "sha256").dep("all");
    b.output("total_len").output("total_sha256");
    for i in 0..producers {
        b.output(format!("d{i}"));
    }
    b.build()
}

fn sleep_fanout(width: usize, ms: u64) -> DagSpec {
    let mut b = JobBuilder::new(format!("sleep-fanout-{width}x{ms}ms"));
    b.task("src", "const").arg(1);
    let ids: Vec<String> = (0..width).map(|i| format!("s{i}")).collect();
    for id in &ids {
        b.task(id.as_str(), "sleep").dep("src").arg(ms as i64);
    }
    b.task("sink", "add").deps(ids.iter().map(String::as_str));
    b.build()
}

fn big_data(producers: usize, mib: usize) -> DagSpec {
    let mut b = JobBuilder::new(format!("big-data-{producers}x{mib}MiB"));
    let ids: Vec<String> = (0..producers).map(|i| format!("p{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        b.task(id.as_str(), "blob")
            .arg((mib << 20) as i64)
            .arg(i as i64);
    }
    b.task("digest", "sha256")
        .deps(ids.iter().map(String::as_str));
    b.build()
}

/// Writes a DAG as YAML with one task per line (each a JSON object, which is valid YAML):
/// compact, diffable, and fast to parse.
pub fn to_yaml(spec: &DagSpec) -> String {
    let mut s = String::with_capacity(spec.tasks.len() * 48 + 64);
    s.push_str("name: ");
    s.push_str(&serde_json::to_string(&spec.name).unwrap_or_default());
    s.push_str("\ntasks:\n");
    for t in &spec.tasks {
        s.push_str("  - ");
        s.push_str(&serde_json::to_string(t).unwrap_or_default());
        s.push('\n');
    }
    if let Some(outs) = &spec.outputs {
        s.push_str("outputs: ");
        s.push_str(&serde_json::to_string(outs).unwrap_or_default());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_counts_match_the_generated_dags() {
        for w in [
            Workload::TreeReduction { leaves: 1 },
            Workload::TreeReduction { leaves: 7 },
            Workload::TreeReduction { leaves: 1024 },
            Workload::FanoutFanin { width: 10 },
            Workload::Chain { length: 5 },
            Workload::Diamond,
            Workload::BlobDigest {
                producers: 3,
                size: 10,
            },
            Workload::SleepFanout { width: 4, ms: 1 },
            Workload::BigData {
                producers: 2,
                mib: 1,
            },
        ] {
            assert_eq!(w.generate().tasks.len(), w.task_count(), "{w:?}");
        }
    }

    #[test]
    fn yaml_round_trips() {
        let spec = Workload::BlobDigest {
            producers: 2,
            size: 5,
        }
        .generate();
        let back = DagSpec::from_yaml_str(&to_yaml(&spec)).unwrap();
        assert_eq!(back, spec);
    }
}

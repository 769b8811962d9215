//! Random well-typed (mostly) DAGs over the built-ins.

use proptest::collection::vec;
use proptest::prelude::*;
use rukong_client::DagSpec;
use rukong_core::dag::TaskSpec;
use rukong_core::{TaskId, Value};
use std::collections::{HashMap, HashSet};

// ----------------------------------------------------------------------------------------
// Generator
// ----------------------------------------------------------------------------------------

/// The random choices for one task; [`build`] turns them into a task consistent with its
/// dependencies' kinds.
#[derive(Clone, Debug)]
pub struct Gene {
    /// Selects the function (0..100).
    pub op: u8,
    /// Raw dependency picks, mapped onto earlier tasks of a fitting kind.
    pub deps: Vec<u16>,
    /// Below the DAG's `hub_rate`: the first dependency is that kind's hub (fan-outs).
    pub hub_roll: u8,
    /// Below the DAG's `ill_rate`: the task is built without regard to kinds.
    pub ill_roll: u8,
    pub ints: Vec<i64>,
    pub text: String,
    pub blob_size: u32,
    pub aux: u16,
    /// Make a wide layer here: one parent, 10 to 14 children, and a fan-in of them all.
    pub layer: bool,
}

#[derive(Clone, Debug)]
pub struct DagGene {
    pub genes: Vec<Gene>,
    pub hub_rate: u8,
    pub ill_rate: u8,
    /// Per kind (int, string, bytes), which early task of that kind is the hub.
    pub hubs: (u8, u8, u8),
    pub shuffle_seed: u64,
    pub outputs: Option<Vec<u16>>,
}

pub fn small_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        85 => -5i64..=20,
        12 => -1000i64..=1000,
        2 => (1i64 << 40)..(1i64 << 62),
    ]
}

pub fn blob_size() -> impl Strategy<Value = u32> {
    prop_oneof![
        80 => 0u32..200,
        9 => 60_000u32..70_000,
        4 => 65_520u32..65_540,
        3 => 70_000u32..=300_000,
    ]
}

pub fn gene() -> impl Strategy<Value = Gene> {
    (
        0u8..100,
        prop_oneof![
            24 => vec(any::<u16>(), 0..=4),
            1 => vec(any::<u16>(), 10..=16),
        ],
        0u8..100,
        0u8..100,
        vec(small_int(), 0..=3),
        "[a-z\u{e9}\u{2713}]{0,6}",
        blob_size(),
        any::<u16>(),
        prop::bool::weighted(0.03),
    )
        .prop_map(
            |(op, deps, hub_roll, ill_roll, ints, text, blob_size, aux, layer)| Gene {
                op,
                deps,
                hub_roll,
                ill_roll,
                ints,
                text,
                blob_size,
                aux,
                layer,
            },
        )
}

pub fn dag_gene() -> impl Strategy<Value = DagGene> {
    (
        vec(gene(), 1..=60),
        prop_oneof![3 => Just(0u8), 4 => Just(25u8), 3 => Just(60u8)],
        prop_oneof![7 => Just(0u8), 3 => Just(4u8)],
        (0u8..4, 0u8..4, 0u8..4),
        any::<u64>(),
        prop::option::weighted(0.15, vec(any::<u16>(), 1..=6)),
    )
        .prop_map(
            |(genes, hub_rate, ill_rate, hubs, shuffle_seed, outputs)| DagGene {
                genes,
                hub_rate,
                ill_rate,
                hubs,
                shuffle_seed,
                outputs,
            },
        )
}

/// The kind a task's output has if it succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Str,
    Bytes,
    Other,
}

/// Largest string/bytes output the generator lets one task make.
pub const MAX_TASK_BYTES: usize = 400_000;
/// Budget per DAG for bytes made (blob, concat) plus bytes hashed (sha256).
pub const DAG_BUDGET: usize = 1_200_000;
/// Most tasks in one generated DAG.
pub const MAX_TASKS: usize = 60;
/// add/mul inputs are trimmed until the result's bound is at most this, except where a
/// gene allows an overflow.
pub const MAG_LIMIT: u128 = 1 << 62;

pub struct Builder<'a> {
    pub dag: &'a DagGene,
    pub tasks: Vec<TaskSpec>,
    pub kinds: Vec<Kind>,
    /// Upper bound of each task's string/bytes length.
    pub sizes: Vec<usize>,
    /// Upper bound of each int task's absolute value.
    pub mags: Vec<u128>,
    pub spent: usize,
}

pub fn id(i: usize) -> TaskId {
    TaskId::from(format!("t{i}").as_str())
}

impl Builder<'_> {
    pub fn hub_pos(&self, kind: Kind) -> usize {
        let (i, s, b) = self.dag.hubs;
        usize::from(match kind {
            Kind::Int => i,
            Kind::Str => s,
            Kind::Bytes | Kind::Other => b,
        })
    }

    /// Maps the gene's raw picks onto earlier tasks whose kind passes `ok` (and whose size is
    /// at most `max_size`); the first pick is the hub when the gene says so.
    pub fn picks(
        &self,
        g: &Gene,
        hub_kind: Kind,
        max_size: usize,
        ok: impl Fn(Kind) -> bool,
    ) -> Vec<usize> {
        let pool: Vec<usize> = (0..self.tasks.len())
            .filter(|&t| ok(self.kinds[t]) && self.sizes[t] <= max_size)
            .collect();
        if pool.is_empty() {
            return Vec::new();
        }
        let hub = g.hub_roll < self.dag.hub_rate;
        g.deps
            .iter()
            .enumerate()
            .map(|(k, &raw)| {
                if k == 0 && hub {
                    pool[self.hub_pos(hub_kind).min(pool.len() - 1)]
                } else {
                    pool[usize::from(raw) % pool.len()]
                }
            })
            .collect()
    }

    pub fn push(&mut self, func: &str, deps: &[usize], args: Vec<Value>, kind: Kind, size: usize) {
        let i = self.tasks.len();
        self.tasks.push(TaskSpec {
            id: id(i),
            func: func.to_owned(),
            deps: deps.iter().map(|&d| id(d)).collect(),
            args,
            ..TaskSpec::default()
        });
        let mag = self.mag(func, deps, self.tasks[i].args.as_slice());
        self.kinds.push(kind);
        self.sizes.push(size);
        self.mags.push(mag);
    }

    /// An upper bound of |result| when `func` makes an int (0 otherwise).
    pub fn mag(&self, func: &str, deps: &[usize], args: &[Value]) -> u128 {
        let inputs = deps
            .iter()
            .map(|&d| self.mags[d])
            .chain(args.iter().map(|a| match a {
                Value::Int(i) => u128::from(i.unsigned_abs()),
                _ => 0,
            }));
        match func {
            "add" => inputs.fold(0u128, u128::saturating_add),
            "mul" => inputs.fold(1u128, u128::saturating_mul),
            "len" => deps.first().map_or(0, |&d| self.sizes[d] as u128),
            "identity" | "const" => inputs.take(1).sum(),
            _ => 0,
        }
    }

    /// Drops inputs of an add/mul until its result cannot overflow.
    pub fn trim_arith(&self, func: &str, deps: &mut Vec<usize>, args: &mut Vec<Value>) {
        while self.mag(func, deps, args) > MAG_LIMIT {
            if deps.pop().is_none() && args.pop().is_none() {
                break;
            }
        }
    }

    /// One parent, 10 to 14 children, and a fan-in of the children. False if it does not fit.
    pub fn add_layer(&mut self, g: &Gene) -> bool {
        let k = 10 + usize::from(g.aux % 5);
        if self.tasks.len() + k + 2 > MAX_TASKS {
            return false;
        }
        let Some(&p) = self
            .picks(g, Kind::Int, usize::MAX, |k| k != Kind::Other)
            .first()
        else {
            return false;
        };
        let (pkind, psize) = (self.kinds[p], self.sizes[p]);
        let first = self.tasks.len();
        let hash_ok = psize <= 1000 || self.spent + k * psize <= DAG_BUDGET;
        let mut child_kind = Kind::Str;
        for j in 0..k {
            let salt = Value::Str(format!("{j}"));
            match pkind {
                Kind::Int => {
                    child_kind = Kind::Int;
                    self.push("add", &[p], vec![Value::Int(j as i64)], Kind::Int, 0);
                }
                Kind::Str if psize <= 10_000 => {
                    self.push("concat", &[p], vec![salt], Kind::Str, psize + 2);
                }
                _ if hash_ok => {
                    self.spent += psize;
                    self.push("sha256", &[p], vec![salt], Kind::Str, 64);
                }
                _ => {
                    child_kind = Kind::Int;
                    self.push("len", &[p], vec![], Kind::Int, 0);
                }
            }
        }
        let children: Vec<usize> = (first..first + k).collect();
        if child_kind == Kind::Int {
            let (mut deps, mut args) = (children, vec![]);
            self.trim_arith("add", &mut deps, &mut args);
            self.push("add", &deps, args, Kind::Int, 0);
        } else {
            let size = children.iter().map(|&c| self.sizes[c]).sum();
            if size <= MAX_TASK_BYTES && self.spent + size <= DAG_BUDGET {
                self.spent += size;
                self.push("concat", &children, vec![], Kind::Str, size);
            } else {
                self.push("sha256", &children, vec![], Kind::Str, 64);
            }
        }
        true
    }

    pub fn int_arg(g: &Gene, k: usize) -> i64 {
        g.ints.get(k).copied().unwrap_or(k as i64 + 2)
    }

    pub fn push_const(&mut self, g: &Gene) {
        if g.aux.is_multiple_of(2) {
            self.push(
                "const",
                &[],
                vec![Value::Int(Self::int_arg(g, 0))],
                Kind::Int,
                0,
            );
        } else {
            let len = g.text.len();
            self.push(
                "const",
                &[],
                vec![Value::Str(g.text.clone())],
                Kind::Str,
                len,
            );
        }
    }

    pub fn push_blob(&mut self, g: &Gene) {
        let mut n = g.blob_size as usize;
        if n > 1000 && self.spent + n > DAG_BUDGET {
            n %= 200;
        }
        self.spent += n;
        let args = vec![Value::Int(n as i64), Value::Int(i64::from(g.aux))];
        self.push("blob", &[], args, Kind::Bytes, n);
    }

    pub fn add_typed(&mut self, g: &Gene) {
        let stringy = |k| matches!(k, Kind::Str | Kind::Bytes);
        if g.layer && self.add_layer(g) {
            return;
        }
        match g.op {
            0..10 => self.push_const(g),
            10..22 => self.push_blob(g),
            22..30 => {
                let deps = self.picks(g, Kind::Int, usize::MAX, |k| k != Kind::Other);
                match deps.first() {
                    Some(&d) => {
                        let (kind, size) = (self.kinds[d], self.sizes[d]);
                        self.push("identity", &[d], vec![], kind, size);
                    }
                    None => self.push_const(g),
                }
            }
            30..56 => {
                let func = if g.op < 46 { "add" } else { "mul" };
                let mut deps = self.picks(g, Kind::Int, usize::MAX, |k| k == Kind::Int);
                let mut args = g.ints.iter().map(|&i| Value::Int(i)).collect();
                // Most of the time, keep the result in range; sometimes let it overflow.
                if !g.aux.is_multiple_of(8) {
                    self.trim_arith(func, &mut deps, &mut args);
                }
                self.push(func, &deps, args, Kind::Int, 0);
            }
            56..72 => {
                let kind = if g.aux.is_multiple_of(2) {
                    Kind::Str
                } else {
                    Kind::Bytes
                };
                let deps = self.picks(g, kind, usize::MAX, |k| k == kind);
                let mut args = Vec::new();
                if kind == Kind::Str && (deps.is_empty() || g.aux % 4 < 2) {
                    args.push(Value::Str(g.text.clone()));
                }
                if deps.is_empty() && args.is_empty() {
                    return self.push_blob(g);
                }
                let size = deps.iter().map(|&d| self.sizes[d]).sum::<usize>() + g.text.len();
                if size > MAX_TASK_BYTES || self.spent + size > DAG_BUDGET {
                    // Too big: take the length of the first input instead.
                    return match deps.first() {
                        Some(&d) => self.push("len", &[d], vec![], Kind::Int, 0),
                        None => self.push_const(g),
                    };
                }
                self.spent += size;
                self.push("concat", &deps, args, kind, size);
            }
            72..82 => {
                let deps = self.picks(g, Kind::Bytes, usize::MAX, stringy);
                match deps.first() {
                    Some(&d) => self.push("len", &[d], vec![], Kind::Int, 0),
                    None => self.push_const(g),
                }
            }
            _ => {
                let mut deps = self.picks(g, Kind::Bytes, usize::MAX, stringy);
                // Hash what the budget allows.
                let mut kept = Vec::new();
                for d in deps.drain(..) {
                    if self.sizes[d] <= 1000 || self.spent + self.sizes[d] <= DAG_BUDGET {
                        self.spent += self.sizes[d];
                        kept.push(d);
                    }
                }
                let args = if g.aux.is_multiple_of(3) || kept.is_empty() {
                    vec![Value::Str(g.text.clone())]
                } else {
                    vec![]
                };
                self.push("sha256", &kept, args, Kind::Str, 64);
            }
        }
    }

    /// A task built without regard to kinds: it may well fail.
    pub fn add_ill(&mut self, g: &Gene) {
        const FUNCS: [&str; 9] = [
            "add", "mul", "concat", "len", "sha256", "identity", "const", "blob", "fail",
        ];
        let func = FUNCS[usize::from(g.op) % FUNCS.len()];
        let deps = if func == "blob" {
            // Never let a computed int size a blob.
            Vec::new()
        } else {
            self.picks(g, Kind::Other, 100_000, |_| true)
        };
        let nargs = usize::from(g.aux % 3);
        let args: Vec<Value> = (0..nargs)
            .map(|k| match (usize::from(g.aux / 3) + k) % 5 {
                0 => Value::Int(Self::int_arg(g, k)),
                1 => Value::Str(g.text.clone()),
                2 => Value::Null,
                3 => Value::Bool(k % 2 == 0),
                _ => Value::Array(vec![Value::Int(1), Value::Str("x".into())]),
            })
            .collect();
        let arg_kind = |v: &Value| match v {
            Value::Int(_) => Kind::Int,
            Value::Str(_) => Kind::Str,
            _ => Kind::Other,
        };
        let first_kind = deps
            .first()
            .map(|&d| self.kinds[d])
            .or_else(|| args.first().map(arg_kind))
            .unwrap_or(Kind::Other);
        let size = deps.iter().map(|&d| self.sizes[d]).sum::<usize>()
            + args
                .iter()
                .map(|a| match a {
                    Value::Str(s) => s.len(),
                    _ => 0,
                })
                .sum::<usize>();
        let (kind, size) = match func {
            "add" | "mul" | "len" => (Kind::Int, 0),
            "sha256" => (Kind::Str, 64),
            "blob" => (Kind::Bytes, 1000),
            "fail" => (Kind::Other, 0),
            _ => (first_kind, size),
        };
        self.spent += size;
        self.push(func, &deps, args, kind, size);
    }
}

/// A generated case: the DAG as submitted (shuffled) and its tasks in generation
/// (topological) order for the reference.
pub struct Case {
    pub spec: DagSpec,
    pub topo: Vec<TaskSpec>,
}

pub fn build(dag: &DagGene) -> Case {
    let mut b = Builder {
        dag,
        tasks: Vec::with_capacity(dag.genes.len()),
        kinds: Vec::new(),
        sizes: Vec::new(),
        mags: Vec::new(),
        spent: 0,
    };
    for g in &dag.genes {
        if b.tasks.len() >= MAX_TASKS {
            break;
        }
        if g.ill_roll < dag.ill_rate {
            b.add_ill(g);
        } else {
            b.add_typed(g);
        }
    }
    let topo = b.tasks;
    // Shuffle the file order (Fisher-Yates on a splitmix64 stream).
    let mut tasks = topo.clone();
    let mut state = dag.shuffle_seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..tasks.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        tasks.swap(i, j);
    }
    let outputs = dag.outputs.as_ref().map(|raw| {
        let mut seen = HashSet::new();
        raw.iter()
            .map(|&r| id(usize::from(r) % topo.len()))
            .filter(|t| seen.insert(t.clone()))
            .collect()
    });
    Case {
        spec: DagSpec {
            name: "proptest-random".into(),
            tasks,
            outputs,
        },
        topo,
    }
}

/// The largest out-degree and in-degree (distinct tasks) in `tasks`.
pub fn widest(tasks: &[TaskSpec]) -> (usize, usize) {
    let mut children: HashMap<&TaskId, HashSet<&TaskId>> = HashMap::new();
    let mut max_in = 0;
    for t in tasks {
        let parents: HashSet<&TaskId> = t.deps.iter().collect();
        max_in = max_in.max(parents.len());
        for p in parents {
            children.entry(p).or_default().insert(&t.id);
        }
    }
    let max_out = children.values().map(HashSet::len).max().unwrap_or(0);
    (max_out, max_in)
}

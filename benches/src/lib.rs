//! # rukong-benches
//!
//! Benchmarks for rukong:
//! - the end-to-end harness `rukong-e2e` (`src/bin/e2e.rs`), which runs the standard
//!   workloads on one warm embedded deployment (or, with `--mode cluster`, on a loopback
//!   cluster started with `rukong up`, see [`cluster`]) and reports wall-clock statistics;
//! - criterion micro-benchmarks under `benches/` (validation and scheduling, MessagePack
//!   encoding, in-memory fan-in records).
//!
//! This library holds what the harness needs that is worth testing on its own: workload-name
//! parsing, command-line parsing, summary statistics, the output checks, Redis
//! `INFO commandstats` parsing ([`redis_stats`]) and the cluster-mode runner ([`cluster`]).

pub mod cluster;
pub mod flags;
pub mod plot;
pub mod redis_stats;

use anyhow::{Context, Result, bail};
use rukong_client::workloads::Workload;
use rukong_core::{TaskId, Value};
use std::time::Duration;

/// The embedded-mode throughput target for tree reduction N = 65,536 (tasks per second).
pub const TARGET_TASKS_PER_SEC: f64 = 500_000.0;

/// The cluster-mode per-task target for tree reduction N = 65,536 and fan-out/fan-in
/// W = 100,000 (microseconds per task at the median wall; 33,333 tasks/s).
pub const CLUSTER_TARGET_US_PER_TASK: f64 = 30.0;

/// The cluster-mode target for chain L = 10,000: median wall under this many milliseconds.
pub const CLUSTER_TARGET_CHAIN_MS: f64 = 200.0;

/// Where the workloads run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// One in-process [`Local`](rukong_client::Local) deployment (in-memory store).
    #[default]
    Embedded,
    /// A loopback cluster (`rukong up`: Redis, proxy, engine, executor processes).
    Cluster,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Cluster => "cluster",
        }
    }
}

/// The workloads the harness runs when none is named: tree reduction N = 1,024 and 65,536,
/// fan-out/fan-in W = 10,000 and 100,000, chain L = 10,000.
pub fn default_workloads() -> Vec<Workload> {
    vec![
        Workload::TreeReduction { leaves: 1_024 },
        Workload::TreeReduction { leaves: 65_536 },
        Workload::FanoutFanin { width: 10_000 },
        Workload::FanoutFanin { width: 100_000 },
        Workload::Chain { length: 10_000 },
    ]
}

/// Parses a workload name: `tree:N`, `fanout:W`, `chain:L`, `blob:PxS` or `diamond`.
/// Numbers may contain `_` or `,` separators (`tree:65_536`).
pub fn parse_workload(s: &str) -> Result<Workload> {
    let s = s.trim();
    let (kind, arg) = match s.split_once(':') {
        Some((k, a)) => (k.trim(), Some(a.trim())),
        None => (s, None),
    };
    let need =
        |what: &str| arg.with_context(|| format!("workload `{s}`: expected `{kind}:{what}`"));
    let w = match kind.to_ascii_lowercase().as_str() {
        "tree" | "tree-reduction" => Workload::TreeReduction {
            leaves: parse_count(need("N")?)?,
        },
        "fanout" | "fanout-fanin" => Workload::FanoutFanin {
            width: parse_count(need("W")?)?,
        },
        "chain" => Workload::Chain {
            length: parse_count(need("L")?)?,
        },
        "blob" | "blob-digest" => {
            let a = need("PxS")?;
            let (p, size) = a
                .split_once(['x', 'X'])
                .with_context(|| format!("workload `{s}`: expected `blob:PRODUCERSxSIZE`"))?;
            Workload::BlobDigest {
                producers: parse_count(p)?,
                size: parse_number(size)?,
            }
        }
        "diamond" => {
            if arg.is_some() {
                bail!("workload `{s}`: `diamond` takes no size");
            }
            Workload::Diamond
        }
        _ => bail!(
            "unknown workload `{s}` (expected tree:N, fanout:W, chain:L, blob:PxS or diamond)"
        ),
    };
    Ok(w)
}

/// A non-negative integer, `_` and `,` separators allowed.
fn parse_number(s: &str) -> Result<usize> {
    let digits: String = s.chars().filter(|c| !matches!(c, '_' | ',')).collect();
    digits
        .parse::<usize>()
        .with_context(|| format!("`{s}` is not a non-negative integer"))
}

/// A positive integer, `_` and `,` separators allowed.
fn parse_count(s: &str) -> Result<usize> {
    match parse_number(s)? {
        0 => bail!("`{s}`: must be at least 1"),
        n => Ok(n),
    }
}

/// The harness's command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// The workloads named with `--workload`, in order; the defaults when none was.
    pub workloads: Vec<Workload>,
    pub repeats: usize,
    pub warmup: usize,
    /// Executor slots; `None`: the embedded default (one per core).
    pub slots: Option<usize>,
    pub json: Option<String>,
    pub help: bool,
    pub mode: Mode,
    /// Cluster mode: executor processes.
    pub executors: usize,
    /// Cluster mode: the `rukong` binary; `None`: the one next to this executable.
    pub rukong: Option<String>,
    /// Cluster mode: the pause between two job-status polls, in milliseconds.
    pub poll_ms: u64,
    /// Embedded mode: draw scaling curves of the measured workloads to this SVG file.
    pub plot: Option<String>,
}

pub const USAGE: &str = "\
usage: rukong-e2e [WORKLOAD]... [--mode embedded|cluster] [--workload NAME]... [--repeats N] [--warmup N]
                  [--slots N] [--json FILE] [--scaling] [--plot FILE.svg] [--executors N] [--rukong PATH] [--poll-ms MS]

Runs each workload on one warm rukong deployment, checks every run's outputs, and prints
wall-clock statistics.
  embedded: engine, executor and proxy in this process, in-memory store.
  cluster:  a private redis-server plus `rukong up` (proxy, engine, N executor processes) on
            loopback; jobs are submitted over HTTP; also counts Redis commands per task
            (INFO commandstats). Needs redis-server and the `rukong` binary.

  --mode MODE      embedded (default) or cluster
  --workload NAME  tree:N | fanout:W | chain:L | blob:PxS | diamond (repeatable; the flag
                   may be left out: `rukong bench tree:8192 --mode cluster`)
                   default: tree:1024 tree:65536 fanout:10000 fanout:100000 chain:10000
  --repeats N      timed runs per workload (default 10)
  --warmup N       untimed runs per workload first (default 2)
  --slots N        embedded: executor slots (default: one per core);
                   cluster: slots per executor process (default 1)
  --json FILE      also write every number as JSON to FILE
  --executors N    cluster: executor processes (default 2)
  --rukong PATH    cluster: the rukong binary (default: `rukong` next to this executable)
  --poll-ms MS     cluster: pause between job-status polls (default 2)
";

/// Parses the arguments after the program name. `--opt value` and `--opt=value` both work.
pub fn parse_args<I, S>(args: I) -> Result<Args>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut out = Args {
        workloads: Vec::new(),
        repeats: 10,
        warmup: 2,
        slots: None,
        json: None,
        help: false,
        mode: Mode::Embedded,
        executors: 2,
        rukong: None,
        poll_ms: 2,
        plot: None,
    };
    let mut cluster_only: Option<String> = None;
    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().with_context(|| format!("{flag} needs a value")),
            }
        };
        match flag.as_str() {
            "--workload" | "-w" => out.workloads.push(parse_workload(&value()?)?),
            "--repeats" | "-n" => {
                out.repeats = parse_count(&value()?).context("--repeats")?;
            }
            "--warmup" => out.warmup = parse_number(&value()?).context("--warmup")?,
            "--slots" => out.slots = Some(parse_count(&value()?).context("--slots")?),
            "--json" => out.json = Some(value()?),
            "--plot" => out.plot = Some(value()?),
            "--scaling" => out.workloads.extend(scaling_workloads()),
            "--help" | "-h" => out.help = true,
            "--mode" => {
                out.mode = match value()?.trim().to_ascii_lowercase().as_str() {
                    "embedded" => Mode::Embedded,
                    "cluster" => Mode::Cluster,
                    m => bail!("--mode: `{m}` is neither `embedded` nor `cluster`"),
                }
            }
            "--executors" => {
                out.executors = parse_count(&value()?).context("--executors")?;
                cluster_only.get_or_insert(flag.clone());
            }
            "--rukong" => {
                out.rukong = Some(value()?);
                cluster_only.get_or_insert(flag.clone());
            }
            "--poll-ms" => {
                out.poll_ms = parse_number(&value()?).context("--poll-ms")? as u64;
                cluster_only.get_or_insert(flag.clone());
            }
            // A bare workload (`rukong bench tree:8192 --mode cluster`) is a --workload.
            w if !w.starts_with('-') && inline.is_none() => out.workloads.push(parse_workload(w)?),
            _ => bail!("unknown argument `{arg}`\n\n{USAGE}"),
        }
    }
    if let Some(flag) = cluster_only
        && out.mode != Mode::Cluster
        && !out.help
    {
        bail!("{flag} only applies to --mode cluster");
    }
    if out.workloads.is_empty() {
        out.workloads = default_workloads();
    }
    Ok(out)
}

/// The machine a run was measured on, for `--json` reports.
pub fn machine_json(cores: usize) -> serde_json::Value {
    serde_json::json!({
        "cores": cores,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "debug_build": cfg!(debug_assertions),
    })
}

/// `--scaling`: each family at several sizes, for scaling curves.
pub fn scaling_workloads() -> Vec<Workload> {
    let mut w = Vec::new();
    for leaves in [256, 1024, 4096, 16_384, 65_536] {
        w.push(Workload::TreeReduction { leaves });
    }
    for width in [100, 1000, 10_000, 100_000] {
        w.push(Workload::FanoutFanin { width });
    }
    for length in [100, 1000, 10_000] {
        w.push(Workload::Chain { length });
    }
    w
}

/// A workload's family name for plots (`tree-reduction-1024` → `tree-reduction`).
pub fn family(w: &Workload) -> String {
    let name = w.name();
    match name.rsplit_once('-') {
        Some((f, n)) if n.chars().next().is_some_and(|c| c.is_ascii_digit()) => f.to_owned(),
        _ => name,
    }
}

/// Median, minimum, maximum and mean of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// `None` for no samples. The median of an even count is the mean of the middle two.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: s[0],
            max: s[n - 1],
            mean: s.iter().sum::<f64>() / n as f64,
        })
    }
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Checks a run's outputs against the expected ones: every expected output must be present
/// with the expected value. Names the first mismatch.
pub fn check_outputs(got: &[(TaskId, Value)], expected: &[(TaskId, Value)]) -> Result<()> {
    for (id, want) in expected {
        match got.iter().find(|(t, _)| t == id) {
            None => bail!("output `{id}` is missing (got {} outputs)", got.len()),
            Some((_, v)) if v != want => bail!("output `{id}` is {v:?}, expected {want:?}"),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks a cluster job's outputs (the engine's `{task: value}` JSON map, values in the CLI's
/// output form) against the expected ones, rendered with [`Value::to_output_json`].
pub fn check_output_json(got: &serde_json::Value, expected: &[(TaskId, Value)]) -> Result<()> {
    let Some(map) = got.as_object() else {
        bail!("the outputs are not a JSON object: {got}");
    };
    for (id, want) in expected {
        let want = want.to_output_json();
        match map.get(id.as_str()) {
            None => bail!("output `{id}` is missing (got {} outputs)", map.len()),
            Some(v) if *v != want => bail!("output `{id}` is {v}, expected {want}"),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Formats an integer with thousands separators: `65536` → `65,536`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let first = match s.len() % 3 {
        0 => 3,
        r => r,
    };
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    out.push_str(&s[..first.min(s.len())]);
    for group in s.as_bytes()[first.min(s.len())..].chunks(3) {
        out.push(',');
        out.extend(group.iter().map(|&b| b as char));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_and_even_counts() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.mean), (3.0, 1.0, 5.0, 3.0));
        let s = Summary::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.mean), (3.0, 1.0, 10.0, 4.25));
        let s = Summary::of(&[7.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (7.0, 7.0, 7.0));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn workload_names_parse() {
        assert_eq!(
            parse_workload("tree:65536").unwrap(),
            Workload::TreeReduction { leaves: 65_536 }
        );
        assert_eq!(
            parse_workload("fanout:100_000").unwrap(),
            Workload::FanoutFanin { width: 100_000 }
        );
        assert_eq!(
            parse_workload("chain:10,000").unwrap(),
            Workload::Chain { length: 10_000 }
        );
        assert_eq!(
            parse_workload("blob:4x100000").unwrap(),
            Workload::BlobDigest {
                producers: 4,
                size: 100_000
            }
        );
        assert_eq!(parse_workload("diamond").unwrap(), Workload::Diamond);
        for bad in [
            "tree",
            "tree:",
            "tree:0",
            "tree:-1",
            "blob:4",
            "star:3",
            "diamond:2",
        ] {
            assert!(parse_workload(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn args_parse_with_defaults() {
        let a = parse_args(Vec::<String>::new()).unwrap();
        assert_eq!(a.workloads, default_workloads());
        assert_eq!((a.repeats, a.warmup, a.slots, a.json), (10, 2, None, None));

        let a = parse_args([
            "--workload",
            "chain:5",
            "--workload=tree:8",
            "--repeats",
            "3",
            "--warmup=0",
            "--slots",
            "4",
            "--json",
            "out.json",
        ])
        .unwrap();
        assert_eq!(
            a.workloads,
            vec![
                Workload::Chain { length: 5 },
                Workload::TreeReduction { leaves: 8 }
            ]
        );
        assert_eq!((a.repeats, a.warmup, a.slots), (3, 0, Some(4)));
        assert_eq!(a.json.as_deref(), Some("out.json"));

        assert!(parse_args(["--repeats"]).is_err());
        assert!(parse_args(["--repeats", "0"]).is_err());
        assert!(parse_args(["--bogus"]).is_err());
        assert_eq!(a.mode, Mode::Embedded);
    }

    #[test]
    fn cluster_args_parse() {
        let a = parse_args(["--mode", "cluster"]).unwrap();
        assert_eq!(
            (a.mode, a.executors, a.rukong.as_deref(), a.poll_ms),
            (Mode::Cluster, 2, None, 2)
        );
        let a = parse_args([
            "--mode=cluster",
            "--executors",
            "4",
            "--rukong",
            "/x/rukong",
            "--poll-ms=0",
        ])
        .unwrap();
        assert_eq!(
            (a.mode, a.executors, a.rukong.as_deref(), a.poll_ms),
            (Mode::Cluster, 4, Some("/x/rukong"), 0)
        );
        // Flag order does not matter; cluster-only flags need --mode cluster.
        assert!(parse_args(["--executors", "3", "--mode", "cluster"]).is_ok());
        assert!(parse_args(["--executors", "3"]).is_err());
        assert!(parse_args(["--rukong", "x"]).is_err());
        assert!(parse_args(["--mode", "cluster", "--executors", "0"]).is_err());
        assert!(parse_args(["--mode", "distributed"]).is_err());
    }

    #[test]
    fn output_json_is_checked() {
        let want = vec![
            (TaskId::from("r"), Value::Int(3)),
            (TaskId::from("b"), Value::Bytes(vec![1, 2].into())),
        ];
        let good = serde_json::json!({
            "r": 3,
            "b": Value::Bytes(vec![1, 2].into()).to_output_json(),
            "extra": "ignored",
        });
        check_output_json(&good, &want).unwrap();
        let wrong = serde_json::json!({"r": 4, "b": good["b"].clone()});
        let err = check_output_json(&wrong, &want).unwrap_err();
        assert!(err.to_string().contains("`r` is 4, expected 3"), "{err}");
        assert!(check_output_json(&serde_json::json!({"r": 3}), &want).is_err());
        assert!(check_output_json(&serde_json::json!([]), &want).is_err());
    }

    #[test]
    fn outputs_are_checked() {
        let want = vec![(TaskId::from("r"), Value::Int(3))];
        assert!(check_outputs(&[("r".into(), Value::Int(3))], &want).is_ok());
        assert!(check_outputs(&[("r".into(), Value::Int(4))], &want).is_err());
        assert!(check_outputs(&[], &want).is_err());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(65_536), "65,536");
        assert_eq!(thousands(1_048_575), "1,048,575");
    }
}

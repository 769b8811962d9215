//! `rukong profile show DAGNAME`: the profiles that executors keep per DAG name
//! (`docs/architecture.md`), read from the cluster's Redis (`rk:profile:<dag>`). Embedded runs keep
//! profiles in memory only, so there is nothing to show for them after the process exits.

use clap::Subcommand;
use rukong_core::profile::{DagProfile, Histogram};
use rukong_core::store::ProfileStore;
use rukong_core::store::redis::{RedisConfig, RedisStore};
use std::fmt::Write as _;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ProfileCmd {
    /// Print a DAG name's profile: per function the count, mean, p50/p95/p99 of exec time
    /// and cold start, and output size; per conditional edge the taken / not-taken counts.
    Show {
        /// The DAG's `name`.
        dag: String,
        /// Redis URL of the cluster (redis://[:password@]host:port[/db]).
        #[arg(long, env = "RUKONG_REDIS", default_value = "redis://127.0.0.1:6379")]
        redis: String,
        /// Print the profile as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ProfileCmd) -> ExitCode {
    match cmd {
        ProfileCmd::Show { dag, redis, json } => match fetch(&dag, &redis) {
            Ok(p) => {
                if json {
                    println!("{}", to_json(&dag, &p));
                } else {
                    print!("{}", render(&dag, &p));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn fetch(dag: &str, url: &str) -> anyhow::Result<DagProfile> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = RedisStore::connect(RedisConfig {
            url: url.to_owned(),
            ..Default::default()
        })
        .await?;
        Ok(store.get_profile(dag).await?)
    })
}

fn stats(h: &Histogram) -> serde_json::Value {
    serde_json::json!({
        "count": h.count,
        "mean": h.mean(),
        "min": (h.count > 0).then_some(h.min),
        "max": (h.count > 0).then_some(h.max),
        "p50": h.quantile(0.5),
        "p95": h.quantile(0.95),
        "p99": h.quantile(0.99),
    })
}

/// `{"dag", "functions": {name: {exec_us, cold_start_us, output_bytes}}, "branches":
/// {task: {taken, not_taken, p_taken}}}`, each histogram as count, mean, min, max and
/// quantiles. `p_taken` is the raw frequency (null before any outcome).
pub fn to_json(dag: &str, p: &DagProfile) -> serde_json::Value {
    let functions: serde_json::Map<String, serde_json::Value> = p
        .functions
        .iter()
        .map(|(f, fp)| {
            (
                f.clone(),
                serde_json::json!({
                    "exec_us": stats(&fp.exec_us),
                    "cold_start_us": stats(&fp.cold_start_us),
                    "output_bytes": stats(&fp.output_bytes),
                }),
            )
        })
        .collect();
    let branches: serde_json::Map<String, serde_json::Value> = p
        .branches
        .iter()
        .map(|(t, b)| {
            (
                t.clone(),
                serde_json::json!({
                    "taken": b.taken,
                    "not_taken": b.not_taken,
                    "p_taken": (b.total() > 0).then(|| b.p_taken(0.0)),
                }),
            )
        })
        .collect();
    serde_json::json!({"dag": dag, "functions": functions, "branches": branches})
}

fn time(us: Option<f64>) -> String {
    match us {
        None => "-".into(),
        Some(v) if v >= 1e6 => format!("{:.2}s", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.2}ms", v / 1e3),
        Some(v) => format!("{v:.0}µs"),
    }
}

fn bytes(b: Option<f64>) -> String {
    match b {
        None => "-".into(),
        Some(v) if v >= 1024.0 * 1024.0 => format!("{:.1}MiB", v / (1024.0 * 1024.0)),
        Some(v) if v >= 1024.0 => format!("{:.1}KiB", v / 1024.0),
        Some(v) => format!("{v:.0}B"),
    }
}

fn row(h: &Histogram, f: fn(Option<f64>) -> String) -> [String; 5] {
    let q = |x| f(h.quantile(x).map(|v| v as f64));
    [h.count.to_string(), f(h.mean()), q(0.5), q(0.95), q(0.99)]
}

fn table(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            if i == 0 {
                let _ = write!(s, "{c}{}", " ".repeat(pad));
            } else {
                let _ = write!(s, "  {}{c}", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(out, &mut head.iter().copied());
    for r in rows {
        line(out, &mut r.iter().map(String::as_str));
    }
}

/// The human-readable form: one table of functions, one of conditional edges.
pub fn render(dag: &str, p: &DagProfile) -> String {
    let mut out = String::new();
    if p.is_empty() {
        let _ = writeln!(out, "no profile for DAG {dag:?}");
        return out;
    }
    let _ = writeln!(
        out,
        "profile of DAG {dag:?}: {} function(s), {} conditional edge(s)\n",
        p.functions.len(),
        p.branches.len()
    );
    if !p.functions.is_empty() {
        let rows: Vec<Vec<String>> = p
            .functions
            .iter()
            .map(|(f, fp)| {
                let mut r = vec![f.clone()];
                r.extend(row(&fp.exec_us, time));
                r.extend(row(&fp.cold_start_us, time));
                let o = row(&fp.output_bytes, bytes);
                r.extend([o[0].clone(), o[1].clone(), o[3].clone()]);
                r
            })
            .collect();
        table(
            &mut out,
            &[
                "function",
                "runs",
                "exec mean",
                "p50",
                "p95",
                "p99",
                "cold",
                "cold mean",
                "p50",
                "p95",
                "p99",
                "outputs",
                "out mean",
                "p95",
            ],
            &rows,
        );
    }
    if !p.branches.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = p
            .branches
            .iter()
            .map(|(t, b)| {
                vec![
                    t.clone(),
                    b.taken.to_string(),
                    b.not_taken.to_string(),
                    if b.total() > 0 {
                        format!("{:.3}", b.p_taken(0.0))
                    } else {
                        "-".into()
                    },
                    format!("{:.3}", b.p_taken(1.0)),
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                "guarded task",
                "taken",
                "not taken",
                "p(taken)",
                "p (Laplace)",
            ],
            &rows,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rukong_core::profile::FnProfile;

    #[test]
    fn renders_functions_and_branches() {
        let mut p = DagProfile::new();
        let mut f = FnProfile::default();
        f.exec_us.record(1500);
        f.exec_us.record(2500);
        f.cold_start_us.record(500_000);
        f.output_bytes.record(2048);
        p.insert("add", f);
        for taken in [true, true, true, false] {
            p.record_branch("then", taken);
        }
        let text = render("demo", &p);
        assert!(text.contains("profile of DAG \"demo\": 1 function(s), 1 conditional edge(s)"));
        assert!(text.contains("add"), "{text}");
        assert!(text.contains("2.00ms"), "{text}");
        assert!(text.contains("500.00ms"), "{text}");
        assert!(text.contains("2.0KiB"), "{text}");
        assert!(text.contains("0.750"), "{text}");
        assert!(text.contains("0.667"), "{text}");
        let j = to_json("demo", &p);
        assert_eq!(j["functions"]["add"]["exec_us"]["count"], 2);
        assert_eq!(j["functions"]["add"]["exec_us"]["mean"], 2000.0);
        assert_eq!(j["branches"]["then"]["taken"], 3);
        assert_eq!(j["branches"]["then"]["p_taken"], 0.75);
        assert!(render("none", &DagProfile::new()).contains("no profile"));
    }
}

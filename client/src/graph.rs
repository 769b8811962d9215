//! `rukong graph`: the DAG in Graphviz DOT, each task coloured by the static schedule (the
//! source's depth-first search) that planned it. Bold edges are `become` edges (the slot
//! continues into the child); tasks that hand their fan-out to the proxy have a double
//! border. SVG goes through Graphviz's `dot` when it is installed.

use rukong_core::Dag;
use rukong_core::schedule::{Schedule, claims};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

const PALETTE: [&str; 12] = [
    "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
    "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f",
];

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

/// The DAG as DOT text.
pub fn to_dot(dag: &Dag, schedule: &Schedule) -> String {
    let owner = claims(dag);
    let mut s = String::with_capacity(dag.len() * 80);
    let _ = writeln!(s, "digraph {} {{", quote(dag.name()));
    let _ = writeln!(
        s,
        "  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n  edge [color=\"#555555\"];"
    );
    for t in dag.tasks() {
        let color = PALETTE[owner[t.get()] as usize % PALETTE.len()];
        let extra = if schedule.use_proxy(dag, t) {
            ", peripheries=2"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {} [label=\"{}\\n{}\", fillcolor=\"{color}\"{extra}];",
            quote(dag.id(t).as_str()),
            escape(dag.id(t).as_str()),
            escape(dag.func_name(t))
        );
    }
    for t in dag.tasks() {
        let become_child = schedule.become_child(dag, t);
        for c in dag.children(t) {
            let style = if Some(c.task) == become_child {
                " [penwidth=2.5, color=\"#000000\"]"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {} -> {}{style};",
                quote(dag.id(t).as_str()),
                quote(dag.id(c.task).as_str())
            );
        }
    }
    s.push_str("}\n");
    s
}

/// Renders DOT to SVG with Graphviz's `dot`.
pub fn dot_to_svg(dot: &str) -> Result<Vec<u8>, String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run Graphviz `dot` ({e}); install it (Debian: apt-get install -y graphviz) or use --format dot"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "dot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rukong_core::dag::{DagSpec, Limits, validate};

    #[test]
    fn dot_marks_schedules_become_edges_and_proxy_fan_outs() {
        let mut y = String::from("tasks: [{id: s, fn: const}, {id: \"q\\\"x\", fn: const}");
        for i in 0..10 {
            y.push_str(&format!(", {{id: c{i}, fn: identity, deps: [s]}}"));
        }
        y.push(']');
        let dag = validate(
            DagSpec::from_yaml_str(&y).unwrap(),
            &Limits::default(),
            &|_| true,
        );
        // `q"x` is not a valid id: validation refuses it, so quoting never sees it.
        assert!(dag.is_err());
        let y = y.replace("q\\\"x", "other");
        let dag = validate(
            DagSpec::from_yaml_str(&y).unwrap(),
            &Limits::default(),
            &|_| true,
        )
        .unwrap();
        let sched = rukong_core::schedule::schedule(&dag, 10);
        let dot = to_dot(&dag, &sched);
        assert!(dot.starts_with("digraph \"dag\" {"));
        assert!(
            dot.contains("\"s\" [label=\"s\\nconst\", fillcolor=\"#8dd3c7\", peripheries=2];"),
            "{dot}"
        );
        assert!(
            dot.contains("\"other\" [label=\"other\\nconst\", fillcolor=\"#ffffb3\"];"),
            "{dot}"
        );
        assert!(dot.contains("\"s\" -> \"c0\" [penwidth=2.5"), "{dot}");
        assert!(dot.contains("\"s\" -> \"c1\";"), "{dot}");
        assert_eq!(dot.matches(" -> ").count(), 10);
    }
}

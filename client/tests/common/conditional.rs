//! Conditional-branch DAGs (`docs/conditional-branches.md`) with their expected outcomes, shared by
//! the embedded (`tests/conditional.rs`) and cluster (`tests/cluster.rs`) tests. Every task that
//! must be skipped calls `fail`: if it ran, the job would fail.

use serde_json::{Value as J, json};

pub struct Case {
    pub name: &'static str,
    pub yaml: String,
    /// Requested outputs: `Some(value)` (the CLI JSON form), or `None` for skipped.
    pub expect: Vec<(String, Option<J>)>,
    /// Tasks skipped in all.
    pub skipped: u64,
    pub tasks: u64,
}

fn t(line: &str) -> String {
    format!("  - {line}\n")
}

/// A guard that fails skips its task and the whole chain after it; one that passes (with
/// `1 == 1.0`) runs.
pub fn chain() -> Case {
    let mut y = String::from("name: cond-chain\ntasks:\n");
    y += &t("{id: a, fn: const, args: [1]}");
    y += &t("{id: g, fn: fail, deps: [a], args: [ran], guard: {dep: a, equals: 2}}");
    y += &t("{id: c1, fn: fail, deps: [g], args: [ran]}");
    y += &t("{id: c2, fn: fail, deps: [c1], args: [ran]}");
    y += &t("{id: c3, fn: fail, deps: [c2], args: [ran]}");
    y += &t("{id: h, fn: identity, deps: [a], guard: {dep: a, equals: 1.0}}");
    y += &t("{id: h2, fn: add, deps: [h], args: [1]}");
    y += "outputs: [c1, c3, h2]\n";
    Case {
        name: "chain",
        yaml: y,
        expect: vec![
            ("c1".into(), None),
            ("c3".into(), None),
            ("h2".into(), Some(json!(2))),
        ],
        skipped: 4,
        tasks: 3,
    }
}

/// A skipped task with `width` children (a proxy-handled fan-out from 10 on), each with a
/// chain; fan-ins over them with `join: all` and `join: any`; and a completed parent whose
/// fan-out children are fan-ins with the skipped one.
pub fn fan_out(width: usize) -> Case {
    let mut y = String::from("name: cond-fanout\ntasks:\n");
    y += &t("{id: a, fn: const, args: [1]}");
    y += &t("{id: g, fn: fail, deps: [a], args: [ran], guard: {dep: a, equals: 0}}");
    y += &t("{id: m, fn: const, args: [{v: 7}]}");
    y += &t("{id: p, fn: const, args: [5]}");
    let nexts: Vec<String> = (0..width).map(|i| format!("k{i}.next")).collect();
    for i in 0..width {
        y += &t(&format!("{{id: k{i}, fn: fail, deps: [g], args: [ran]}}"));
        y += &t(&format!(
            "{{id: k{i}.next, fn: fail, deps: [k{i}], args: [ran]}}"
        ));
        y += &t(&format!(
            "{{id: p.c{i}, fn: fail, deps: [p, g], args: [ran]}}"
        ));
        y += &t(&format!("{{id: p.d{i}, fn: eq, deps: [p, g], join: any}}"));
    }
    let all = nexts.join(", ");
    y += &t(&format!(
        "{{id: all, fn: fail, deps: [{all}], args: [ran]}}"
    ));
    y += &t(&format!(
        "{{id: any, fn: fail, deps: [{all}], args: [ran], join: any}}"
    ));
    y += &t(&format!(
        "{{id: mixed, fn: max_by, deps: [{all}, m], args: [v], join: any}}"
    ));
    y += &t("{id: mixed_all, fn: fail, deps: [k0.next, m], args: [ran]}");
    let last = width - 1;
    y += &format!(
        "outputs: [all, any, mixed, mixed_all, k0, k{last}.next, p.c0, p.d0, p.d{last}]\n"
    );
    Case {
        name: "fan-out",
        yaml: y,
        expect: vec![
            ("all".into(), None),
            ("any".into(), None),
            ("mixed".into(), Some(json!({"v": 7}))),
            ("mixed_all".into(), None),
            ("k0".into(), None),
            (format!("k{last}.next"), None),
            ("p.c0".into(), None),
            ("p.d0".into(), Some(json!(false))),
            (format!("p.d{last}"), Some(json!(false))),
        ],
        skipped: 3 * width as u64 + 4,
        tasks: 4 + width as u64,
    }
}

/// Fan-ins: `join: all` and `join: any` with a skipped parent arriving first or last (after
/// a `sleep`), `null` for skipped inputs, all parents skipped, guards on fan-in children,
/// and a guard whose dependency was skipped.
pub fn fan_in() -> Case {
    let mut y = String::from("name: cond-fanin\ntasks:\n");
    y += &t("{id: a, fn: const, args: [1]}");
    y += &t("{id: slow, fn: sleep, deps: [a], args: [30]}");
    y += &t("{id: g, fn: fail, deps: [a], args: [ran], guard: {dep: a, equals: 2}}");
    y += &t("{id: gs, fn: fail, deps: [slow], args: [ran], guard: {dep: slow, equals: 2}}");
    y += &t("{id: h, fn: const, args: [5]}");
    y += &t("{id: n, fn: const, args: [null]}");
    y += &t("{id: j_all, fn: fail, deps: [g, h], args: [ran]}");
    y += &t("{id: j_all_slow, fn: fail, deps: [gs, h], args: [ran]}");
    y += &t("{id: j_any, fn: eq, deps: [g, h], join: any}");
    y += &t("{id: j_any_null, fn: eq, deps: [g, n], join: any}");
    y += &t("{id: j_any_slow, fn: eq, deps: [gs, n], join: any}");
    y += &t("{id: j_any_none, fn: fail, deps: [g, gs], args: [ran], join: any}");
    y += &t("{id: after_none, fn: fail, deps: [j_any_none], args: [ran]}");
    y += &t(
        "{id: guard_on_skipped, fn: fail, deps: [g, h], args: [ran], join: any, guard: {dep: g, equals: null}}",
    );
    y += &t("{id: guard_pass, fn: add, deps: [a, h], guard: {dep: h, equals: 5}}");
    y += &t("{id: guard_fail, fn: fail, deps: [a, h], args: [ran], guard: {dep: h, equals: 6}}");
    y += &t("{id: after_pass, fn: add, deps: [guard_pass], args: [1]}");
    y += "outputs: [j_all, j_all_slow, j_any, j_any_null, j_any_slow, j_any_none, after_none, guard_on_skipped, guard_fail, after_pass]\n";
    Case {
        name: "fan-in",
        yaml: y,
        expect: vec![
            ("j_all".into(), None),
            ("j_all_slow".into(), None),
            ("j_any".into(), Some(json!(false))),
            ("j_any_null".into(), Some(json!(true))),
            ("j_any_slow".into(), Some(json!(true))),
            ("j_any_none".into(), None),
            ("after_none".into(), None),
            ("guard_on_skipped".into(), None),
            ("guard_fail".into(), None),
            ("after_pass".into(), Some(json!(7))),
        ],
        skipped: 8,
        tasks: 9,
    }
}

/// The README's example: `street` skips the expensive model, `fog` runs it.
pub fn cascade() -> Case {
    let path = super::repo("examples/inference-cascade.yaml");
    Case {
        name: "inference-cascade",
        yaml: std::fs::read_to_string(path).expect("the example exists"),
        expect: vec![
            (
                "street.answer".into(),
                Some(json!({"label": "car", "confidence": 0.94})),
            ),
            (
                "fog.answer".into(),
                Some(json!({"label": "truck", "confidence": 0.87})),
            ),
            ("street.expensive".into(), None),
            (
                "fog.expensive".into(),
                Some(json!({"label": "truck", "confidence": 0.87})),
            ),
        ],
        skipped: 2,
        tasks: 16,
    }
}

pub fn all_cases() -> Vec<Case> {
    vec![chain(), fan_out(4), fan_out(40), fan_in(), cascade()]
}

/// Checks a CLI JSON report (`{"outputs", "skipped", "stats"}`) against the case.
pub fn check_json(case: &Case, v: &J, how: &str) {
    assert_eq!(
        v["stats"]["state"], "succeeded",
        "{} ({how}): {v}",
        case.name
    );
    let mut skipped: Vec<&str> = Vec::new();
    for (id, want) in &case.expect {
        match want {
            Some(w) => assert_eq!(
                &v["outputs"][id.as_str()],
                w,
                "{} ({how}): output {id}",
                case.name
            ),
            None => {
                skipped.push(id);
                assert!(
                    v["outputs"].get(id.as_str()).is_none(),
                    "{} ({how}): {id} was skipped",
                    case.name
                );
            }
        }
    }
    let mut got: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap_or_else(|| panic!("{} ({how}): no skipped list: {v}", case.name))
        .iter()
        .filter_map(J::as_str)
        .collect();
    got.sort_unstable();
    skipped.sort_unstable();
    assert_eq!(got, skipped, "{} ({how})", case.name);
    // Stats come from each invocation's progress event, and an invocation that is still
    // walking other tasks when the last sink finishes flushes after the job has ended (as
    // for `tasks` on any DAG): the counts are at most the totals, and usually equal.
    let (skips, tasks) = (
        v["stats"]["skipped"].as_u64().unwrap_or(0),
        v["stats"]["tasks"].as_u64().unwrap_or(0),
    );
    assert!(
        (1..=case.skipped).contains(&skips) && tasks <= case.tasks,
        "{} ({how}): skipped {skips} of {}, tasks {tasks} of {}",
        case.name,
        case.skipped,
        case.tasks
    );
}

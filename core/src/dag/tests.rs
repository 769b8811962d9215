use super::*;
use crate::error::DagError;
use crate::ids::TaskIdx;

fn known(f: &str) -> bool {
    matches!(f, "const" | "add" | "identity")
}

fn check(text: &str) -> Result<Dag, DagError> {
    validate(
        DagSpec::parse(text, DagFormat::sniff(text))?,
        &Limits::default(),
        &known,
    )
}

fn chain_spec(n: usize) -> DagSpec {
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tasks.push(TaskSpec {
            id: format!("t{i}").into(),
            func: if i == 0 { "const" } else { "identity" }.into(),
            deps: if i == 0 {
                vec![]
            } else {
                vec![format!("t{}", i - 1).into()]
            },
            ..Default::default()
        });
    }
    DagSpec {
        name: "chain".into(),
        tasks,
        outputs: None,
    }
}

#[test]
fn yaml_and_json_give_the_same_dag() {
    let y = check("name: tiny\ntasks:\n  - {id: a, fn: const, args: [2]}\n  - {id: b, fn: const, args: [3]}\n  - {id: c, fn: add, deps: [a, b], args: [10]}\noutputs: [c]\n").unwrap();
    let j = check(r#"{"name":"tiny","tasks":[{"id":"a","fn":"const","args":[2]},{"id":"b","fn":"const","args":[3]},{"id":"c","fn":"add","deps":["a","b"],"args":[10]}],"outputs":["c"]}"#).unwrap();
    for d in [&y, &j] {
        assert_eq!(d.name(), "tiny");
        assert_eq!(d.len(), 3);
        let c = d.lookup("c").unwrap();
        assert_eq!(d.deps(c), &[TaskIdx(0), TaskIdx(1)]);
        assert_eq!(d.args(c), &[crate::Value::Int(10)]);
        assert_eq!(d.outputs(), &[c]);
        assert_eq!(d.sources(), &[TaskIdx(0), TaskIdx(1)]);
    }
}

#[test]
fn outputs_default_to_every_sink() {
    let d = check("tasks: [{id: a, fn: const}, {id: b, fn: identity, deps: [a]}, {id: c, fn: identity, deps: [a]}]").unwrap();
    assert_eq!(d.outputs().len(), 2);
    assert_eq!(d.sink_count(), 2);
}

#[test]
fn unknown_fields_are_rejected_with_their_name() {
    let e = check("tasks: [{id: a, fn: const, dep: [b]}]").unwrap_err();
    assert!(e.to_string().contains("dep"), "{e}");
}

#[test]
fn each_error_names_the_task() {
    let cases: &[(&str, &str)] = &[
        (r#"{"tasks":[{"id":"a:b","fn":"const"}]}"#, "a:b"),
        (r#"{"tasks":[{"id":"{tag}","fn":"const"}]}"#, "{tag}"),
        (
            r#"{"tasks":[{"id":"d","fn":"const"},{"id":"d","fn":"const"}]}"#,
            "task d: duplicate id",
        ),
        (
            r#"{"tasks":[{"id":"a","fn":"add","deps":["missing"]}]}"#,
            "task a: unknown dependency \"missing\"",
        ),
        (
            r#"{"tasks":[{"id":"a","fn":"nope"}]}"#,
            "task a: unknown function \"nope\"",
        ),
        (
            r#"{"tasks":[{"id":"self","fn":"identity","deps":["self"]}]}"#,
            "self needs self",
        ),
        (
            r#"{"tasks":[{"id":"a","fn":"add","deps":["b"]},{"id":"b","fn":"add","deps":["a"]}]}"#,
            "cycle through task",
        ),
        (
            r#"{"tasks":[{"id":"a","fn":"const"}],"outputs":["zz"]}"#,
            "outputs: unknown task \"zz\"",
        ),
    ];
    for (text, needle) in cases {
        let e = check(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
    let long = "x".repeat(129);
    let e = check(&format!(r#"{{"tasks":[{{"id":"{long}","fn":"const"}}]}}"#)).unwrap_err();
    assert!(matches!(e, DagError::BadId { .. }), "{e}");
    assert!(matches!(check(r#"{"tasks":[]}"#), Err(DagError::Empty)));
    assert!(matches!(
        check(r#"{"tasks":[{"id":"a","#),
        Err(DagError::Parse { .. })
    ));
}

#[test]
fn several_problems_are_reported_together() {
    let e = check(r#"{"tasks":[{"id":"a","fn":"nope"},{"id":"b","fn":"add","deps":["zz"]}]}"#)
        .unwrap_err();
    let DagError::Many(all) = &e else {
        panic!("{e}")
    };
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].task().unwrap().as_str(), "a");
    assert_eq!(all[1].task().unwrap().as_str(), "b");
}

#[test]
fn limits_are_enforced() {
    let limits = Limits {
        max_tasks: 2,
        max_arg_bytes: 16,
    };
    let spec = DagSpec::from_json_str(
        r#"{"tasks":[{"id":"a","fn":"const"},{"id":"b","fn":"const"},{"id":"c","fn":"const"}]}"#,
    )
    .unwrap();
    assert!(matches!(
        validate(spec, &limits, &known),
        Err(DagError::TooManyTasks { count: 3, max: 2 })
    ));
    let spec = DagSpec::from_json_str(
        r#"{"tasks":[{"id":"big","fn":"const","args":["0123456789abcdefghij"]}]}"#,
    )
    .unwrap();
    let e = validate(spec, &limits, &known).unwrap_err();
    assert!(
        matches!(&e, DagError::ArgsTooLarge { task, .. } if task.as_str() == "big"),
        "{e}"
    );
}

#[test]
fn duplicate_deps_count_once_for_fan_in_and_keep_their_order() {
    let d =
        check("tasks: [{id: a, fn: const}, {id: b, fn: const}, {id: c, fn: add, deps: [a, b, a]}]")
            .unwrap();
    let c = d.lookup("c").unwrap();
    assert_eq!(d.deps(c).len(), 3);
    assert_eq!(d.needed(c), 2);
    assert_eq!(d.children(TaskIdx(0)).len(), 1);
    assert_eq!(d.children(TaskIdx(0))[0].pos, 0);
    assert_eq!(d.children(TaskIdx(1))[0].pos, 1);
}

#[test]
fn duplicate_deps_of_wide_fan_ins_count_once_too() {
    // Over 16 dependencies take the long-list path; two such fan-ins share parents, so
    // one's marks must not leak into the other's.
    let mut yaml = String::from("tasks:\n");
    for i in 0..20 {
        yaml.push_str(&format!("  - {{id: p{i}, fn: const}}\n"));
    }
    let list = |order: &[usize]| {
        order
            .iter()
            .map(|i| format!("p{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let first: Vec<usize> = (0..20).chain([3, 0, 19]).collect();
    let second: Vec<usize> = (0..20).rev().chain([19, 7]).collect();
    yaml.push_str(&format!(
        "  - {{id: w, fn: add, deps: [{}]}}\n",
        list(&first)
    ));
    yaml.push_str(&format!(
        "  - {{id: v, fn: add, deps: [{}]}}\n",
        list(&second)
    ));
    let d = check(&yaml).unwrap();
    let (w, v) = (d.lookup("w").unwrap(), d.lookup("v").unwrap());
    assert_eq!((d.deps(w).len(), d.needed(w)), (23, 20));
    assert_eq!((d.deps(v).len(), d.needed(v)), (22, 20));
    for i in 0..20u32 {
        let p = d.lookup(&format!("p{i}")).unwrap();
        let kids = d.children(p);
        assert_eq!(kids.len(), 2, "p{i}");
        // Each parent's fan-in bit is its first position in the child's list.
        assert_eq!(kids.iter().find(|c| c.task == w).unwrap().pos, i);
        assert_eq!(kids.iter().find(|c| c.task == v).unwrap().pos, 19 - i);
    }
}

#[test]
fn million_task_chain_validates_and_its_closed_cycle_is_found() {
    let n = 1_000_000;
    let d = validate(chain_spec(n), &Limits::default(), &known).unwrap();
    assert_eq!(d.len(), n);
    assert_eq!(d.topo_order().len(), n);
    // Close it into a cycle: t0 now depends on the last task.
    let mut spec = chain_spec(n);
    spec.tasks[0].deps = vec![format!("t{}", n - 1).into()];
    let e = validate(spec, &Limits::default(), &known).unwrap_err();
    let DagError::Cycle { path, .. } = &e else {
        panic!("{e}")
    };
    assert!(path.contains(&format!("({n} tasks)")), "{path}");
}

#[test]
fn compiled_dag_round_trips_through_msgpack() {
    let d =
        check("tasks: [{id: a, fn: const, args: [1]}, {id: b, fn: add, deps: [a, a], retries: 2}]")
            .unwrap();
    let back = Dag::from_msgpack(&d.to_msgpack()).unwrap();
    assert_eq!(back.lookup("b"), d.lookup("b"));
    assert_eq!(back.extras(TaskIdx(1)).unwrap().retries, 2);
    assert_eq!(back.deps(TaskIdx(1)), d.deps(TaskIdx(1)));
}

#[test]
fn guards_and_joins_are_validated_and_compiled() {
    let d = check("tasks: [{id: a, fn: const, args: [1]}, {id: b, fn: identity, deps: [a], guard: {dep: a, equals: 1}}, {id: c, fn: add, deps: [a, b], join: any}]").unwrap();
    assert!(d.has_guards());
    let (a, b, c) = (
        d.lookup("a").unwrap(),
        d.lookup("b").unwrap(),
        d.lookup("c").unwrap(),
    );
    assert_eq!(d.guard(b).unwrap().dep.as_str(), "a");
    assert!(d.guard(a).is_none());
    assert_eq!(d.join(c), Join::Any);
    assert_eq!(d.join(b), Join::All);
    // The flag is rebuilt after a MessagePack round trip.
    let back = Dag::from_msgpack(&d.to_msgpack()).unwrap();
    assert!(back.has_guards());
    let plain = check(
        "tasks: [{id: a, fn: const, args: [1]}, {id: c, fn: identity, deps: [a], join: any}]",
    )
    .unwrap();
    assert!(!plain.has_guards(), "join alone never skips");

    let e = check("tasks: [{id: a, fn: const, args: [1]}, {id: z, fn: const, args: [1]}, {id: b, fn: identity, deps: [a], guard: {dep: z, equals: 1}}]").unwrap_err();
    assert_eq!(e.task().map(|t| t.as_str()), Some("b"));
    assert!(
        e.to_string()
            .contains("task b: guard.dep \"z\" is not one of its deps (a)"),
        "{e}"
    );
    let e =
        check("tasks: [{id: a, fn: const, args: [1], guard: {dep: a, equals: 1}}]").unwrap_err();
    assert!(e.to_string().contains("(it has none)"), "{e}");
    let e = check("tasks: [{id: a, fn: const, args: [1], join: most}]").unwrap_err();
    assert!(e.to_string().contains("unknown variant `most`"), "{e}");
    let e = check("tasks: [{id: a, fn: const}, {id: b, fn: identity, deps: [a], guard: {dep: a}}]")
        .unwrap_err();
    assert!(e.to_string().contains("missing field `equals`"), "{e}");
}

#[test]
fn guard_equality_compares_numbers_by_value() {
    use crate::value::Value;
    let i = Value::Int;
    let f = Value::Float;
    assert!(values_equal(&i(1), &f(1.0)));
    assert!(values_equal(&f(1.0), &i(1)));
    assert!(!values_equal(&i(1), &f(1.5)));
    assert!(!values_equal(&f(f64::NAN), &f(f64::NAN)));
    assert!(!values_equal(&i(i64::MAX), &f((1u64 << 63) as f64)));
    assert!(values_equal(&i(-(1 << 62)), &f(-(2f64.powi(62)))));
    assert!(!values_equal(&i(1), &Value::Str("1".into())));
    assert!(!values_equal(&i(0), &Value::Bool(false)));
    assert!(!values_equal(&Value::Null, &i(0)));
    assert!(values_equal(&Value::Null, &Value::Null));
    assert!(values_equal(
        &Value::Array(vec![i(1), Value::Str("x".into())]),
        &Value::Array(vec![f(1.0), Value::Str("x".into())])
    ));
    assert!(!values_equal(
        &Value::Array(vec![i(1)]),
        &Value::Array(vec![i(1), i(2)])
    ));
    let m = |v: Value| Value::Map([("k".to_owned(), v)].into_iter().collect());
    assert!(values_equal(&m(i(2)), &m(f(2.0))));
    assert!(!values_equal(&m(i(2)), &m(i(3))));
}

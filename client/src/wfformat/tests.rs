use super::*;
use serde_json::json;

fn opts() -> ImportOptions {
    ImportOptions {
        time_scale: 1.0,
        size_scale: 1.0,
        ..Default::default()
    }
}

/// A 1.6 instance: `a` → `b`, `a` → `c`, `b`,`c` → `d`.
fn diamond() -> serde_json::Value {
    json!({
        "name": "diamond",
        "schemaVersion": "1.6",
        "workflow": {
            "specification": {
                "tasks": [
                    {"name": "A", "id": "a", "parents": [], "children": ["b", "c"],
                     "inputFiles": ["in"], "outputFiles": ["x", "y"]},
                    {"name": "B", "id": "b", "parents": ["a"], "children": ["d"],
                     "inputFiles": ["x"], "outputFiles": ["z"]},
                    {"name": "C", "id": "c", "parents": ["a"], "children": ["d"],
                     "inputFiles": ["y"], "outputFiles": []},
                    {"name": "D", "id": "d", "parents": ["b", "c"], "children": [],
                     "inputFiles": ["z"], "outputFiles": ["out", "out"]}
                ],
                "files": [
                    {"id": "in", "sizeInBytes": 1000},
                    {"id": "x", "sizeInBytes": 10},
                    {"id": "y", "sizeInBytes": 20},
                    {"id": "z", "sizeInBytes": 5.4},
                    {"id": "out", "sizeInBytes": 7},
                    {"id": "out", "sizeInBytes": 99}
                ],
                "futureField": {"ignored": true}
            },
            "execution": {
                "makespanInSeconds": 10,
                "executedAt": "2024-01-01T00:00:00Z",
                "tasks": [
                    {"id": "a", "runtimeInSeconds": 1.0, "coreCount": 1},
                    {"id": "b", "runtimeInSeconds": 2.0004},
                    {"id": "c", "runtimeInSeconds": 0.5},
                    {"id": "d", "runtimeInSeconds": 0}
                ]
            }
        }
    })
}

fn import_value(v: &serde_json::Value, o: &ImportOptions) -> Result<Imported, ImportError> {
    import_detailed(&v.to_string(), o)
}

fn task<'a>(spec: &'a DagSpec, id: &str) -> &'a TaskSpec {
    spec.tasks
        .iter()
        .find(|t| t.id.as_str() == id)
        .unwrap_or_else(|| panic!("no task {id}"))
}

#[test]
fn maps_each_task_to_a_blob_and_a_sleep() {
    let imp = import_value(&diamond(), &opts()).expect("imports");
    assert!(imp.split_layout);
    assert_eq!(imp.schema_version.as_deref(), Some("1.6"));
    let spec = &imp.spec;
    assert_eq!(spec.name, "diamond");
    assert_eq!(spec.tasks.len(), 8);
    assert_eq!(spec.outputs, None);
    let a = task(spec, "a");
    assert_eq!(a.func, "sleep");
    assert_eq!(a.deps, vec![TaskId::from("a.blob")]);
    assert_eq!(a.args, vec![Value::Int(1000)]);
    let a_blob = task(spec, "a.blob");
    assert_eq!(a_blob.func, "blob");
    assert!(a_blob.deps.is_empty());
    assert_eq!(a_blob.args, vec![Value::Int(30), Value::Int(0)]);
    let b = task(spec, "b");
    assert_eq!(b.args, vec![Value::Int(2000)], "2000.4 ms rounds to 2000");
    assert_eq!(
        task(spec, "b.blob").args,
        vec![Value::Int(5), Value::Int(1)],
        "5.4 bytes round to 5"
    );
    assert_eq!(task(spec, "c.blob").args[0], Value::Int(0));
    let d = task(spec, "d");
    assert_eq!(
        d.deps,
        vec![TaskId::from("d.blob"), TaskId::from("b"), TaskId::from("c")]
    );
    assert_eq!(d.args, vec![Value::Int(0)]);
    assert_eq!(
        task(spec, "d.blob").args[0],
        Value::Int(7),
        "a repeated output file counts once; a repeated file id keeps its first size"
    );
    assert_eq!(imp.critical_path_ms(), 3000);
    assert_eq!(critical_path_ms(spec), Some(3000));
    assert_eq!(imp.renamed().count(), 0);
}

#[test]
fn defaults_scale_seconds_to_milliseconds_and_spin_mode() {
    let imp = import_value(&diamond(), &ImportOptions::default()).expect("imports");
    assert_eq!(task(&imp.spec, "a").args, vec![Value::Int(1)]);
    assert_eq!(task(&imp.spec, "b").args, vec![Value::Int(2)]);
    assert_eq!(
        task(&imp.spec, "a.blob").args[0],
        Value::Int(0),
        "30 B × 1e-3"
    );
    let spin = ImportOptions {
        mode: Mode::Spin,
        ..opts()
    };
    let imp = import_value(&diamond(), &spin).expect("imports");
    assert!(
        imp.spec
            .tasks
            .iter()
            .all(|t| t.func == "spin" || t.func == "blob")
    );
}

#[test]
fn max_blob_caps_the_size() {
    let o = ImportOptions {
        max_blob: 12,
        ..opts()
    };
    let imp = import_value(&diamond(), &o).expect("imports");
    assert_eq!(task(&imp.spec, "a.blob").args[0], Value::Int(12));
    assert_eq!(imp.tasks[0].blob_bytes, 12);
    assert_eq!(imp.tasks[0].output_bytes, 30.0);
}

#[test]
fn edges_declared_only_as_children_count() {
    let mut v = diamond();
    v["workflow"]["specification"]["tasks"][3]["parents"] = json!(["b"]);
    let imp = import_value(&v, &opts()).expect("imports");
    assert_eq!(
        task(&imp.spec, "d").deps,
        vec![TaskId::from("d.blob"), TaskId::from("b"), TaskId::from("c")]
    );
}

#[test]
fn ids_are_sanitized_and_kept_unique() {
    let v = json!({"name": "ids", "workflow": {
        "specification": {"tasks": [
            {"id": "x:1", "parents": []},
            {"id": "x#1", "parents": ["x:1"]},
            {"id": "x_1", "parents": ["x#1"]},
            {"id": "x_1.blob", "parents": []},
            {"id": "", "parents": []},
            {"id": "y".repeat(200), "parents": []},
            {"id": format!("{}/", "y".repeat(200)), "parents": []}
        ]},
        "execution": {"tasks": [
            {"id": "x:1", "runtimeInSeconds": 1}, {"id": "x#1", "runtimeInSeconds": 1},
            {"id": "x_1", "runtimeInSeconds": 1}, {"id": "x_1.blob", "runtimeInSeconds": 1},
            {"id": "", "runtimeInSeconds": 1}, {"id": "y".repeat(200), "runtimeInSeconds": 1},
            {"id": format!("{}/", "y".repeat(200)), "runtimeInSeconds": 1}
        ]}
    }});
    let imp = import_value(&v, &opts()).expect("imports");
    let ids: Vec<&str> = imp.tasks.iter().map(|t| t.id.as_str()).collect();
    let y128 = "y".repeat(128);
    let y126 = format!("{}-2", "y".repeat(126));
    assert_eq!(
        ids,
        vec!["x_1-2", "x_1-3", "x_1", "x_1.blob", "task", &y128, &y126],
        "valid ids keep their names"
    );
    let blobs: Vec<&str> = imp.tasks.iter().map(|t| t.blob_id.as_str()).collect();
    let y123 = format!("{}.blob", "y".repeat(123));
    let y121 = format!("{}-2.blob", "y".repeat(121));
    assert_eq!(
        blobs,
        vec![
            "x_1-2.blob",
            "x_1-3.blob",
            "x_1-4.blob",
            "x_1.blob.blob",
            "task.blob",
            &y123,
            &y121
        ]
    );
    assert_eq!(imp.renamed().count(), 5);
    let mut all = HashSet::new();
    for t in &imp.spec.tasks {
        assert!(check_id(t.id.as_str()).is_ok(), "{}", t.id);
        assert!(all.insert(t.id.clone()), "unique: {}", t.id);
    }
    assert_eq!(
        task(&imp.spec, "x_1-3").deps,
        vec![TaskId::from("x_1-3.blob"), TaskId::from("x_1-2")]
    );
}

#[test]
fn legacy_layout_imports() {
    // WfFormat 1.4: tasks refer to each other by name; files inline with link.
    let v14 = json!({"name": "old", "schemaVersion": "1.4", "workflow": {
        "makespanInSeconds": 3, "executedAt": "x",
        "tasks": [
            {"name": "split_ID01", "id": "ID01", "type": "compute", "parents": [],
             "children": ["merge_ID02"], "runtimeInSeconds": 1.5,
             "files": [{"name": "a.txt", "sizeInBytes": 100, "link": "output"},
                       {"name": "in.txt", "sizeInBytes": 999, "link": "input"},
                       {"name": "b.txt", "path": "/d/", "sizeInBytes": 50, "link": "OUTPUT"}]},
            {"name": "merge_ID02", "id": "ID02", "parents": ["split_ID01"],
             "runtimeInSeconds": 2,
             "files": [{"name": "a.txt", "sizeInBytes": 100, "link": "input"}]},
            {"name": "report_ID03", "id": "ID03", "parents": ["ID02"], "runtimeInSeconds": 0}
        ]
    }});
    let imp = import_value(&v14, &opts()).expect("imports 1.4");
    assert!(!imp.split_layout);
    assert_eq!(
        imp.tasks
            .iter()
            .map(|t| t.wf_id.as_str())
            .collect::<Vec<_>>(),
        ["split_ID01", "merge_ID02", "report_ID03"]
    );
    assert_eq!(imp.tasks[0].blob_bytes, 150);
    assert_eq!(imp.tasks[0].ms, 1500);
    assert_eq!(imp.tasks[1].parents, vec![0]);
    assert_eq!(imp.tasks[2].parents, vec![1], "an id resolves too");
    assert_eq!(imp.critical_path_ms(), 3500);

    // WfFormat 1.0-1.2: `jobs`, `runtime`, `size`.
    let v10 = json!({"name": "older", "schemaVersion": "1.0", "workflow": {
        "jobs": [
            {"name": "one", "parents": [], "runtime": 3,
             "files": [{"name": "f", "size": 40, "link": "output"}]},
            {"name": "two", "parents": ["one"], "runtime": 4}
        ]
    }});
    let imp = import_value(&v10, &opts()).expect("imports 1.0");
    assert_eq!(imp.tasks[0].blob_bytes, 40);
    assert_eq!(imp.tasks[1].parents, vec![0]);
    assert_eq!(imp.critical_path_ms(), 7000);
}

#[test]
fn errors_name_the_task() {
    let o = opts();
    let err = |v: &serde_json::Value| import_value(v, &o).expect_err("fails");

    let mut v = diamond();
    v["workflow"]["specification"]["tasks"][2]["parents"] = json!(["a", "ghost"]);
    assert_eq!(
        err(&v),
        ImportError::UnknownParent {
            task: "c".into(),
            parent: "ghost".into()
        }
    );

    let mut v = diamond();
    v["workflow"]["specification"]["tasks"][1]["children"] = json!(["d", "nobody"]);
    assert_eq!(
        err(&v),
        ImportError::UnknownChild {
            task: "b".into(),
            child: "nobody".into()
        }
    );

    let mut v = diamond();
    v["workflow"]["specification"]["tasks"][0]["parents"] = json!(["d"]);
    match err(&v) {
        ImportError::Cycle { path, .. } => {
            assert!(path.contains("needs"), "{path}");
            assert!(path.contains('a') && path.contains('d'), "{path}");
        }
        other => panic!("expected a cycle, got {other:?}"),
    }

    let mut v = diamond();
    v["workflow"]["specification"]["tasks"][2]["parents"] = json!(["c"]);
    assert_eq!(
        err(&v),
        ImportError::Cycle {
            task: "c".into(),
            path: "c needs c".into()
        }
    );

    let mut v = diamond();
    v["workflow"]["specification"]["tasks"][2]["id"] = json!("b");
    assert_eq!(err(&v), ImportError::DuplicateTask { task: "b".into() });

    let mut v = diamond();
    v["workflow"]["execution"]["tasks"]
        .as_array_mut()
        .expect("array")
        .remove(2);
    assert_eq!(err(&v), ImportError::MissingRuntime { task: "c".into() });

    let mut v = diamond();
    v["workflow"]["execution"]["tasks"][1] = json!({"id": "b"});
    assert_eq!(err(&v), ImportError::MissingRuntime { task: "b".into() });

    let mut v = diamond();
    v["workflow"]["execution"]["tasks"][1]["runtimeInSeconds"] = json!(-1.0);
    assert_eq!(
        err(&v),
        ImportError::BadRuntime {
            task: "b".into(),
            runtime: -1.0
        }
    );

    let mut v = diamond();
    v["workflow"]["execution"]["tasks"][3]["id"] = json!("a");
    assert_eq!(
        err(&v),
        ImportError::DuplicateExecution { task: "a".into() }
    );

    let mut v = diamond();
    v["workflow"]["execution"]["tasks"][3]["id"] = json!("zzz");
    assert_eq!(
        err(&v),
        ImportError::UnknownExecutionTask { task: "zzz".into() }
    );

    let mut v = diamond();
    v["workflow"]
        .as_object_mut()
        .expect("object")
        .remove("execution");
    assert_eq!(err(&v), ImportError::NoExecution { task: "a".into() });

    let mut v = diamond();
    v["workflow"]["specification"]["tasks"][1]["outputFiles"] = json!(["nope"]);
    assert_eq!(
        err(&v),
        ImportError::UnknownFile {
            task: "b".into(),
            file: "nope".into()
        }
    );

    let mut v = diamond();
    v["workflow"]["specification"]["files"][2]["sizeInBytes"] = json!("big");
    assert_eq!(
        err(&v),
        ImportError::BadFileSize {
            file: "y".into(),
            size: "\"big\"".into()
        }
    );

    let mut v = diamond();
    v["workflow"]["execution"]["tasks"][0]["runtimeInSeconds"] = json!(1e9);
    assert!(matches!(
        err(&v),
        ImportError::RuntimeTooLong { task, .. } if task == "a"
    ));

    let mut v = diamond();
    v["workflow"]["specification"]["tasks"] = json!([]);
    v["workflow"]["execution"]["tasks"] = json!([]);
    assert_eq!(err(&v), ImportError::NoTasks);

    assert_eq!(
        err(&json!({"name": "x", "workflow": {"machines": []}})),
        ImportError::UnknownLayout
    );
    assert!(matches!(
        import("{\"workflow\": [", &o),
        Err(ImportError::Json { line: 1, .. })
    ));
    let bad = ImportOptions {
        time_scale: f64::NAN,
        ..opts()
    };
    assert!(matches!(
        import_value(&diamond(), &bad),
        Err(ImportError::BadOptions(_))
    ));
    let bad = ImportOptions {
        size_scale: -1.0,
        ..opts()
    };
    assert!(matches!(
        import_value(&diamond(), &bad),
        Err(ImportError::BadOptions(_))
    ));
}

#[test]
fn error_messages_are_readable() {
    let e = ImportError::UnknownParent {
        task: "c".into(),
        parent: "ghost".into(),
    };
    assert_eq!(
        e.to_string(),
        "task \"c\" lists parent \"ghost\", which is not a task of the instance"
    );
}

#[test]
fn critical_path_of_a_hand_written_dag() {
    let spec = DagSpec {
        name: "cp".into(),
        tasks: vec![
            TaskSpec {
                id: "a".into(),
                func: "sleep".into(),
                args: vec![Value::Int(5)],
                ..Default::default()
            },
            TaskSpec {
                id: "b".into(),
                func: "spin".into(),
                deps: vec!["a".into()],
                args: vec![Value::Int(7)],
                ..Default::default()
            },
            TaskSpec {
                id: "c".into(),
                func: "const".into(),
                deps: vec!["a".into()],
                args: vec![Value::Int(100)],
                ..Default::default()
            },
        ],
        outputs: None,
    };
    assert_eq!(critical_path_ms(&spec), Some(12));
    let mut cyclic = spec.clone();
    cyclic.tasks[0].deps = vec!["b".into()];
    assert_eq!(critical_path_ms(&cyclic), None);
    let mut dangling = spec;
    dangling.tasks[0].deps = vec!["zz".into()];
    assert_eq!(critical_path_ms(&dangling), None);
}

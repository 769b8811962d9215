use super::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

const PROGRAMS: [&str; 8] = ["sort", "cat", "sh", "sleep", "yes", "env", "pwd", "wc"];

fn process() -> Process {
    Process::new(AllowList::resolve(PROGRAMS).expect("coreutils and sh are installed"))
}

fn s(x: &str) -> Value {
    Value::Str(x.to_owned())
}

fn cmd(words: &[&str]) -> Value {
    Value::Array(words.iter().map(|w| s(w)).collect())
}

fn opts(words: &[&str], extra: &[(&str, Value)]) -> Value {
    let mut m = BTreeMap::new();
    m.insert("cmd".to_owned(), cmd(words));
    for (k, v) in extra {
        m.insert((*k).to_owned(), v.clone());
    }
    Value::Map(m)
}

fn run(inputs: Vec<Value>) -> Result<Value, FnError> {
    process().call(None, inputs)
}

fn text(v: Value) -> String {
    match v {
        Value::Bytes(b) => String::from_utf8(b.to_vec()).expect("utf-8"),
        Value::Str(s) => s,
        other => panic!("expected bytes or a string, got {other:?}"),
    }
}

fn err(inputs: Vec<Value>) -> String {
    match run(inputs) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.message,
    }
}

/// A private directory for files a test's programs write.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rukong-process-test-")
        .tempdir()
        .expect("temp dir")
}

/// Waits (up to 3 s) for process `pid` to be gone.
fn gone(pid: &str) -> bool {
    let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        let zombie = std::fs::read_to_string(proc.join("stat")).map(|st| {
            st.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        });
        if !matches!(zombie, Ok(false)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

// --- running ---

#[test]
fn stdin_is_fed_and_stdout_returned_as_bytes() {
    let out = run(vec![s("pear\napple\nfig\n"), cmd(&["sort"])]).unwrap();
    assert_eq!(out, Value::Bytes(Bytes::from_static(b"apple\nfig\npear\n")));
}

#[test]
fn several_inputs_are_concatenated_on_stdin_in_order() {
    let out = run(vec![
        s("b\n"),
        Value::Bytes(Bytes::from_static(b"c\n")),
        s("a\n"),
        cmd(&["cat"]),
    ])
    .unwrap();
    assert_eq!(text(out), "b\nc\na\n");
}

#[test]
fn named_inputs_become_files_and_the_rest_stay_on_stdin() {
    // in2, then stdin (only in1: in0 and in2 are files), then in0.
    let out = run(vec![
        s("zero\n"),
        s("one\n"),
        s("two\n"),
        cmd(&["cat", "{in2}", "-", "{in0}"]),
    ])
    .unwrap();
    assert_eq!(text(out), "two\none\nzero\n");
}

#[test]
fn out_placeholder_makes_the_file_the_result() {
    let out = run(vec![
        s("3\n1\n2\n"),
        opts(&["sort", "-n", "-o", "{out}"], &[("output", s("string"))]),
    ])
    .unwrap();
    assert_eq!(out, s("1\n2\n3\n"));
    let e = err(vec![cmd(&["sh", "-c", "true {out}"])]);
    assert!(e.contains("did not write {out}"), "{e}");
}

#[test]
fn output_string_is_checked_utf8() {
    assert_eq!(
        run(vec![
            s("x y\n"),
            opts(&["wc", "-w"], &[("output", s("string"))])
        ])
        .unwrap(),
        s("2\n")
    );
    let e = err(vec![
        Value::Bytes(Bytes::from_static(&[0x66, 0xff])),
        opts(&["cat"], &[("output", s("string"))]),
    ]);
    assert!(e.contains("not UTF-8 (at byte 1)"), "{e}");
}

#[test]
fn the_environment_is_cleared_and_the_scratch_directory_removed() {
    let env = text(run(vec![cmd(&["env"])]).unwrap());
    let mut keys: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["HOME", "PATH", "TMPDIR"], "{env}");
    assert!(env.contains(&format!("PATH={CHILD_PATH}\n")), "{env}");
    let cwd = text(run(vec![cmd(&["pwd"])]).unwrap());
    let cwd = Path::new(cwd.trim());
    assert!(env.contains(&format!("HOME={}\n", cwd.display())) || cwd.is_absolute());
    assert!(
        cwd.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("rukong-process-"),
        "{}",
        cwd.display()
    );
    assert!(
        !cwd.exists(),
        "the scratch directory is removed after the call"
    );
}

#[test]
fn a_shell_sees_arguments_verbatim() {
    // No shell between the task and the program: `$HOME; echo` is one argument to `cat`.
    let e = err(vec![cmd(&["cat", "$HOME; echo hi"])]);
    assert!(
        e.contains("exited with code 1") && e.contains("$HOME; echo hi"),
        "{e}"
    );
}

// --- the allow-list ---

#[test]
fn only_allowed_programs_run_and_names_must_match_exactly() {
    let p = Process::new(AllowList::resolve(["sort"]).unwrap());
    let sort_path = p.allow_list().entries()[0].path.clone();
    assert!(sort_path.is_absolute());
    let call = |program: &str| p.call(None, vec![s("b\na\n"), cmd(&[program])]);
    assert_eq!(text(call("sort").unwrap()), "a\nb\n");
    assert_eq!(text(call(sort_path.to_str().unwrap()).unwrap()), "a\nb\n");
    let dir = sort_path.parent().unwrap().display().to_string();
    for bad in [
        "cat".to_owned(),
        "sort ".to_owned(),
        "./sort".to_owned(),
        format!(
            "{dir}/../{}/sort",
            Path::new(&dir).file_name().unwrap().to_string_lossy()
        ),
        format!("{dir}//sort"),
        "SORT".to_owned(),
    ] {
        let e = call(&bad).unwrap_err().message;
        assert!(
            e.contains(&format!(
                "program {bad:?} is not on this executor's allow-list (sort)"
            )) && e.contains("--allow-process"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn allow_list_entries_are_resolved_at_start_up() {
    let path = std::env::var_os("PATH").unwrap();
    let list = AllowList::resolve_in(["sort", "sort", "/bin/sh"], &path).unwrap();
    assert_eq!(list.entries().len(), 2, "duplicates are merged");
    assert_eq!(list.names(), "sort, /bin/sh");
    assert_eq!(
        list.find("/bin/sh").map(|a| a.path.clone()),
        Some("/bin/sh".into())
    );
    let err = |names: &[&str], path: &str| {
        AllowList::resolve_in(names.iter().copied(), std::ffi::OsStr::new(path))
            .unwrap_err()
            .to_string()
    };
    assert!(err(&["bin/sort"], "/usr/bin").contains("a relative path"));
    assert!(err(&["./sort"], "/usr/bin").contains("a relative path"));
    assert!(err(&[""], "/usr/bin").contains("empty"));
    assert!(err(&["a,b"], "/usr/bin").contains("comma"));
    assert!(err(&["no-such-program-xyz"], "/usr/bin:/bin").contains("no executable file"));
    // Relative PATH entries are never searched.
    assert!(err(&["sort"], ".:usr/bin").contains("no executable file"));
    let dir = scratch();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "not a program").unwrap();
    assert!(err(&[plain.to_str().unwrap()], "").contains("not an executable file"));
    assert!(err(&["/usr"], "").contains("not an executable file"));
}

#[test]
fn an_empty_allow_list_registers_nothing() {
    let mut r = Registry::with_builtins();
    let n = r.len();
    r.allow_process(AllowList::default());
    assert!(!r.contains(NAME) && r.len() == n);
    r.allow_process(AllowList::resolve(["cat"]).unwrap());
    assert!(r.contains(NAME));
    assert!(!Registry::with_builtins().contains(NAME), "off by default");
}

// --- failures ---

#[test]
fn a_non_zero_exit_names_the_program_code_and_stderr() {
    let e = err(vec![cmd(&["sort", "--no-such-flag"])]);
    assert!(
        e.starts_with("process: \"sort\" exited with code 2; stderr: "),
        "{e}"
    );
    assert!(e.contains("no-such-flag"), "{e}");
    let e = err(vec![cmd(&["sh", "-c", "exit 7"])]);
    assert_eq!(e, "process: \"sh\" exited with code 7; no stderr");
}

#[test]
fn a_signal_is_named() {
    let e = err(vec![cmd(&["sh", "-c", "echo dying >&2; kill -9 $$"])]);
    assert_eq!(
        e,
        "process: \"sh\" was killed by signal 9 (SIGKILL); stderr: dying"
    );
}

#[test]
fn only_the_stderr_tail_is_reported() {
    let e = err(vec![cmd(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 2000 ]; do echo line-$i >&2; i=$((i+1)); done; exit 3",
    ])]);
    assert!(
        e.contains("exited with code 3; stderr (last 4096 bytes): …"),
        "{}",
        &e[..100]
    );
    assert!(
        e.ends_with("line-1999") && !e.contains("line-0\n"),
        "{}",
        &e[e.len() - 50..]
    );
    assert!(e.len() < STDERR_TAIL + 200, "{}", e.len());
}

#[test]
fn a_timeout_kills_the_program_and_its_children() {
    let dir = scratch();
    let pids = dir.path().join("pids");
    let script = format!(
        "sleep 30 & echo $! > {}; echo started >&2; wait",
        pids.display()
    );
    let t0 = Instant::now();
    let e = err(vec![opts(
        &["sh", "-c", &script],
        &[("timeout_ms", Value::Int(300))],
    )]);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(
        e,
        "process: \"sh\" timed out after 300 ms (timeout_ms) and was killed; stderr: started"
    );
    let pid = std::fs::read_to_string(&pids).unwrap();
    assert!(
        gone(&pid),
        "the background sleep {pid} was killed with its group"
    );
}

#[test]
fn what_a_program_leaves_running_is_killed_when_it_exits() {
    let out = run(vec![opts(
        &["sh", "-c", "sleep 30 & echo $!"],
        &[("output", s("string"))],
    )])
    .unwrap();
    let Value::Str(pid) = out else { unreachable!() };
    assert!(
        gone(&pid),
        "the background sleep {pid} was killed with its group"
    );
}

#[test]
fn a_task_deadline_bounds_the_program() {
    let t0 = Instant::now();
    let deadline = Some(t0 + Duration::from_millis(200));
    assert_eq!(
        limit(None, deadline, t0),
        Limit::Task(Duration::from_millis(200))
    );
    let ms = Duration::from_millis;
    assert_eq!(limit(Some(ms(50)), deadline, t0), Limit::Options(ms(50)));
    assert_eq!(limit(Some(ms(500)), deadline, t0), Limit::Task(ms(200)));
    assert_eq!(limit(Some(ms(5)), None, t0), Limit::Options(ms(5)));
    assert_eq!(limit(None, None, t0), Limit::Default);
    assert_eq!(Limit::Default.duration(), DEFAULT_TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_task_timeout_kills_the_program_through_call_once() {
    let dir = scratch();
    let pidfile = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let f: Arc<dyn Function> = Arc::new(process());
    let t0 = Instant::now();
    let r = crate::run::call_once(
        &f,
        None,
        vec![cmd(&["sh", "-c", &script])],
        Some(Duration::from_millis(300)),
    )
    .await;
    let e = r.unwrap_err().message;
    assert!(
        e.contains("timed out after 300 ms") || e.contains("ran past the task's timeout_ms"),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(gone(&pid), "sleep {pid} was killed at the task's deadline");
    assert_eq!(crate::run::call_deadline(), None);
}

#[test]
fn stdout_past_the_cap_kills_the_program() {
    let t0 = Instant::now();
    let e = err(vec![opts(&["yes"], &[("max_output", Value::Int(100_000))])]);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(
        e,
        "process: \"yes\" wrote more than 100000 bytes (max_output) to stdout and was killed; no stderr"
    );
    // Exactly at the cap is fine.
    let out = run(vec![
        s("12345"),
        opts(&["cat"], &[("max_output", Value::Int(5))]),
    ])
    .unwrap();
    assert_eq!(text(out), "12345");
    let e = err(vec![
        s("123456"),
        opts(&["cat"], &[("max_output", Value::Int(5))]),
    ]);
    assert!(e.contains("more than 5 bytes"), "{e}");
}

#[test]
fn large_inputs_and_outputs_do_not_deadlock() {
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let out = run(vec![Value::Bytes(Bytes::from(big.clone())), cmd(&["cat"])]).unwrap();
    assert_eq!(out, Value::Bytes(Bytes::from(big)));
}

#[test]
fn a_program_that_stops_reading_early_is_not_an_error() {
    let big = "x\n".repeat(1_000_000);
    let out = run(vec![s(&big), cmd(&["sh", "-c", "read line; echo $line"])]).unwrap();
    assert_eq!(text(out), "x\n");
}

// --- the command input ---

#[test]
fn bad_commands_are_explained() {
    let cases: Vec<(Vec<Value>, &str)> = vec![
        (
            vec![],
            "expects the command as its last input, got no inputs",
        ),
        (
            vec![s("sort")],
            "the last input must be the command, an array",
        ),
        (vec![cmd(&[])], "the command is empty"),
        (
            vec![Value::Array(vec![Value::Int(1)])],
            "command word 0 is an int",
        ),
        (
            vec![Value::Array(vec![s("cat"), Value::Null])],
            "command word 1 is a null",
        ),
        (vec![cmd(&["cat", "a\0b"])], "contains a NUL byte"),
        (
            vec![Value::Int(3), cmd(&["cat"])],
            "data input 0 is an int, expected string or bytes",
        ),
        (
            vec![s("x"), cmd(&["cat", "{in1}"])],
            "argument 1 names {in1}, but the task has 1 data input",
        ),
        (
            vec![opts(&["cat"], &[("timeout", Value::Int(1))])],
            "unknown option \"timeout\"",
        ),
        (
            vec![opts(&["cat"], &[("timeout_ms", Value::Int(0))])],
            "timeout_ms must be an int from 1",
        ),
        (
            vec![opts(&["cat"], &[("max_output", Value::Int(-1))])],
            "max_output must be an int from 0",
        ),
        (
            vec![opts(&["cat"], &[("output", s("text"))])],
            "output must be \"bytes\" or \"string\"",
        ),
        (
            vec![Value::Map(BTreeMap::new())],
            "needs cmd: [program, args…]",
        ),
    ];
    for (inputs, needle) in cases {
        let e = err(inputs.clone());
        assert!(
            e.starts_with("process: ") && e.contains(needle),
            "{inputs:?}: {e}"
        );
    }
}

#[test]
fn ints_in_arguments_are_their_decimal_form() {
    let out = run(vec![
        s("1\n2\n3\n"),
        Value::Array(vec![s("sort"), s("-r"), s("-k"), Value::Int(1)]),
    ])
    .unwrap();
    assert_eq!(text(out), "3\n2\n1\n");
}

#[test]
fn only_exact_placeholders_are_replaced() {
    let dir = Path::new("/d");
    let args: Vec<String> = [
        "{print $1}",
        "--in={in0}",
        "{in}",
        "{in1x}",
        "{out}.txt",
        "{{in0}}",
        "{",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let (got, named, out) = substitute(&args, 1, dir).unwrap();
    let got: Vec<String> = got
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        got,
        [
            "{print $1}",
            "--in=/d/in0",
            "{in}",
            "{in1x}",
            "/d/out.txt",
            "{/d/in0}",
            "{"
        ]
    );
    assert_eq!((named, out), (vec![true], true));
}

#[test]
fn process_calls_are_heavy() {
    assert!(process().is_heavy(&[]));
}

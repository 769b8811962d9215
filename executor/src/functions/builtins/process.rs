//! `process`: runs an allowed program, feeds it the task's data inputs, and returns what it
//! wrote (docs/process-tasks.md has the user's guide and the security model).
//!
//! Off by default: the function exists only in a registry given a non-empty
//! [`AllowList`] ([`Registry::allow_process`]), so without one the engine rejects a DAG
//! that uses it as an unknown function.
//!
//! The last input is the command: an array `[program, arg, …]`, or a map
//! `{cmd: [program, arg, …], timeout_ms, max_output, output}`. Every input before it is
//! data (string or bytes). An argument may name data input `i` (0-based) as `{in<i>}`, which
//! becomes the path of a file holding it, and `{out}`, a path whose content becomes the
//! result instead of stdout. The data inputs that no argument names are written to stdin,
//! in order. No shell is involved: the arguments reach the program as they are.
//!
//! The program runs with an empty environment except `PATH` ([`CHILD_PATH`]), `HOME` and
//! `TMPDIR` (both the call's private scratch directory, which is also its working directory
//! and is removed afterwards). A non-zero exit, a signal, the time limit and the output cap
//! are task errors that name the program and end with its stderr's last bytes.

mod allow;
mod child;

pub use allow::{AllowList, AllowListError, Allowed};

use super::super::{FnError, Function, Registry, WarmState};
use super::article;
use bytes::Bytes;
use child::{Cut, Ran, Run};
use rukong_core::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The function's registered name.
pub const NAME: &str = "process";

/// `PATH` in the program's environment (the executor's own is not passed on).
pub const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The limit on one run without `timeout_ms` (in the options, or on the task).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The largest `timeout_ms` in the options (24 h).
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// The output cap without `max_output`.
pub const DEFAULT_MAX_OUTPUT: u64 = 64 << 20;

/// The largest `max_output` (1 GiB).
pub const MAX_OUTPUT: u64 = 1 << 30;

/// How much of stderr a failure reports (its last bytes).
pub const STDERR_TAIL: usize = 4096;

/// `process(data…, command)`: see the module docs.
#[derive(Clone, Debug)]
pub struct Process {
    allow: Arc<AllowList>,
}

impl Process {
    pub fn new(allow: AllowList) -> Self {
        Process {
            allow: Arc::new(allow),
        }
    }

    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }
}

impl Registry {
    /// Registers [`NAME`] for the programs in `allow`. An empty list registers nothing (and
    /// removes nothing), so `process` stays unknown.
    pub fn allow_process(&mut self, allow: AllowList) -> &mut Self {
        if allow.is_empty() {
            return self;
        }
        self.register(NAME, Process::new(allow))
    }
}

/// What the result is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Bytes,
    Str,
}

/// The parsed command input.
#[derive(Debug)]
struct Spec {
    program: String,
    args: Vec<String>,
    timeout: Option<Duration>,
    max_output: u64,
    output: Output,
}

impl Function for Process {
    fn call(&self, _state: Option<&WarmState>, mut inputs: Vec<Value>) -> Result<Value, FnError> {
        let started = Instant::now();
        let Some(command) = inputs.pop() else {
            return Err(FnError::new(
                "process: expects the command as its last input, got no inputs",
            ));
        };
        let spec = parse_spec(command)?;
        let Some(allowed) = self.allow.find(&spec.program) else {
            return Err(FnError::new(format!(
                "process: program {:?} is not on this executor's allow-list ({}); an operator adds it with --allow-process",
                spec.program,
                self.allow.names()
            )));
        };
        let data = data_inputs(inputs)?;
        let scratch = tempfile::Builder::new()
            .prefix("rukong-process-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| {
                FnError::new(format!("process: cannot create a scratch directory: {e}"))
            })?;
        let dir = scratch.path();
        let (args, named, out) = substitute(&spec.args, data.len(), dir)?;
        let mut stdin = Vec::new();
        for (i, d) in data.into_iter().enumerate() {
            if named.get(i).copied().unwrap_or(false) {
                std::fs::write(dir.join(format!("in{i}")), &d).map_err(|e| {
                    FnError::new(format!("process: cannot write input {i} to a file: {e}"))
                })?;
            } else {
                stdin.push(d);
            }
        }
        let mut command = Command::new(&allowed.path);
        command
            .args(&args)
            .env_clear()
            .env("PATH", CHILD_PATH)
            .env("HOME", dir)
            .env("TMPDIR", dir)
            .current_dir(dir);
        let limit = limit(spec.timeout, crate::run::call_deadline(), started);
        let ran = child::run(Run {
            command,
            stdin,
            stdout_cap: (!out).then_some(spec.max_output),
            stderr_tail: STDERR_TAIL,
            limit: limit.duration(),
        })
        .map_err(|e| {
            FnError::new(format!(
                "process: cannot start {:?} ({}): {e}",
                spec.program,
                allowed.path.display()
            ))
        })?;
        let bytes = finish(&spec, ran, limit, out.then(|| dir.join("out")).as_deref())?;
        match spec.output {
            Output::Bytes => Ok(Value::Bytes(Bytes::from(bytes))),
            Output::Str => String::from_utf8(bytes).map(Value::Str).map_err(|e| {
                FnError::new(format!(
                    "process: {:?} wrote output that is not UTF-8 (at byte {}); ask for output: bytes",
                    spec.program,
                    e.utf8_error().valid_up_to()
                ))
            }),
        }
    }

    fn is_heavy(&self, _inputs: &[Value]) -> bool {
        true
    }
}

/// Where a run's time limit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    /// `timeout_ms` in the options.
    Options(Duration),
    /// What is left of the task's `timeout_ms` (for this attempt).
    Task(Duration),
    Default,
}

impl Limit {
    fn duration(self) -> Duration {
        match self {
            Limit::Options(d) | Limit::Task(d) => d,
            Limit::Default => DEFAULT_TIMEOUT,
        }
    }

    fn explain(self) -> String {
        match self {
            Limit::Options(d) => format!("timed out after {} ms (timeout_ms)", d.as_millis()),
            Limit::Task(_) => "ran past the task's timeout_ms".to_owned(),
            Limit::Default => format!(
                "timed out after {} ms (the default limit; set timeout_ms)",
                DEFAULT_TIMEOUT.as_millis()
            ),
        }
    }
}

/// The time limit: the options' `timeout_ms`, the task's remaining `timeout_ms`, the smaller
/// of the two, or [`DEFAULT_TIMEOUT`].
fn limit(own: Option<Duration>, task: Option<Instant>, now: Instant) -> Limit {
    let task = task.map(|d| d.saturating_duration_since(now));
    match (own, task) {
        (Some(a), Some(b)) if b < a => Limit::Task(b),
        (Some(a), _) => Limit::Options(a),
        (None, Some(b)) => Limit::Task(b),
        (None, None) => Limit::Default,
    }
}

/// The run's result bytes, or the error that explains why there are none.
fn finish(spec: &Spec, ran: Ran, limit: Limit, out: Option<&Path>) -> Result<Vec<u8>, FnError> {
    let program = &spec.program;
    let fail = |what: String| {
        Err(FnError::new(format!(
            "process: {program:?} {what}{}",
            stderr_note(&ran.stderr_tail, ran.stderr_truncated)
        )))
    };
    match &ran.cut {
        Some(Cut::Timeout) => {
            return fail(format!("{} and was killed", limit.explain()));
        }
        Some(Cut::OutputCap) => {
            return fail(format!(
                "wrote more than {} bytes (max_output) to stdout and was killed",
                spec.max_output
            ));
        }
        Some(Cut::Read(e)) => return fail(format!("could not be read from: {e}")),
        Some(Cut::PipesLeftOpen) => {
            return fail(
                "exited, but its stdout stayed open (held by a process it started outside its process group)"
                    .to_owned(),
            );
        }
        None => {}
    }
    let Some(status) = ran.status else {
        return fail("did not exit after SIGKILL".to_owned());
    };
    if let Some(code) = status.code() {
        if code != 0 {
            return fail(format!("exited with code {code}"));
        }
    } else if let Some(sig) = status.signal() {
        return fail(format!("was killed by signal {sig}{}", signal_name(sig)));
    }
    let Some(path) = out else {
        return Ok(ran.stdout);
    };
    read_out(path, spec.max_output)
        .map_err(|why| FnError::new(format!("process: {program:?} {why}")))
}

/// The `{out}` file, up to `cap` bytes.
fn read_out(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("exited with code 0 but did not write {{out}}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("wrote an {{out}} file that cannot be read: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!(
            "wrote more than {cap} bytes (max_output) to {{out}}"
        ));
    }
    Ok(bytes)
}

/// `"; stderr: …"` with the tail's text, or `"; no stderr"`.
fn stderr_note(tail: &[u8], truncated: bool) -> String {
    let text = String::from_utf8_lossy(tail);
    let text = text.trim();
    match (text.is_empty(), truncated) {
        (true, _) => "; no stderr".to_owned(),
        (false, false) => format!("; stderr: {text}"),
        (false, true) => format!("; stderr (last {STDERR_TAIL} bytes): …{text}"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        13 => " (SIGPIPE)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

// ----------------------------------------------------------------------------------------
// The command input
// ----------------------------------------------------------------------------------------

const KEYS: &str = "cmd, timeout_ms, max_output, output";

fn parse_spec(command: Value) -> Result<Spec, FnError> {
    match command {
        Value::Array(cmd) => parse_cmd(cmd, None, DEFAULT_MAX_OUTPUT, Output::Bytes),
        Value::Map(map) => parse_map(map),
        other => Err(FnError::new(format!(
            "process: the last input must be the command, an array [program, args…] or a map {{cmd: [program, args…], …}}; got {} {}",
            article(other.kind()),
            other.kind()
        ))),
    }
}

fn parse_map(mut map: BTreeMap<String, Value>) -> Result<Spec, FnError> {
    if let Some(k) = map
        .keys()
        .find(|k| !KEYS.split(", ").any(|known| known == k.as_str()))
    {
        return Err(FnError::new(format!(
            "process: unknown option {k:?} (known: {KEYS})"
        )));
    }
    let timeout = match map.remove("timeout_ms") {
        None => None,
        Some(Value::Int(ms)) if (1..=MAX_TIMEOUT_MS as i64).contains(&ms) => {
            Some(Duration::from_millis(ms as u64))
        }
        Some(v) => {
            return Err(FnError::new(format!(
                "process: timeout_ms must be an int from 1 to {MAX_TIMEOUT_MS} (24 h), got {}",
                v.to_output_json()
            )));
        }
    };
    let max_output = match map.remove("max_output") {
        None => DEFAULT_MAX_OUTPUT,
        Some(Value::Int(n)) if (0..=MAX_OUTPUT as i64).contains(&n) => n as u64,
        Some(v) => {
            return Err(FnError::new(format!(
                "process: max_output must be an int from 0 to {MAX_OUTPUT} (1 GiB), got {}",
                v.to_output_json()
            )));
        }
    };
    let output = match map.remove("output") {
        None => Output::Bytes,
        Some(Value::Str(s)) if s == "bytes" => Output::Bytes,
        Some(Value::Str(s)) if s == "string" => Output::Str,
        Some(v) => {
            return Err(FnError::new(format!(
                "process: output must be \"bytes\" or \"string\", got {}",
                v.to_output_json()
            )));
        }
    };
    match map.remove("cmd") {
        Some(Value::Array(cmd)) => parse_cmd(cmd, timeout, max_output, output),
        Some(v) => Err(FnError::new(format!(
            "process: cmd must be an array [program, args…], got {} {}",
            article(v.kind()),
            v.kind()
        ))),
        None => Err(FnError::new(
            "process: the options map needs cmd: [program, args…]",
        )),
    }
}

fn parse_cmd(
    cmd: Vec<Value>,
    timeout: Option<Duration>,
    max_output: u64,
    output: Output,
) -> Result<Spec, FnError> {
    let mut words = Vec::with_capacity(cmd.len());
    for (i, v) in cmd.into_iter().enumerate() {
        let word = match v {
            Value::Str(s) => s,
            // YAML reads `[head, -n, 5]` with an int: take it as its decimal form.
            Value::Int(n) if i > 0 => n.to_string(),
            other => {
                return Err(FnError::new(format!(
                    "process: command word {i} is {} {}, expected a string",
                    article(other.kind()),
                    other.kind()
                )));
            }
        };
        if word.contains('\0') {
            return Err(FnError::new(format!(
                "process: command word {i} contains a NUL byte"
            )));
        }
        words.push(word);
    }
    let mut words = words.into_iter();
    let Some(program) = words.next() else {
        return Err(FnError::new(
            "process: the command is empty; it needs at least the program",
        ));
    };
    Ok(Spec {
        program,
        args: words.collect(),
        timeout,
        max_output,
        output,
    })
}

/// The data inputs as bytes (strings as UTF-8).
fn data_inputs(inputs: Vec<Value>) -> Result<Vec<Bytes>, FnError> {
    inputs
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Bytes(b) => Ok(b),
            Value::Str(s) => Ok(Bytes::from(s.into_bytes())),
            other => Err(FnError::new(format!(
                "process: data input {i} is {} {}, expected string or bytes (the command is the last input)",
                article(other.kind()),
                other.kind()
            ))),
        })
        .collect()
}

/// The arguments with `{in<i>}` and `{out}` replaced by the paths of files in `dir`, which
/// data inputs are named, and whether `{out}` is.
fn substitute(
    args: &[String],
    inputs: usize,
    dir: &Path,
) -> Result<(Vec<OsString>, Vec<bool>, bool), FnError> {
    let mut named = vec![false; inputs];
    let mut out = false;
    let mut result = Vec::with_capacity(args.len());
    for (a, arg) in args.iter().enumerate() {
        let mut s = OsString::with_capacity(arg.len());
        let mut rest = arg.as_str();
        while let Some(open) = rest.find('{') {
            let (before, from) = rest.split_at(open);
            s.push(before);
            match placeholder(from) {
                Some((Slot::Out, len)) => {
                    out = true;
                    s.push(dir.join("out"));
                    rest = from.get(len..).unwrap_or("");
                }
                Some((Slot::In(i), len)) => {
                    let Some(flag) = named.get_mut(i) else {
                        return Err(FnError::new(format!(
                            "process: argument {} names {{in{i}}}, but the task has {inputs} data input{}",
                            a.saturating_add(1),
                            if inputs == 1 { "" } else { "s" }
                        )));
                    };
                    *flag = true;
                    s.push(dir.join(format!("in{i}")));
                    rest = from.get(len..).unwrap_or("");
                }
                None => {
                    s.push("{");
                    rest = from.get(1..).unwrap_or("");
                }
            }
        }
        s.push(rest);
        result.push(s);
    }
    Ok((result, named, out))
}

enum Slot {
    In(usize),
    Out,
}

/// A placeholder at the start of `s` (which starts with `{`), and its length.
fn placeholder(s: &str) -> Option<(Slot, usize)> {
    if s.starts_with("{out}") {
        return Some((Slot::Out, "{out}".len()));
    }
    let digits = s.strip_prefix("{in")?;
    let end = digits.find('}')?;
    let number = digits.get(..end)?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || number.len() > 6 {
        return None;
    }
    let i = number.parse().ok()?;
    Some((Slot::In(i), "{in".len() + end + 1))
}

#[cfg(test)]
mod tests;

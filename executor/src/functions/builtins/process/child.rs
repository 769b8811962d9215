//! Running one program to its end: stdin fed and stdout and stderr drained on helper
//! threads, a wall-clock limit, a cap on stdout, and the whole process group killed.
//!
//! The program leads a process group of its own. Whatever ends it (its own exit, the
//! limit, the cap), everything left in that group is killed with SIGKILL before the leader
//! is reaped, so that the group id (the leader's pid) cannot have been reused by then.
//! A process that left the group (`setsid`) escapes this; see docs/process-tasks.md.

use bytes::Bytes;
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long pipes may stay open after the program exited (a process that escaped the
/// group still holds them) before we stop waiting.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// How long a killed group gets to disappear.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Stack of each helper thread: they only copy between a pipe and a heap buffer.
const HELPER_STACK: usize = 64 * 1024;

/// Why the program was stopped before it finished on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Cut {
    /// It ran past the limit.
    Timeout,
    /// It wrote more than the cap to stdout.
    OutputCap,
    /// It exited, but its stdout or stderr stayed open past the grace period.
    PipesLeftOpen,
    /// Reading its stdout failed.
    Read(String),
}

/// What a run left behind.
#[derive(Debug)]
pub(super) struct Ran {
    /// The exit status; `None` if the program did not even exit after SIGKILL.
    pub status: Option<ExitStatus>,
    /// Stdout (empty when it was not captured or was cut).
    pub stdout: Vec<u8>,
    /// The last bytes of stderr, and whether earlier ones were dropped.
    pub stderr_tail: Vec<u8>,
    pub stderr_truncated: bool,
    pub cut: Option<Cut>,
}

/// What to run and how.
pub(super) struct Run {
    pub command: Command,
    /// Written to stdin in order, then stdin is closed. Empty: stdin is `/dev/null`.
    pub stdin: Vec<Bytes>,
    /// Capture stdout up to this many bytes; `None`: stdout goes to `/dev/null`.
    pub stdout_cap: Option<u64>,
    pub stderr_tail: usize,
    pub limit: Duration,
}

enum Event {
    Exited(io::Result<ExitStatus>),
    Stdout(Result<Vec<u8>, Cut>),
    Stderr(Vec<u8>, bool),
}

/// The program's process group, killed at most until its leader is reaped.
struct Group {
    pid: Pid,
    reaped: Mutex<bool>,
}

impl Group {
    fn kill(&self) {
        let reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if !*reaped {
            // ESRCH (already gone) is fine.
            let _ = kill_process_group(self.pid, Signal::KILL);
        }
    }
}

/// Runs `run` to its end. `Err` only when the program could not be started.
pub(super) fn run(run: Run) -> io::Result<Ran> {
    let Run {
        mut command,
        stdin,
        stdout_cap,
        stderr_tail,
        limit,
    } = run;
    command
        .stdin(if stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(if stdout_cap.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = command.spawn()?;
    let group = Arc::new(Group {
        pid: Pid::from_child(&child),
        reaped: Mutex::new(false),
    });
    let (tx, rx) = mpsc::channel();
    if let Err(e) = start_helpers(&mut child, stdin, stdout_cap, stderr_tail, &group, &tx) {
        group.kill();
        return Err(e);
    }
    let waiter = {
        let (group, tx) = (group.clone(), tx.clone());
        helper("rukong-process-wait", move || {
            let status = reap(child, &group);
            let _ = tx.send(Event::Exited(status));
        })
    };
    if let Err(e) = waiter {
        // The child went with the closure: kill it; it stays a zombie (no thread to reap).
        group.kill();
        return Err(e);
    }
    drop(tx);
    Ok(collect(&rx, &group, started.checked_add(limit), stdout_cap))
}

fn start_helpers(
    child: &mut Child,
    stdin: Vec<Bytes>,
    stdout_cap: Option<u64>,
    stderr_tail: usize,
    group: &Arc<Group>,
    tx: &Sender<Event>,
) -> io::Result<()> {
    if let Some(mut w) = child.stdin.take() {
        helper("rukong-process-stdin", move || {
            for chunk in stdin {
                // A program may stop reading early (`head`): a broken pipe is not an error.
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
        })?;
    }
    if let (Some(r), Some(cap)) = (child.stdout.take(), stdout_cap) {
        let tx = tx.clone();
        let group = group.clone();
        helper("rukong-process-stdout", move || {
            let out = read_capped(r, cap);
            if out.is_err() {
                // Stop the writer now rather than at the limit.
                group.kill();
            }
            let _ = tx.send(Event::Stdout(out));
        })?;
    }
    if let Some(r) = child.stderr.take() {
        let tx = tx.clone();
        helper("rukong-process-stderr", move || {
            let (tail, truncated) = read_tail(r, stderr_tail);
            let _ = tx.send(Event::Stderr(tail, truncated));
        })?;
    }
    Ok(())
}

/// Waits for the events of one run until the program exited and its pipes closed, killing
/// its group at the limit.
fn collect(
    rx: &Receiver<Event>,
    group: &Group,
    deadline: Option<Instant>,
    stdout_cap: Option<u64>,
) -> Ran {
    let mut ran = Ran {
        status: None,
        stdout: Vec::new(),
        stderr_tail: Vec::new(),
        stderr_truncated: false,
        cut: None,
    };
    let mut exited: Option<Instant> = None;
    let mut killed: Option<Instant> = None;
    let mut stdout_done = stdout_cap.is_none();
    let mut stderr_done = false;
    while exited.is_none() || !stdout_done || !stderr_done {
        let until = match (exited, killed) {
            (Some(t), _) => t.checked_add(PIPE_GRACE),
            (None, Some(t)) => t.checked_add(KILL_GRACE),
            (None, None) => deadline,
        };
        let event = match until {
            Some(until) => rx.recv_timeout(until.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match event {
            Ok(Event::Exited(status)) => {
                ran.status = status.ok();
                exited = Some(Instant::now());
            }
            Ok(Event::Stdout(Ok(out))) => {
                ran.stdout = out;
                stdout_done = true;
            }
            Ok(Event::Stdout(Err(cut))) => {
                // The reader killed the group already.
                stdout_done = true;
                killed.get_or_insert_with(Instant::now);
                ran.cut.get_or_insert(cut);
            }
            Ok(Event::Stderr(tail, truncated)) => {
                ran.stderr_tail = tail;
                ran.stderr_truncated = truncated;
                stderr_done = true;
            }
            Err(RecvTimeoutError::Timeout) if exited.is_none() && killed.is_none() => {
                group.kill();
                killed = Some(Instant::now());
                ran.cut = Some(Cut::Timeout);
            }
            Err(_) => {
                if exited.is_some() && !stdout_done {
                    ran.cut.get_or_insert(Cut::PipesLeftOpen);
                }
                break;
            }
        }
    }
    ran
}

/// Waits for the leader to exit without reaping it, kills what is left of its group, then
/// reaps it: while it is unreaped, its pid (the group id) cannot be given to anyone else.
fn reap(mut child: Child, group: &Group) -> io::Result<ExitStatus> {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
    // Exited, or waitid is unusable: `wait` below still reaps it.
    while let Err(Errno::INTR) = waitid(WaitId::Pid(group.pid), options) {}
    let mut reaped = group.reaped.lock().unwrap_or_else(PoisonError::into_inner);
    let _ = kill_process_group(group.pid, Signal::KILL);
    let status = child.wait();
    *reaped = true;
    status
}

fn helper(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .stack_size(HELPER_STACK)
        .spawn(f)
        .map(drop)
}

/// Everything `r` yields, or `Cut::OutputCap` as soon as it passes `cap` bytes.
fn read_capped(r: impl Read, cap: u64) -> Result<Vec<u8>, Cut> {
    let mut out = Vec::new();
    match r.take(cap.saturating_add(1)).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > cap => Err(Cut::OutputCap),
        Ok(_) => Ok(out),
        Err(e) => Err(Cut::Read(e.to_string())),
    }
}

/// The last `keep` bytes `r` yields, and whether earlier bytes were dropped.
fn read_tail(mut r: impl Read, keep: usize) -> (Vec<u8>, bool) {
    let mut tail: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                tail.extend_from_slice(buf.get(..n).unwrap_or(&[]));
                if tail.len() > keep.saturating_mul(2).max(buf.len()) {
                    let drop_n = tail.len() - keep;
                    tail.drain(..drop_n);
                    truncated = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if tail.len() > keep {
        let drop_n = tail.len() - keep;
        tail.drain(..drop_n);
        truncated = true;
    }
    (tail, truncated)
}

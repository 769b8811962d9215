#!/usr/bin/env python3
"""Peer comparison: rukong (embedded and cluster) against Dask distributed and Ray.

    python3 benches/peers/run.py [--quick] [--suite overhead|linalg|all] [--out DIR]
                                 [--repeats R] [--timeout S] [--engines LIST]
                                 [--workloads LIST] [--no-build]

Creates benches/peers/.venv (dask[array,distributed], numpy and ray, pinned in
requirements.txt) on the first run and re-executes itself inside it. Then, for each repeat
r = 1..R and each workload, runs the engines in turn -- rukong embedded, rukong cluster,
Dask, Ray (task-overhead workloads) or the single-node NumPy kernel (GEMM and TSQR/SVD,
`--suite linalg`, see linalg.py) -- so that a noisy machine hits all of them alike. Every
engine run is one "cell": a fresh deployment (not timed), one untimed warm-up run, one timed
run, results checked, deployment stopped. Writes DIR/results.json (every sample) and DIR/results.md (the table).

See README.md next to this file for what is measured and the caveats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402  (the peers' workloads: the big-data digest)
REPO = HERE.parent.parent
VENV = HERE / ".venv"
REQUIREMENTS = HERE / "requirements.txt"

ENGINES = ["rukong-embedded", "rukong-cluster", "dask", "ray", "numpy"]
LABELS = {
    "rukong-embedded": "rukong embedded",
    "rukong-cluster": "rukong cluster",
    "dask": "Dask",
    "ray": "Ray",
    "numpy": "NumPy single node",
}
# The sizes, and a smoke-test set: the task-overhead workloads ...
FULL_WORKLOADS = ["tree:8192", "fanout:10000", "chain:1000", "sleep:1000x10"]
QUICK_WORKLOADS = ["tree:256", "fanout:500", "chain:100", "sleep:50x10"]
# ... and the linear-algebra ones (GEMM n:block, TSQR rows:cols:block_rows; see linalg.py).
LINALG_FULL = ["gemm:1024:256", "gemm:4096:512", "gemm:4096:1024", "tsqr:200000:100:10000"]
LINALG_QUICK = ["gemm:1024:256", "tsqr:20000:100:2000"]
SUITES = {
    "overhead": (FULL_WORKLOADS, QUICK_WORKLOADS),
    "linalg": (LINALG_FULL, LINALG_QUICK),
    "all": (FULL_WORKLOADS + LINALG_FULL, QUICK_WORKLOADS + LINALG_QUICK),
}
LINALG_KINDS = ("gemm", "tsqr")


# --------------------------------------------------------------------------- bootstrap


def in_venv() -> bool:
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def bootstrap() -> None:
    """Create/refresh the venv and re-exec this script inside it."""
    if in_venv():
        return
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {VENV} …", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / ".requirements.sha256"
    if not stamp.exists() or stamp.read_text().strip() != want:
        print(f"installing {REQUIREMENTS.name} into {VENV} …", flush=True)
        subprocess.check_call(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "-r", str(REQUIREMENTS)]
        )
        stamp.write_text(want + "\n")
    os.execv(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])


# --------------------------------------------------------------------------- workloads


def parse_workload(text: str):
    kind, _, arg = text.partition(":")
    if kind in ("tree", "fanout", "chain"):
        return kind, (int(arg),)
    if kind in ("sleep", "bigdata"):
        w, _, ms = arg.partition("x")
        return kind, (int(w), int(ms))
    p = arg.split(":")
    if kind in LINALG_KINDS and len(p) == (2 if kind == "gemm" else 3) and \
            all(x.isdigit() and int(x) > 0 for x in p):
        return kind, tuple(int(x) for x in p)
    raise SystemExit(f"unknown workload {text!r} (tree:N | fanout:W | chain:L | sleep:WxMS | "
                     "bigdata:PRODUCERSxMIB | gemm:N:BLOCK | tsqr:ROWS:COLS:BLOCK_ROWS)")


def is_linalg(workload: str) -> bool:
    return workload.partition(":")[0] in LINALG_KINDS


def applies(engine: str, workload: str) -> bool:
    """Ray runs the task-overhead workloads only; the NumPy single-node kernel, the
    linear-algebra ones only; rukong and Dask run both."""
    if engine == "ray":
        return not is_linalg(workload)
    if engine == "numpy":
        return is_linalg(workload)
    return True


def task_count(kind, args) -> int:
    """rukong's task count for the workload."""
    return {
        "gemm": lambda: (-(-args[0] // args[1])) ** 3 + 4 * (-(-args[0] // args[1])) ** 2,
        "tsqr": lambda: 4 * max(-(-args[0] // args[2]), 1) - 1,
        "tree": lambda: max(2 * args[0] - 1, 1),
        "fanout": lambda: args[0] + 2,
        "chain": lambda: max(args[0], 1),
        "sleep": lambda: args[0] + 1,
        "bigdata": lambda: args[0] + 1,
    }[kind]()


def workload_title(text: str) -> str:
    kind, args = parse_workload(text)
    if kind == "tree":
        return f"tree reduction N={args[0]:,}"
    if kind == "fanout":
        return f"fan-out/fan-in W={args[0]:,}"
    if kind == "chain":
        return f"chain L={args[0]:,}"
    if kind == "gemm":
        n, b = args
        g = -(-n // b)
        return f"GEMM n={n:,}, {b:,}-blocks ({g}×{g} grid)"
    if kind == "tsqr":
        rows, cols, br = args
        return f"TSQR/SVD {rows:,}×{cols:,}, {br:,}-row blocks"
    if kind == "bigdata":
        return f"big data: {args[0]} × {args[1]} MiB blobs into one sha256"
    return (f"sleep fan-out W={args[0]:,} × {args[1]} ms "
            f"(ideal {args[0] * args[1] / 2 / 1e3:.2f} s on 2 slots)")


def sleep_dag(w: int, ms: int) -> dict:
    """The sleep fan-out as a rukong DAG: s_i = sleep(i, ms) (returns i), sink = add(s_*)."""
    tasks = [{"id": f"s{i}", "fn": "sleep", "args": [i, ms]} for i in range(w)]
    tasks.append({"id": "sink", "fn": "add", "deps": [f"s{i}" for i in range(w)]})
    return {"name": f"sleep-fanout-{w}x{ms}", "tasks": tasks}


# --------------------------------------------------------------------------- processes


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop a child started with start_new_session=True and everything in its group."""
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        t = time.monotonic()
        while time.monotonic() - t < wait:
            if proc.poll() is not None and not group_alive(pgid):
                return
            time.sleep(0.05)
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count for killpg(0); treat a group of zombies as gone.
    return any(int(f[2]) == pgid and f[0] != "Z" for _, f in proc_stats())


def proc_stats():
    """(pid, the fields of /proc/PID/stat after the command name) for every process:
    field 0 is the state, 1 the parent, 2 the process group, 21 the resident pages."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            yield int(d.name), (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue


class RssSampler:
    """The peak, over a run, of the resident memory of a process and everything it started
    (its descendants, and its process group: daemons that left their parent), sampled from
    /proc every `period` seconds in a thread. Resident memory shared between processes
    (libraries, a tmpfs mapped by both) counts once per process, so this is an upper bound."""

    def __init__(self, pid: int, period: float = 0.1):
        self.pid, self.period, self.peak_kb = pid, period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        procs = {pid: (int(f[1]), int(f[2]), int(f[21])) for pid, f in proc_stats()}
        tree = {self.pid}
        grew = True
        while grew:
            grew = False
            for pid, (ppid, pgrp, _) in procs.items():
                if pid not in tree and (ppid in tree or pgrp == self.pid):
                    tree.add(pid)
                    grew = True
        page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        return sum(procs[p][2] for p in tree if p in procs) * page_kb

    def _loop(self):
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self._sample())
            self._stop.wait(self.period)

    def stop(self) -> float:
        """Stops sampling; the peak in MB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def run_child(cmd, timeout: float, env=None, cwd=None, rss: list | None = None):
    """Run a command in its own process group with a hard timeout; stop the whole group
    afterwards (engines leave daemons). Returns (rc | None on timeout, stdout, stderr).
    With `rss` (a list), appends the peak resident memory of the command's processes, MB."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env=env, cwd=cwd,
    )
    sampler = RssSampler(proc.pid) if rss is not None else None
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = None
        stop_group(proc)
        out, err = proc.communicate()
    if sampler is not None:
        rss.append(sampler.stop())
    stop_group(proc)
    return rc, out, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- rukong cells


class Rukong:
    def __init__(self, bindir: Path, warmup: int, timeout: float, tmp: Path):
        self.e2e = bindir / "rukong-e2e"
        self.cli = bindir / "rukong"
        self.warmup = warmup
        self.timeout = timeout
        self.tmp = tmp

    def cell(self, mode: str, workload: str) -> dict:
        kind, args = parse_workload(workload)
        if kind == "sleep":
            return self.sleep_cell(mode, args)
        if kind == "bigdata":
            return self.bigdata_cell(mode, args)
        if kind in LINALG_KINDS:
            return self.linalg_cell(mode, kind, args)
        spec = {"tree": "tree", "fanout": "fanout", "chain": "chain"}[kind]
        out = self.tmp / f"e2e-{mode}.json"
        out.unlink(missing_ok=True)
        cmd = [str(self.e2e), "--mode", mode, "--workload", f"{spec}:{args[0]}",
               "--warmup", str(self.warmup), "--repeats", "1", "--json", str(out)]
        if mode == "embedded":
            cmd += ["--slots", "2"]
        else:
            cmd += ["--executors", "2", "--slots", "1"]
        limit = 60 + (self.warmup + 1) * self.timeout
        t = time.perf_counter()
        rss = []
        rc, so, se = run_child(cmd, limit, rss=rss)
        cell_s = time.perf_counter() - t
        if rc is None:
            return {"timed_out": True, "error": f"timed out after {limit:.0f} s", "cell_s": cell_s}
        if rc != 0 or not out.exists():
            return {"error": f"rukong-e2e exited {rc}: {se.strip()[-2000:]}", "cell_s": cell_s}
        doc = json.loads(out.read_text())
        w = doc["workloads"][0]
        sample = {"wall_ms": w["samples"]["wall_ms"][0], "checked": True,
                  "loadavg_1m": os.getloadavg()[0]}
        if mode == "cluster":
            sample["engine_ms"] = w["samples"]["engine_ms"][0]
            sample["submit_ms"] = w["samples"]["submit_ms"][0]
            sample["redis_cmds_per_task"] = w["redis"]["calls_per_task"]
            sample["redis_round_trips_per_task"] = w.get("redis_round_trips_per_task")
        else:
            sample["outer_ms"] = w["samples"]["outer_ms"][0]
        return {"samples": [sample], "tasks": w["tasks"], "cell_s": cell_s,
                "debug_build": doc["machine"]["debug_build"], "peak_rss_mb": rss[0]}

    # The sleep fan-out is not a rukong-e2e workload: embedded runs go through
    # `rukong run FILE --json --slots 2` (stats.wall_ms = the job report's wall, submission
    # to end, like rukong-e2e embedded); cluster runs start `rukong up` and submit/poll over
    # HTTP like rukong-e2e cluster (POST /jobs, GET /jobs/{id} every 2 ms).

    def sleep_cell(self, mode: str, args) -> dict:
        w, ms = args
        dag = self.tmp / f"sleep-{w}x{ms}.json"
        if not dag.exists():
            dag.write_text(json.dumps(sleep_dag(w, ms)))
        want = w * (w - 1) // 2
        t = time.perf_counter()
        try:
            if mode == "embedded":
                res = self.sleep_embedded(dag, want)
            else:
                res = self.sleep_cluster(dag, want)
        except Exception as e:  # noqa: BLE001
            res = {"error": f"{type(e).__name__}: {e}"}
        res["cell_s"] = time.perf_counter() - t
        res["tasks"] = w + 1
        return res

    def bigdata_cell(self, mode: str, args) -> dict:
        """`rukong gen big-data`, run like the sleep fan-out; the digest is checked against
        peers.py's (the same bytes hashed in Python)."""
        producers, mib = args
        dag = self.tmp / f"bigdata-{producers}x{mib}.json"
        if not dag.exists():
            r = subprocess.run([str(self.cli), "gen", "big-data", "--producers", str(producers),
                                "--mib", str(mib), "--format", "json"],
                               capture_output=True, text=True, check=True)
            dag.write_text(r.stdout)
        want = peers.expected("bigdata", (producers, mib))

        def check(outputs):
            got = outputs.get("digest")
            if got != want:
                raise AssertionError(f"rukong {mode} big data: digest {got!r}, expected {want}")
            return {}

        t = time.perf_counter()
        try:
            res = (self.dag_embedded if mode == "embedded" else self.dag_cluster)(dag, check)
        except Exception as e:  # noqa: BLE001
            res = {"error": f"{type(e).__name__}: {e}"}
        res["cell_s"] = time.perf_counter() - t
        res["tasks"] = producers + 1
        return res

    def sleep_embedded(self, dag: Path, want: int) -> dict:
        def check(outputs):
            got = outputs.get("sink")
            if got != want:
                raise AssertionError(f"rukong embedded sleep: sink = {got!r}, expected {want}")
            return {}

        return self.dag_embedded(dag, check)

    def dag_embedded(self, dag: Path, check) -> dict:
        """`rukong run DAG --json --slots 2`, warm-up runs first (each a fresh process);
        `check(outputs)` raises on a wrong result, or returns details for the sample."""
        samples, rss = [], []
        for i in range(self.warmup + 1):
            cmd = [str(self.cli), "run", str(dag), "--json", "--slots", "2", "--no-progress",
                   "--timeout", str(self.timeout)]
            rc, so, se = run_child(cmd, self.timeout + 30, rss=rss)
            if rc is None:
                return {"timed_out": True, "error": f"timed out after {self.timeout:.0f} s"}
            if rc != 0:
                return {"error": f"rukong run exited {rc}: {se.strip()[-2000:]}"}
            doc = json.loads(so.strip().splitlines()[0])
            info = check(doc["outputs"])
            if i >= self.warmup:
                samples.append({"wall_ms": doc["stats"]["wall_ms"], "checked": True,
                                "loadavg_1m": os.getloadavg()[0], **info})
        return {"samples": samples, "tasks": doc["stats"].get("tasks"),
                "peak_rss_mb": max(rss)}

    def sleep_cluster(self, dag: Path, want: int) -> dict:
        def check(outputs):
            got = outputs.get("sink")
            if got != want:
                raise AssertionError(f"rukong cluster sleep: sink = {got!r}, expected {want}")
            return {}

        return self.dag_cluster(dag, check)

    def dag_cluster(self, dag: Path, check) -> dict:
        """`rukong up` (2 executors × 1 slot) and the DAG submitted over HTTP, warm-up runs
        first; `check(outputs)` as for dag_embedded."""
        port = free_port()
        token = secrets.token_hex(16)
        env = dict(os.environ, RUKONG_TOKEN=token)
        up = subprocess.Popen(
            [str(self.cli), "up", "--executors", "2", "--slots", "1",
             "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True, env=env,
        )
        sampler = RssSampler(up.pid)
        try:
            line = up.stdout.readline().strip()  # the engine URL, first line on stdout
            if not line.startswith("http://"):
                raise RuntimeError(f"rukong up printed {line!r}, not the engine URL")
            body = dag.read_bytes()
            samples = []
            for i in range(self.warmup + 1):
                s = http_run(port, token, body, self.timeout)
                if s.get("timed_out"):
                    return {"timed_out": True, "error": f"timed out after {self.timeout:.0f} s"}
                info = check(s.pop("outputs"))
                if i >= self.warmup:
                    s.update(checked=True, loadavg_1m=os.getloadavg()[0], **info)
                    samples.append(s)
            return {"samples": samples, "peak_rss_mb": sampler.stop()}
        finally:
            sampler.stop()
            stop_group(up, grace=10)

    # GEMM and TSQR: the DAG of `rukong gen gemm|tsqr --format json` (rukong's own
    # client/src/linalg_workloads.rs), run like the sleep fan-out above; the outputs are
    # checked against linalg.py's NumPy reference (block norms / singular values).

    def linalg_cell(self, mode: str, kind: str, args) -> dict:
        import linalg  # needs numpy: only inside the venv

        name = "-".join(str(x) for x in (kind, *args))
        dag = self.tmp / f"{name}.json"
        if not dag.exists():
            gen = ([str(self.cli), "gen", "gemm", "--n", str(args[0]), "--block", str(args[1])]
                   if kind == "gemm" else
                   [str(self.cli), "gen", "tsqr", "--rows", str(args[0]), "--cols", str(args[1]),
                    "--block-rows", str(args[2])])
            r = subprocess.run(gen + ["--format", "json"], capture_output=True, text=True,
                               check=True)
            dag.write_text(r.stdout)
        ref = linalg.Reference(str(self.tmp / "ref"), kind, args)

        def check(outputs):
            if kind == "tsqr":
                return {"sv_rel_err": linalg.check_sv(outputs["sv"], ref.doc["sv"])}
            g = len(ref.doc["norms"])
            norms = [[outputs[f"f{i}_{j}"] for j in range(g)] for i in range(g)]
            info = {"norm_rel_err": linalg.check_norms(norms, ref.doc["norms"])}
            # The sample block C[0,0] comes back as its shape and a digest of its bytes
            # (rounding differs from NumPy's, so only the shape is checked).
            c00, b = outputs["c0_0"], min(args)
            if (c00.get("rows"), c00.get("cols")) != (b, b) or \
                    c00.get("f64le", {}).get("bytes") != 8 * b * b:
                raise AssertionError(f"c0_0 is {str(c00)[:200]}, expected a {b}x{b} matrix")
            if len(outputs) != g * g + 1:
                raise AssertionError(f"{len(outputs)} outputs, expected {g * g + 1}")
            return info

        t = time.perf_counter()
        try:
            res = self.dag_embedded(dag, check) if mode == "embedded" else \
                self.dag_cluster(dag, check)
        except Exception as e:  # noqa: BLE001
            res = {"error": f"{type(e).__name__}: {e}"}
        res["cell_s"] = time.perf_counter() - t
        res["tasks"] = res.get("tasks") or task_count(kind, args)
        return res


def http_run(port: int, token: str, body: bytes, timeout: float) -> dict:
    """Submit a DAG and poll it to its end, like rukong-e2e's cluster mode: wall runs from
    just before POST /jobs to the GET /jobs/{id} that saw the job's end."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    auth = {"Authorization": f"Bearer {token}"}

    def call(method, path, data=None, ctype=None):
        headers = dict(auth)
        if ctype:
            headers["Content-Type"] = ctype
        for attempt in range(2):
            try:
                conn.request(method, path, body=data, headers=headers)
                r = conn.getresponse()
                text = r.read()
                break
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                if attempt:
                    raise
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {r.status}: {text[:300]!r}")
        return json.loads(text)

    t0 = time.perf_counter()
    job = call("POST", "/jobs", body, "application/json")["job"]
    t_submit = time.perf_counter()
    while True:
        st = call("GET", f"/jobs/{job}")
        if st["state"] != "running":
            break
        if time.perf_counter() - t0 > timeout:
            try:
                conn.request("DELETE", f"/jobs/{job}", headers=auth)
                conn.getresponse().read()
            except Exception:  # noqa: BLE001
                pass
            return {"timed_out": True}
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    if st["state"] != "succeeded":
        raise RuntimeError(f"job {job} ended {st['state']}: {st.get('error')}")
    outs = call("GET", f"/jobs/{job}/outputs")["outputs"]
    conn.close()
    return {"wall_ms": wall * 1e3, "engine_ms": st.get("elapsed_ms"),
            "submit_ms": (t_submit - t0) * 1e3, "outputs": outs}


# --------------------------------------------------------------------------- peer cells


def peer_cell(engine: str, workload: str, warmup: int, timeout: float, tmp: Path) -> dict:
    out = tmp / f"peer-{engine}.json"
    out.unlink(missing_ok=True)
    script = "linalg.py" if is_linalg(workload) else "peers.py"
    cmd = [sys.executable, str(HERE / script), "--engine", engine, "--workload", workload,
           "--warmup", str(warmup), "--repeats", "1", "--timeout", str(timeout),
           "--json", str(out)]
    if is_linalg(workload):
        cmd += ["--ref", str(tmp / "ref")]
    # Start-up (Ray: several seconds) + warm-up + timed run, each run capped by `timeout`
    # inside the child; this outer limit is only a backstop.
    limit = 120 + (warmup + 1) * (timeout + 30)
    t = time.perf_counter()
    rss = []
    rc, so, se = run_child(cmd, limit, rss=rss)
    cell_s = time.perf_counter() - t
    doc = json.loads(out.read_text()) if out.exists() else {}
    res = {"cell_s": cell_s, "startup_s": doc.get("startup_s"), "peak_rss_mb": rss[0],
           "versions": doc.get("versions"), "samples": doc.get("samples", []),
           "warmup_ms": doc.get("warmup_ms", [])}
    if doc.get("warmup_info"):
        res["warmup_info"] = doc["warmup_info"]
    if rc is None:
        res.update(timed_out=True, error=f"cell killed after {limit:.0f} s")
    elif doc.get("timed_out"):
        res.update(timed_out=True, error=f"timed out after {timeout:.0f} s")
    elif rc != 0 or doc.get("error"):
        res["error"] = doc.get("error") or f"exited {rc}: {se.strip()[-2000:]}"
    return res


def prepare_linalg(workloads, bindir: Path, tmp: Path, timeout: float) -> dict:
    """Untimed set-up for the linear-algebra workloads: the NumPy references (linalg.py
    --reference, one child each) and a bit-for-bit check that linalg.py's generator
    produces rukong's `block` values (sha256 of a few blocks vs `rukong run`'s digests)."""
    (tmp / "ref").mkdir(exist_ok=True)
    info = {"reference_s": {}}
    for wl in workloads:
        t = time.perf_counter()
        rc, so, se = run_child([sys.executable, str(HERE / "linalg.py"), "--reference", wl,
                                "--ref", str(tmp / "ref")], 120 + timeout)
        if rc != 0:
            raise SystemExit(f"linalg.py --reference {wl} failed ({rc}): {se.strip()[-2000:]}")
        info["reference_s"][wl] = time.perf_counter() - t
    rc, so, se = run_child([sys.executable, str(HERE / "linalg.py"), "--digests"], 120)
    if rc != 0:
        raise SystemExit(f"linalg.py --digests failed ({rc}): {se.strip()[-2000:]}")
    want = json.loads(so)
    tasks = []
    for i, d in enumerate(want):
        rows, cols, seed, r0, c0 = d["args"]
        seed = seed - 2**64 if seed >= 2**63 else seed  # rukong takes seeds as i64 patterns
        tasks.append({"id": f"d{i}", "fn": "block", "args": [rows, cols, seed, r0, c0]})
    dag = tmp / "digests.json"
    dag.write_text(json.dumps({"name": "generator-check", "tasks": tasks}))
    rc, so, se = run_child([str(bindir / "rukong"), "run", str(dag), "--json", "--slots", "2",
                            "--no-progress"], 120)
    if rc != 0:
        raise SystemExit(f"rukong run (generator check) exited {rc}: {se.strip()[-2000:]}")
    outs = json.loads(so.strip().splitlines()[0])["outputs"]
    bad = [d["args"] for i, d in enumerate(want)
           if outs.get(f"d{i}", {}).get("f64le", {}).get("sha256") != d["sha256"]]
    if bad:
        raise SystemExit(f"linalg.py's generator differs from rukong's block for {bad}")
    info["generator_check"] = (f"{len(want)}/{len(want)} blocks bit-identical "
                               "(sha256 of linalg.py's block() = rukong's `block` output)")
    return info


# --------------------------------------------------------------------------- report


def median_or_none(xs):
    return statistics.median(xs) if xs else None


def fmt_ms(ms):
    if ms is None:
        return "—"
    if ms >= 10_000:
        return f"{ms / 1e3:,.1f} s"
    if ms >= 1_000:
        return f"{ms / 1e3:,.2f} s"
    if ms >= 10:
        return f"{ms:,.0f} ms"
    return f"{ms:.2f} ms"


def fmt_us(us):
    if us is None:
        return "—"
    if us >= 100:
        return f"{us:,.0f}"
    if us >= 10:
        return f"{us:.1f}"
    return f"{us:.2f}"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    return f"{r:,.0f}×" if r >= 100 else f"{r:.1f}×" if r >= 10 else f"{r:.2f}×"


def summarize(results: dict, workloads, engines) -> dict:
    summary = {}
    for wl in workloads:
        row = {}
        for e in engines:
            if e not in results[wl]:
                continue
            cells = results[wl][e]
            walls = [s["wall_ms"] for c in cells for s in c.get("samples", [])]
            tasks = next((c["tasks"] for c in cells if c.get("tasks")), None) or \
                task_count(*parse_workload(wl))
            med = median_or_none(walls)
            timeouts = [c for c in cells if c.get("timed_out")]
            errors = [c for c in cells if c.get("error") and not c.get("timed_out")]
            row[e] = {
                "tasks": tasks,
                "samples_wall_ms": walls,
                "median_wall_ms": med,
                "min_wall_ms": min(walls) if walls else None,
                "max_wall_ms": max(walls) if walls else None,
                "median_us_per_task": med * 1e3 / tasks if med is not None else None,
                "timed_out": len(timeouts),
                "timeout_note": timeouts[0]["error"] if timeouts else None,
                "errors": [c["error"] for c in errors],
                "cells": len(cells),
                "peak_rss_mb": max((c["peak_rss_mb"] for c in cells
                                    if c.get("peak_rss_mb") is not None), default=None),
            }
            if e == "rukong-cluster":
                rc = [s["redis_cmds_per_task"] for c in cells for s in c.get("samples", [])
                      if s.get("redis_cmds_per_task") is not None]
                eng = [s["engine_ms"] for c in cells for s in c.get("samples", [])
                       if s.get("engine_ms") is not None]
                rt = [s["redis_round_trips_per_task"] for c in cells
                      for s in c.get("samples", [])
                      if s.get("redis_round_trips_per_task") is not None]
                row[e]["median_redis_cmds_per_task"] = median_or_none(rc)
                row[e]["median_redis_round_trips_per_task"] = median_or_none(rt)
                row[e]["median_engine_ms"] = median_or_none(eng)
            if e == "dask":
                bm = [s["build_ms"] for c in cells for s in c.get("samples", [])
                      if s.get("build_ms") is not None]
                row[e]["median_build_ms"] = median_or_none(bm)
            if is_linalg(wl):
                # The largest relative error any check measured (timed and warm-up runs).
                infos = [s for c in cells for s in c.get("samples", [])] + \
                    [i for c in cells for i in c.get("warmup_info", [])]
                for k in ("norm_rel_err", "sample_rel_err", "full_rel_err", "sv_rel_err"):
                    xs = [i[k] for i in infos if i.get(k) is not None]
                    if xs:
                        row[e][f"max_{k}"] = max(xs)
                gt = [i["graph_tasks"] for i in infos if i.get("graph_tasks")]
                if gt:
                    row[e]["graph_tasks"] = max(gt)
                gm = [i["gen_ms"] for i in infos if i.get("gen_ms") is not None]
                if gm:
                    row[e]["median_gen_ms"] = statistics.median(gm)
        summary[wl] = row
    return summary


def cell_text(c: dict) -> str:
    if c["median_wall_ms"] is None:
        if c["timed_out"]:
            return c["timeout_note"] or "timed out"
        if c["errors"]:
            return "failed"
        return "—"
    s = f"{fmt_us(c['median_us_per_task'])} µs/task · {fmt_ms(c['median_wall_ms'])}"
    n = len(c["samples_wall_ms"])
    if c["timed_out"] or c["errors"]:
        s += f" ({n}/{c['cells']} runs; others {'timed out' if c['timed_out'] else 'failed'})"
    return s


def markdown(meta: dict, summary: dict, workloads, engines) -> str:
    L = []
    L.append("# rukong vs Dask distributed vs Ray")
    L.append("")
    L.append(f"Run {meta['started']} → {meta['finished']} (total {meta['total_s'] / 60:.1f} min)"
             f", mode {'quick' if meta['quick'] else 'full'}, R = {meta['repeats']} alternating "
             f"repeats, {meta['warmup']} warm-up run per cell"
             + (f" ({', '.join(meta['cold'])}: no warm-up, every engine)." if meta.get("cold")
                else "."))
    L.append("")
    m = meta["machine"]
    L.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']:.0f} GiB RAM, "
             f"{m['os']}; load average at start {m['loadavg_start']}, at end "
             f"{m['loadavg_end']}.")
    v = meta["versions"]
    L.append(f"Versions: rukong {meta['rukong']['commit']} (release build; "
             f"{meta['rukong']['build']}), "
             f"Python {v.get('python')}, dask {v.get('dask', '?')}, distributed "
             f"{v.get('distributed', '?')}, ray {v.get('ray', '?')}"
             + (f", numpy {v['numpy']} ({v.get('blas', '?')})" if v.get("numpy") else "")
             + ".")
    L.append("")
    owls = [wl for wl in workloads if not is_linalg(wl)]
    lwls = [wl for wl in workloads if is_linalg(wl)]
    if owls:
        overhead_markdown(L, meta, summary, owls, [e for e in engines if e != "numpy"])
    if lwls:
        linalg_markdown(L, meta, summary, lwls, [e for e in engines if e != "ray"])
    return "\n".join(L)


def overhead_markdown(L: list, meta: dict, summary: dict, workloads, engines) -> None:
    """The task-overhead workloads' tables (tree, fan-out, chain, sleep)."""
    L.append("Each cell: median over the repeats of the timed run's wall time "
             "(submission → result), shown as µs/task · wall. Ratios compare median walls "
             "(> 1× means the peer is slower).")
    L.append("")
    cols = [LABELS[e] for e in engines]
    ratio_cols = []
    if "rukong-cluster" in engines and "ray" in engines:
        ratio_cols.append(("Ray / rukong cluster", "ray", "rukong-cluster"))
    if "rukong-cluster" in engines and "dask" in engines:
        ratio_cols.append(("Dask / rukong cluster", "dask", "rukong-cluster"))
    if "rukong-embedded" in engines and "ray" in engines:
        ratio_cols.append(("Ray / rukong embedded", "ray", "rukong-embedded"))
    head = ["workload", "tasks"] + cols + [r[0] for r in ratio_cols]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|")
    for wl in workloads:
        row = summary[wl]
        tasks = row[engines[0]]["tasks"]
        cells = [workload_title(wl), f"{tasks:,}"]
        cells += [cell_text(row[e]) for e in engines]
        for _, a, b in ratio_cols:
            cells.append(fmt_ratio(row[a]["median_wall_ms"], row[b]["median_wall_ms"]))
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    rss_table(L, summary, workloads, engines)
    if "rukong-cluster" in engines:
        L.append("rukong cluster details (medians): engine-reported elapsed, Redis commands "
                 "per task (commands inside scripts included) and client round trips per "
                 "task.")
        L.append("")
        L.append("| workload | wall | engine elapsed | redis cmds/task | round trips/task |")
        L.append("|---|--:|--:|--:|--:|")
        for wl in workloads:
            c = summary[wl]["rukong-cluster"]
            rc = c.get("median_redis_cmds_per_task")
            rt = c.get("median_redis_round_trips_per_task")
            L.append(f"| {workload_title(wl)} | {fmt_ms(c['median_wall_ms'])} | "
                     f"{fmt_ms(c.get('median_engine_ms'))} | "
                     f"{'—' if rc is None else f'{rc:.2f}'} | "
                     f"{'—' if rt is None else f'{rt:.3f}'} |")
        L.append("")
    L.append("All samples (wall, in repeat order):")
    L.append("")
    L.append("| workload | " + " | ".join(cols) + " |")
    L.append("|---|" + "|".join(["---"] * len(cols)) + "|")
    for wl in workloads:
        cells = [workload_title(wl)]
        for e in engines:
            xs = summary[wl][e]["samples_wall_ms"]
            cells.append(", ".join(fmt_ms(x) for x in xs) or "—")
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    if "dask" in engines:
        L.append("Dask graph construction (`dask.delayed` calls, before the clock; median): "
                 + ", ".join(f"{workload_title(wl).split(' (')[0]} "
                             f"{fmt_ms(summary[wl]['dask'].get('median_build_ms'))}"
                             for wl in workloads) + ".")
        L.append("")
    startups = meta.get("peer_startup_s", {})
    if startups:
        L.append("Peer cluster start-up (not timed; median per cell): " + ", ".join(
            f"{LABELS[e]} {s:.1f} s" for e, s in startups.items()) + ".")
        L.append("")
    L.append("What is timed:")
    L.append("")
    L.append("- rukong embedded: `rukong-e2e --mode embedded --slots 2` (sleep fan-out: "
             "`rukong run FILE --json --slots 2`): the job report's wall, submission "
             "(validation and scheduling included) → job end; one in-process deployment "
             "(engine, executor with 2 slots, proxy, in-memory store).")
    L.append("- rukong cluster: `rukong-e2e --mode cluster --executors 2 --slots 1` (sleep "
             "fan-out: the same protocol from this script): a private redis-server plus "
             "`rukong up` (proxy, engine, 2 executor processes × 1 slot) on loopback, "
             "restarted for every cell; wall = just before `POST /jobs` → the "
             "`GET /jobs/{id}` poll (every 2 ms) that saw the job's end. Cluster start-up "
             "is excluded.")
    L.append("- Dask: `LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`, "
             "graph of `dask.delayed` calls built before the clock, timed "
             "`client.compute(root, optimize_graph=False).result()`.")
    L.append("- Ray: `ray.init(num_cpus=2)`, `@ray.remote` tasks; timed from the first "
             "`.remote()` (Ray submits while the graph is built) to `ray.get(root)`.")
    L.append("- big data: P producers each make an M MiB byte string (rukong's `blob`: byte "
             "i is (31 i + seed) mod 256) and one task hashes them all in order (SHA-256); "
             "rukong runs `rukong gen big-data` like the sleep fan-out, Dask and Ray the "
             "same two functions in Python. rukong cluster keeps the blobs as files in the "
             "proxy's tmpfs directory (`proxy.objects = shared`): that memory is not in any "
             "process's resident size, so add P × M MiB to its peak while the blobs are "
             "held (each is deleted once the hash has read it).")
    L.append("- Every engine's result is asserted against the closed form (tree root "
             "N(N-1)/2, fan-in sink W + W(W-1)/2, chain end L-1, sleep sink W(W-1)/2, the "
             "big-data digest computed in Python).")
    L.append("")


def rss_table(L: list, summary: dict, workloads, engines) -> None:
    """Peak resident memory per engine: every process of a cell (rukong cluster: Redis,
    proxy, engine and executors; Dask: scheduler and workers; Ray: GCS, raylet and
    workers), summed, at its highest over the cell's runs (sampled every 100 ms)."""
    L.append("Peak resident memory, MB: every process of the engine summed (rukong "
             "cluster: Redis, proxy, engine, executors and the client; Dask: client, "
             "scheduler and workers; Ray: driver, GCS, raylet and workers), at its highest "
             "over the cell's runs, warm-ups included, sampled every 100 ms from /proc.")
    L.append("")
    cols = [LABELS[e] for e in engines]
    L.append("| workload | " + " | ".join(cols) + " |")
    L.append("|---|" + "|".join(["--:"] * len(cols)) + "|")
    for wl in workloads:
        cells = [workload_title(wl)]
        for e in engines:
            mb = summary[wl][e].get("peak_rss_mb")
            cells.append("—" if mb is None else f"{mb:,.0f}")
        L.append("| " + " | ".join(cells) + " |")
    L.append("")


def fmt_s(ms):
    if ms is None:
        return "—"
    return f"{ms / 1e3:.3f} s" if ms < 10_000 else f"{ms / 1e3:.2f} s"


def fmt_err(x):
    return "—" if x is None else f"{x:.1e}"


def linalg_markdown(L: list, meta: dict, summary: dict, workloads, engines) -> None:
    """The GEMM and TSQR/SVD table: rukong embedded and cluster, Dask (dask.array) and the
    single-node NumPy kernel, with rukong / Dask and X / single-node ratios."""
    L.append("## GEMM and tall-skinny SVD")
    L.append("")
    L.append("Each cell: median wall time over the repeats, then (min–max). "
             "Ratios compare medians: **rukong / Dask < 1× means rukong is faster**; "
             "X / NumPy is the issue's \"end-to-end time vs the single-node kernel\" "
             "(target ≤ 1.5× for the largest size).")
    L.append("")
    have = [e for e in ("rukong-embedded", "rukong-cluster", "dask", "numpy") if e in engines]
    ratios = []
    for r in ("rukong-embedded", "rukong-cluster"):
        if r in have and "dask" in have:
            ratios.append((f"{LABELS[r]} / Dask", r, "dask"))
    for r in ("rukong-embedded", "rukong-cluster", "dask"):
        if r in have and "numpy" in have:
            ratios.append((f"{LABELS[r]} / NumPy", r, "numpy"))
    head = ["case", "tasks (rukong / Dask)"] + [LABELS[e] for e in have] + \
        [x[0] for x in ratios]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|")

    def get(wl, e):
        return summary[wl].get(e) or {}

    for wl in workloads:
        row = summary[wl]
        tasks = task_count(*parse_workload(wl))
        dt_ = get(wl, "dask").get("graph_tasks")
        cells = [workload_title(wl), f"{tasks:,} / {dt_:,}" if dt_ else f"{tasks:,}"]
        for e in have:
            c = row[e]
            if c["median_wall_ms"] is None:
                cells.append(cell_text(c))
                continue
            txt = f"**{fmt_s(c['median_wall_ms'])}**"
            if len(c["samples_wall_ms"]) > 1:
                txt += f" ({fmt_s(c['min_wall_ms'])}–{fmt_s(c['max_wall_ms'])})"
            n = len(c["samples_wall_ms"])
            if c["timed_out"] or c["errors"]:
                txt += f" ({n}/{c['cells']} runs)"
            cells.append(txt)
        for _, a, b in ratios:
            cells.append(fmt_ratio(row[a]["median_wall_ms"], row[b]["median_wall_ms"]))
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    L.append("Checks (largest relative error over every timed and warm-up run; every run "
             "passed, or its cell would say *failed*):")
    L.append("")
    L.append("| case | rukong embedded | rukong cluster | Dask | NumPy |")
    L.append("|---|---|---|---|---|")
    for wl in workloads:
        kind, _ = parse_workload(wl)
        cells = [workload_title(wl)]
        for e in ("rukong-embedded", "rukong-cluster", "dask", "numpy"):
            c = get(wl, e)
            if not c:
                cells.append("—")
                continue
            if kind == "tsqr":
                cells.append(f"σ {fmt_err(c.get('max_sv_rel_err'))}")
                continue
            parts = []
            if c.get("max_full_rel_err") is not None:
                parts.append(f"‖C−C_ref‖/‖C_ref‖ {fmt_err(c['max_full_rel_err'])}")
            if c.get("max_norm_rel_err") is not None:
                parts.append(f"block norms {fmt_err(c['max_norm_rel_err'])}")
            if c.get("max_sample_rel_err") is not None:
                parts.append(f"C[0,0] {fmt_err(c['max_sample_rel_err'])}")
            cells.append(", ".join(parts) or "—")
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    L.append("All samples (wall, in repeat order):")
    L.append("")
    L.append("| case | " + " | ".join(LABELS[e] for e in have) + " |")
    L.append("|---|" + "|".join(["---"] * len(have)) + "|")
    for wl in workloads:
        cells = [workload_title(wl)]
        for e in have:
            xs = summary[wl][e]["samples_wall_ms"]
            cells.append(", ".join(fmt_s(x) for x in xs) or "—")
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    extra = []
    if "dask" in have:
        extra.append("Dask collection construction (before the clock; median): " + ", ".join(
            f"{workload_title(wl)} {fmt_ms(get(wl, 'dask').get('median_build_ms'))}"
            for wl in workloads) + ".")
    if "numpy" in have:
        extra.append("NumPy generating the whole inputs with linalg.py's generator (not "
                     "timed; one core): " + ", ".join(
                         f"{workload_title(wl)} {fmt_ms(get(wl, 'numpy').get('median_gen_ms'))}"
                         for wl in workloads) + ".")
    li = meta.get("linalg") or {}
    if li.get("generator_check"):
        extra.append(f"Generator check: {li['generator_check']}.")
    for x in extra:
        L.append(x)
        L.append("")
    L.append("What is timed:")
    L.append("")
    L.append("- Same matrices everywhere: rukong's pseudo-random entries (splitmix64 of "
             "seed, row, column; seeds 1 and 2 for GEMM's A and B, 3 for TSQR), generated "
             "inside the job/graph, block by block, with rukong's blocking (Dask chunks = "
             "rukong's blocks).")
    L.append("- rukong embedded: `rukong run DAG --json --slots 2` on `rukong gen gemm|tsqr` "
             "(client/src/linalg_workloads.rs): the job report's wall (submission → end); "
             "each run is a fresh process. rukong cluster: `rukong up --executors 2 --slots "
             "1` (private redis-server, loopback), the DAG POSTed over HTTP, wall = just "
             "before `POST /jobs` → the status poll (every 2 ms) that saw the end. Outputs: "
             "every C block's Frobenius norm (checked against NumPy's, < 1e-10) and the "
             "block C[0,0] (shape checked; it comes back as a digest), or the singular "
             "values (< 1e-8).")
    L.append("- Dask: `LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`; "
             "`da.map_blocks` generating each chunk from its position, `A @ B` then "
             "`map_blocks(frobenius)` and `C.blocks[0, 0]` (the same outputs as rukong), or "
             "`da.linalg.svd(A)[1]` (dask's TSQR); timed `client.compute(...)` → gathered "
             "results. The warm-up gathers the whole C and checks it entry by entry.")
    L.append("- NumPy single node: the kernel alone on the whole, pre-generated matrices, "
             "all cores: `A @ B` or `np.linalg.svd(A, compute_uv=False)`.")
    L.append("")


# --------------------------------------------------------------------------- machine


def machine_info() -> dict:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 2**20
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem,
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
            "loadavg_start": ", ".join(f"{x:.2f}" for x in os.getloadavg())}


def rukong_commit() -> str:
    try:
        r = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def prepare_binaries(build: bool, tmp: Path) -> tuple[Path, str]:
    rel = REPO / "target" / "release"
    have = (rel / "rukong-e2e").exists() and (rel / "rukong").exists()
    note = "not rebuilt (--no-build)"
    if build or not have:
        print("cargo build --release -p rukong-client -p rukong-benches …", flush=True)
        rc = subprocess.call(
            ["cargo", "build", "--release", "-p", "rukong-client", "-p", "rukong-benches"],
            cwd=REPO,
        )
        if rc == 0:
            note = "built by this run (cargo build --release)"
        elif have:
            note = "cargo build failed; used the existing binaries"
            print(f"WARNING: {note}", file=sys.stderr, flush=True)
        else:
            raise SystemExit("cargo build failed and there are no binaries to use")
    # Private copies: other builds may replace target/release/* while this runs.
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    for name in ("rukong", "rukong-e2e"):
        shutil.copy2(rel / name, bindir / name)
    built = ", ".join(
        f"{n} {dt.datetime.fromtimestamp((rel / n).stat().st_mtime).astimezone():%Y-%m-%d %H:%M %Z}"
        for n in ("rukong", "rukong-e2e"))
    return bindir, f"{note}; binaries from {built}"


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(
        description="rukong vs Dask distributed vs Ray, alternating engines per repeat.")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 repeat (smoke test)")
    ap.add_argument("--out", default=str(HERE), help="directory for results.{md,json}")
    ap.add_argument("--repeats", type=int, help="alternating repeats (default 3; quick 1)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per cell (default 1)")
    ap.add_argument("--cold-above", type=int, default=500_000, metavar="TASKS",
                    help="workloads with more tasks than this run without a warm-up, for every "
                         "engine (a 1M-task warm-up on a peer costs 10-30 min here; "
                         "default 500000)")
    ap.add_argument("--timeout", type=float,
                    help="seconds per run before it counts as timed out (default 300; quick 60)")
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help=f"comma-separated subset of {','.join(ENGINES)}")
    ap.add_argument("--suite", choices=sorted(SUITES), default="overhead",
                    help="default workload set: overhead (tree, fan-out, chain, sleep; the "
                         "default), linalg (GEMM and TSQR/SVD) or all")
    ap.add_argument("--workloads",
                    help="comma-separated, overrides --suite, e.g. tree:8192,sleep:1000x10 or "
                         "gemm:4096:512,tsqr:200000:100:10000")
    ap.add_argument("--no-build", action="store_true",
                    help="use target/release/* as they are (default: cargo build --release "
                         "first, a no-op when up to date)")
    ap.add_argument("--render", metavar="JSON",
                    help="only re-render results.md (into --out) from a results.json")
    a = ap.parse_args()

    if a.render:
        doc = json.loads(Path(a.render).read_text())
        meta = doc["meta"]
        summary = summarize(doc["cells"], meta["workloads"], meta["engines"])
        out_dir = Path(a.out).resolve()
        (out_dir / "results.md").write_text(
            markdown(meta, summary, meta["workloads"], meta["engines"]))
        print(f"wrote {out_dir / 'results.md'}")
        return

    bootstrap()

    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ENGINES:
            raise SystemExit(f"unknown engine {e!r}")
    workloads = ([w.strip() for w in a.workloads.split(",") if w.strip()] if a.workloads
                 else SUITES[a.suite][1 if a.quick else 0])
    for w in workloads:
        parse_workload(w)
    repeats = a.repeats or (1 if a.quick else 3)
    timeout = a.timeout or (60.0 if a.quick else 300.0)
    out_dir = Path(a.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    t_start = time.perf_counter()
    started = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    machine = machine_info()
    commit = rukong_commit()
    tmp = Path(tempfile.mkdtemp(prefix="rukong-peers-"))
    try:
        bindir, build_note = prepare_binaries(not a.no_build, tmp)

        def warmup_for(wl: str) -> int:
            kind, args = parse_workload(wl)
            if kind in LINALG_KINDS or task_count(kind, args) <= a.cold_above:
                return a.warmup
            return 0


        import dask
        import distributed
        import ray

        versions = {"python": platform.python_version(), "dask": dask.__version__,
                    "distributed": distributed.__version__, "ray": ray.__version__}
        linalg_wls = [wl for wl in workloads if is_linalg(wl)]
        linalg_info = None
        if linalg_wls:
            import numpy

            import linalg

            versions["numpy"] = numpy.__version__
            versions["blas"] = linalg.blas_name()
        print(f"engines: {', '.join(engines)}; workloads: {', '.join(workloads)}; "
              f"R = {repeats}; warm-up {a.warmup}; run timeout {timeout:.0f} s", flush=True)
        print(f"versions: {versions}", flush=True)
        if linalg_wls:
            print("linear algebra: NumPy references and generator check (not timed) …",
                  flush=True)
            linalg_info = prepare_linalg(linalg_wls, bindir, tmp, timeout)
            print(f"  {linalg_info['generator_check']}; references "
                  f"{sum(linalg_info['reference_s'].values()):.1f} s", flush=True)

        results = {wl: {e: [] for e in engines if applies(e, wl)} for wl in workloads}
        startup = {e: [] for e in ("dask", "ray")}
        skip: set[tuple[str, str]] = set()
        for r in range(1, repeats + 1):
            for wl in workloads:
                for e in engines:
                    if not applies(e, wl):
                        continue
                    if (wl, e) in skip:
                        print(f"[r{r}] {wl:<14} {e:<16} skipped (timed out before)", flush=True)
                        continue
                    wu = warmup_for(wl)
                    if e.startswith("rukong-"):
                        res = Rukong(bindir, wu, timeout, tmp).cell(e.removeprefix("rukong-"), wl)
                    else:
                        res = peer_cell(e, wl, wu, timeout, tmp)
                        if res.get("startup_s") is not None and e in startup:
                            startup[e].append(res["startup_s"])
                    res["repeat"] = r
                    results[wl][e].append(res)
                    if res.get("timed_out"):
                        skip.add((wl, e))
                    elapsed = (time.perf_counter() - t_start) / 60
                    if res.get("samples"):
                        s = res["samples"][0]
                        tasks = res.get("tasks") or task_count(*parse_workload(wl))
                        msg = (f"{fmt_ms(s['wall_ms']):>9}  "
                               f"{s['wall_ms'] * 1e3 / tasks:10.2f} µs/task  ok")
                    else:
                        msg = f"{'TIMEOUT' if res.get('timed_out') else 'FAILED'}: {res.get('error')}"
                    print(f"[r{r} {elapsed:5.1f} min] {wl:<14} {e:<16} {msg}", flush=True)

        total_s = time.perf_counter() - t_start
        machine["loadavg_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        meta = {
            "started": started,
            "finished": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "total_s": total_s,
            "quick": a.quick,
            "repeats": repeats,
            "warmup": a.warmup,
            "cold": [wl for wl in workloads if warmup_for(wl) != a.warmup],
            "run_timeout_s": timeout,
            "engines": engines,
            "workloads": workloads,
            "machine": machine,
            "versions": versions,
            "rukong": {"commit": commit, "build": build_note,
                       "binaries_sha256": {n: hashlib.sha256((bindir / n).read_bytes())
                                           .hexdigest()[:16] for n in ("rukong", "rukong-e2e")}},
            "peer_startup_s": {e: statistics.median(v) for e, v in startup.items() if v},
            "linalg": linalg_info,
        }
        summary = summarize(results, workloads, engines)
        doc = {"meta": meta, "summary": summary, "cells": results}
        (out_dir / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
        md = markdown(meta, summary, workloads, engines)
        (out_dir / "results.md").write_text(md)
        print()
        print(md)
        print(f"wrote {out_dir / 'results.md'} and {out_dir / 'results.json'} "
              f"({total_s / 60:.1f} min)")
        failed = [(wl, e) for wl in workloads for e in summary[wl]
                  if summary[wl][e]["errors"]]
        if failed:
            print(f"FAILED cells: {failed}", file=sys.stderr)
            sys.exit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

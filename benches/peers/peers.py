"""One benchmark cell on a peer engine (Dask distributed or Ray), in its own process.

    python peers.py --engine dask|ray --workload tree:8192 [--warmup 1] [--repeats 1]
                    [--timeout S] --json FILE

Starts the engine's local cluster (not timed), runs the workload `warmup` untimed times and
then `repeats` timed times, checks every run's result against the workload's closed form,
shuts the cluster down and writes one JSON object to FILE (rewritten after every run, so a
cell that is killed from outside still leaves what it measured).

`run.py` starts this script as a child in its own process group, one cell at a time, so
that no engine's daemons stay behind (idle) while another engine is being measured.

Workloads (the shapes of rukong's `client/src/workloads.rs`, same tasks, same values):
  tree:N     leaves l_i = const(i), summed pairwise by add up a binary tree (an odd one out
             is carried up unchanged); 2N-1 tasks; root = N(N-1)/2
  fanout:W   src = const(1); m_i = add(src, i); sink = add(m_0..m_{W-1}); W+2 tasks;
             sink = W + W(W-1)/2
  chain:L    c_0 = const(0); c_i = add(c_{i-1}, 1); L tasks; c_{L-1} = L-1
  sleep:WxMS s_i = sleep(i, MS) (sleeps MS ms, returns i); sink = add(s_0..s_{W-1});
             W+1 tasks; sink = W(W-1)/2

Timing: from graph submission to the result on the driver.
  dask: the `dask.delayed` graph is built before the clock starts (its build time is
        reported separately as build_ms); the clock covers `client.compute(...)` (graph
        serialisation, shipping to the scheduler, scheduling, execution) and `.result()`.
  ray:  Ray has no separate graph: building *is* submitting (each `.remote()` call submits
        a task), so the clock starts before the first `.remote()` and stops when `ray.get`
        on the root/sink returns.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import time
import traceback


# --------------------------------------------------------------------------- workloads


def parse_workload(text: str) -> tuple[str, tuple[int, ...]]:
    kind, _, arg = text.partition(":")
    if kind == "tree":
        return kind, (int(arg),)
    if kind == "fanout":
        return kind, (int(arg),)
    if kind == "chain":
        return kind, (int(arg),)
    if kind == "sleep":
        w, _, ms = arg.partition("x")
        return kind, (int(w), int(ms))
    if kind == "bigdata":
        p, _, mib = arg.partition("x")
        return kind, (int(p), int(mib))
    raise SystemExit(f"unknown workload {text!r} "
                     "(tree:N | fanout:W | chain:L | sleep:WxMS | bigdata:PxMIB)")


def task_count(kind: str, args: tuple[int, ...]) -> int:
    if kind == "tree":
        return max(2 * args[0] - 1, 1)
    if kind == "fanout":
        return args[0] + 2
    if kind == "chain":
        return max(args[0], 1)
    if kind in ("sleep", "bigdata"):
        return args[0] + 1
    raise ValueError(kind)


def expected(kind: str, args: tuple[int, ...]) -> int:
    if kind == "tree":
        n = args[0]
        return n * (n - 1) // 2
    if kind == "fanout":
        w = args[0]
        return w + w * (w - 1) // 2
    if kind == "chain":
        return args[0] - 1
    if kind == "sleep":
        w = args[0]
        return w * (w - 1) // 2
    if kind == "bigdata":
        p, mib = args
        h = hashlib.sha256()
        for i in range(p):
            h.update(blob(mib << 20, i))
        return h.hexdigest()
    raise ValueError(kind)


# The task functions. Module level so that both engines can ship them to worker processes
# (cloudpickle pickles `__main__` functions by value).


def const(x):
    return x


def add(*xs):
    return sum(xs)


def nap(i, ms):
    time.sleep(ms / 1000.0)
    return i


def blob(n, seed):
    """rukong's `blob` built-in: byte i is (31 i + seed) mod 256."""
    period = bytes((31 * i + seed) % 256 for i in range(256))
    return (period * (n // 256 + 1))[:n]


def digest(*parts):
    """rukong's `sha256` built-in over its inputs in order, as hex."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()


def pairwise(leaves, combine):
    """Pairwise reduction, carrying an odd one out up unchanged (as rukong does)."""
    level = list(leaves)
    while len(level) > 1:
        nxt = [combine(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# --------------------------------------------------------------------------- dask


class DaskEngine:
    """`LocalCluster(n_workers=2, threads_per_worker=1, processes=True)` and a `Client`.

    Graph form: `dask.delayed` (one Delayed per task), submitted with
    `client.compute(root, optimize_graph=False)`: with `optimize_graph=False` Dask neither
    culls nor fuses, so every node is one scheduler task, as in rukong and Ray (delayed
    graphs are not fused by default anyway; all nodes are needed, so culling is a no-op).
    A low-level graph dict ran no faster in a side-by-side trial on this machine and is
    converted to the same task objects by the client, so the idiomatic form is used.
    """

    name = "dask"

    def __init__(self):
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self.client = Client(self.cluster)
        self.client.wait_for_workers(2)

    def build(self, kind, args):
        from dask import delayed

        dconst, dadd, dnap = delayed(const), delayed(add), delayed(nap)
        if kind == "tree":
            return pairwise((dconst(i) for i in range(args[0])), dadd)
        if kind == "fanout":
            src = dconst(1)
            return dadd(*[dadd(src, i) for i in range(args[0])])
        if kind == "chain":
            c = dconst(0)
            for _ in range(1, args[0]):
                c = dadd(c, 1)
            return c
        if kind == "sleep":
            w, ms = args
            return dadd(*[dnap(i, ms) for i in range(w)])
        if kind == "bigdata":
            p, mib = args
            dblob, ddigest = delayed(blob), delayed(digest)
            return ddigest(*[dblob(mib << 20, i) for i in range(p)])
        raise ValueError(kind)

    def run(self, kind, args, timeout):
        t_build = time.perf_counter()
        root = self.build(kind, args)
        t0 = time.perf_counter()
        fut = self.client.compute(root, optimize_graph=False)
        try:
            value = fut.result(timeout=timeout)
        except TimeoutError:
            raise RunTimeout(time.perf_counter() - t0) from None
        t1 = time.perf_counter()
        del fut, root
        return value, (t1 - t0) * 1e3, (t0 - t_build) * 1e3

    def close(self):
        self.client.close()
        self.cluster.close()

    @staticmethod
    def versions():
        import dask
        import distributed

        return {"dask": dask.__version__, "distributed": distributed.__version__}


# --------------------------------------------------------------------------- ray


class RayEngine:
    """`ray.init(num_cpus=2)`; every task is a `@ray.remote` function call.

    tree: leaves `const.remote(i)`, then pairwise `add.remote(a, b)` on the ObjectRefs up to
    the root; fanout: `src = const.remote(1)`, `m_i = add.remote(src, i)`,
    `sink = add.remote(*ms)`; chain: `c = add.remote(c, 1)` in a loop; sleep:
    `nap.remote(i, ms)` and an `add.remote(*naps)` sink. In every case the driver submits
    the whole graph without waiting and then calls `ray.get` on the root/sink only.
    """

    name = "ray"

    def __init__(self):
        import ray

        self.ray = ray
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
        self.rconst = ray.remote(const)
        self.radd = ray.remote(add)
        self.rnap = ray.remote(nap)
        self.rblob = ray.remote(blob)
        self.rdigest = ray.remote(digest)

    def submit(self, kind, args):
        rconst, radd, rnap = self.rconst, self.radd, self.rnap
        if kind == "tree":
            return pairwise((rconst.remote(i) for i in range(args[0])), radd.remote)
        if kind == "fanout":
            src = rconst.remote(1)
            return radd.remote(*[radd.remote(src, i) for i in range(args[0])])
        if kind == "chain":
            c = rconst.remote(0)
            for _ in range(1, args[0]):
                c = radd.remote(c, 1)
            return c
        if kind == "sleep":
            w, ms = args
            return radd.remote(*[rnap.remote(i, ms) for i in range(w)])
        if kind == "bigdata":
            p, mib = args
            return self.rdigest.remote(*[self.rblob.remote(mib << 20, i) for i in range(p)])
        raise ValueError(kind)

    def run(self, kind, args, timeout):
        ray = self.ray
        t0 = time.perf_counter()
        root = self.submit(kind, args)
        try:
            value = ray.get(root, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise RunTimeout(time.perf_counter() - t0) from None
        t1 = time.perf_counter()
        del root
        return value, (t1 - t0) * 1e3, 0.0

    def close(self):
        self.ray.shutdown()

    @staticmethod
    def versions():
        import ray

        return {"ray": ray.__version__}


class RunTimeout(Exception):
    def __init__(self, after_s):
        super().__init__(f"timed out after {after_s:.1f} s")
        self.after_s = after_s


ENGINES = {"dask": DaskEngine, "ray": RayEngine}


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=sorted(ENGINES), required=True)
    ap.add_argument("--workload", required=True)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()

    kind, args = parse_workload(a.workload)
    want = expected(kind, args)
    cls = ENGINES[a.engine]
    doc = {
        "engine": a.engine,
        "workload": a.workload,
        "tasks": task_count(kind, args),
        "expected": want,
        "versions": cls.versions(),
        "python": platform.python_version(),
        "warmup": a.warmup,
        "repeats": a.repeats,
        "timeout_s": a.timeout,
        "startup_s": None,
        "warmup_ms": [],
        "samples": [],
        "timed_out": False,
        "error": None,
    }

    def save():
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, a.json)

    save()
    engine = None
    try:
        t = time.perf_counter()
        engine = cls()
        doc["startup_s"] = time.perf_counter() - t
        save()
        for i in range(a.warmup + a.repeats):
            warm = i < a.warmup
            value, wall_ms, build_ms = engine.run(kind, args, a.timeout)
            if value != want:
                raise AssertionError(
                    f"{a.engine} {a.workload}: got {value!r}, expected {want!r}"
                )
            if warm:
                doc["warmup_ms"].append(wall_ms)
            else:
                doc["samples"].append(
                    {"wall_ms": wall_ms, "build_ms": build_ms, "checked": True,
                     "loadavg_1m": os.getloadavg()[0]}
                )
            save()
    except RunTimeout as e:
        doc["timed_out"] = True
        doc["error"] = str(e)
        save()
        # The engine is still busy with the abandoned graph: do not wait for a clean
        # shutdown; run.py kills this cell's process group.
        sys.stdout.flush()
        os._exit(3)
    except BaseException as e:  # noqa: BLE001 - report any failure in the JSON
        doc["error"] = f"{type(e).__name__}: {e}"
        doc["traceback"] = traceback.format_exc()
        save()
        sys.stdout.flush()
        os._exit(2)
    try:
        engine.close()
    except Exception:  # noqa: BLE001 - results are saved; shutdown noise is irrelevant
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

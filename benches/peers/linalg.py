"""Blocked linear algebra on Dask (dask.array) and on one node (NumPy): one cell in its own
process, plus the references that `run.py` checks rukong's outputs against.

    python linalg.py --engine dask|numpy --workload gemm:4096:512 --ref DIR
                     [--warmup 1] [--repeats 1] [--timeout S] --json FILE
    python linalg.py --reference gemm:4096:512 --ref DIR      # writes DIR/ref-*.{npy,json}
    python linalg.py --digests                                # sha256 of a few blocks (JSON)

Workloads (rukong's `client/src/linalg_workloads.rs`, `rukong gen gemm|tsqr`):
  gemm:N:BLOCK          C = A·B, A and B the n×n pseudo-random matrices with seeds 1 and 2,
                        cut into BLOCK×BLOCK tiles (g = ⌈N/BLOCK⌉ per side). rukong's
                        outputs are the Frobenius norm of every C block plus the block
                        C[0,0]; Dask computes the same outputs.
  tsqr:ROWS:COLS:BR     the singular values of the ROWS×COLS pseudo-random matrix (seed 3),
                        in row blocks of BR rows (one column block).

The entries are rukong's (`executor/src/functions/linalg.rs`): entry(seed, i, j) =
(splitmix64(splitmix64(splitmix64(seed) ^ i) ^ j) >> 11) · 2^-52 − 1, reproduced bit for
bit by `block()` below (run.py compares `--digests` with rukong's own `block` outputs).

Engines:
  dask   LocalCluster(n_workers=2, threads_per_worker=1, processes=True) and a Client.
         Inputs are generated *inside the graph*, like rukong's `block` tasks:
         `da.map_blocks(block, chunks=<rukong's tiles>)`, each chunk computing its own tile
         from its position (block_info). GEMM: `C = A @ B`, then the per-block norms
         (`C.map_blocks(frobenius)`) and `C.blocks[0, 0]`, computed together. TSQR:
         `da.linalg.svd(A)` on the tall-skinny array (dask's TSQR), singular values only
         (the graph is culled to what they need). Default graph optimisation. The collection
         is built before the clock (build_ms); the clock covers `client.compute(...)` and
         gathering the results. The warm-up run of a GEMM cell gathers the whole C instead and
         checks it entry by entry against the reference: ‖C − C_ref‖_F / ‖C_ref‖_F < 1e-10.
         Timed runs check every block norm and C[0,0] (relative error < 1e-10); TSQR checks
         every singular value (relative error < 1e-8).
  numpy  the single-node kernel on the whole matrices, generated first (not timed,
         reported as gen_ms): `A @ B` (OpenBLAS, all cores) or
         `np.linalg.svd(A, compute_uv=False)`.

References (`--reference`): NumPy on the whole matrices, with all cores: gemm writes
ref-gemm-N.npy (C) and ref-gemm-N-BLOCK.json (block norms); tsqr writes
ref-tsqr-ROWS-COLS.json (singular values).
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

import numpy as np

GEMM_SEED_A = 1
GEMM_SEED_B = 2
TSQR_SEED = 3
GEMM_REL_TOL = 1e-10
TSQR_REL_TOL = 1e-8

# --------------------------------------------------------------------------- workloads


def parse_workload(text: str):
    kind, _, arg = text.partition(":")
    p = [int(x) for x in arg.split(":")] if arg else []
    if kind == "gemm" and len(p) == 2 and min(p) >= 1:
        return kind, tuple(p)
    if kind == "tsqr" and len(p) == 3 and min(p) >= 1:
        return kind, tuple(p)
    raise SystemExit(f"unknown linear-algebra workload {text!r} "
                     "(gemm:N:BLOCK | tsqr:ROWS:COLS:BLOCK_ROWS)")


def tiles(n: int, block: int):
    """(start, len) of each tile along a dimension of n cut into blocks (rukong's tiles)."""
    return [(t * block, min(block, n - t * block)) for t in range(-(-n // block))]


def rukong_tasks(kind, args) -> int:
    if kind == "gemm":
        g = -(-args[0] // args[1])
        return g ** 3 + 4 * g * g
    return 4 * max(-(-args[0] // args[2]), 1) - 1


# --------------------------------------------------------------------------- the entries

_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))


def _splitmix64_(z, t):
    """splitmix64 in place on a uint64 array (wrapping arithmetic); t: scratch, same shape."""
    z += _G
    np.right_shift(z, _S30, out=t)
    z ^= t
    z *= _M1
    np.right_shift(z, _S27, out=t)
    z ^= t
    z *= _M2
    np.right_shift(z, _S31, out=t)
    z ^= t
    return z


def block(rows: int, cols: int, seed: int, row0: int, col0: int) -> np.ndarray:
    """The rows×cols block at (row0, col0) of the global pseudo-random matrix `seed`: the
    same float64 values, bit for bit, as rukong's `block(rows, cols, seed, row0, col0)`."""
    s = np.array([seed % 2**64], dtype=np.uint64)
    _splitmix64_(s, np.empty_like(s))
    key = s ^ (np.uint64(row0) + np.arange(rows, dtype=np.uint64))
    _splitmix64_(key, np.empty_like(key))
    z = key[:, None] ^ (np.uint64(col0) + np.arange(cols, dtype=np.uint64))[None, :]
    _splitmix64_(z, np.empty_like(z))
    z >>= _S11
    out = z.astype(np.float64)
    out *= 2.0 ** -52
    out -= 1.0
    return out


def digest(m: np.ndarray) -> str:
    """sha256 of the matrix value's f64le bytes (what `rukong run --json` prints)."""
    return hashlib.sha256(np.ascontiguousarray(m, dtype="<f8").tobytes()).hexdigest()


# Blocks whose digests run.py compares with rukong's own `block` task outputs.
DIGEST_BLOCKS = [(4, 5, 1, 3, 7), (64, 64, 2, 512, 1024), (7, 100, 3, 199_993, 0),
                 (3, 3, 2**63 + 5, 2**40, 2**33)]


def frobenius_block(b):
    """The Frobenius norm of one chunk, as a 1×1 chunk (for map_blocks)."""
    return np.array([[np.sqrt(np.sum(b * b))]])


def gen_chunk(seed, block_info=None):
    """map_blocks generator: this chunk's tile of the global matrix `seed`."""
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    return block(r1 - r0, c1 - c0, seed, r0, c0)


# --------------------------------------------------------------------------- references


def ref_paths(ref_dir, kind, args):
    if kind == "gemm":
        n, b = args
        return (os.path.join(ref_dir, f"ref-gemm-{n}.npy"),
                os.path.join(ref_dir, f"ref-gemm-{n}-{b}.json"))
    rows, cols, _ = args
    return None, os.path.join(ref_dir, f"ref-tsqr-{rows}-{cols}.json")


def block_norms(c: np.ndarray, b: int):
    t = tiles(c.shape[0], b)
    return [[float(np.sqrt(np.sum(c[r0:r0 + rn, c0:c0 + cn] ** 2))) for (c0, cn) in t]
            for (r0, rn) in t]


def write_reference(ref_dir, text):
    kind, args = parse_workload(text)
    npy, js = ref_paths(ref_dir, kind, args)
    if os.path.exists(js):
        return
    t = time.perf_counter()
    if kind == "gemm":
        n, b = args
        if os.path.exists(npy):
            c = np.load(npy)
        else:
            a = block(n, n, GEMM_SEED_A, 0, 0)
            bb = block(n, n, GEMM_SEED_B, 0, 0)
            c = a @ bb
            del a, bb
            np.save(npy, c)
        doc = {"workload": text, "norms": block_norms(c, b)}
    else:
        rows, cols, _ = args
        a = block(rows, cols, TSQR_SEED, 0, 0)
        doc = {"workload": text, "sv": np.linalg.svd(a, compute_uv=False).tolist()}
    doc["seconds"] = time.perf_counter() - t
    with open(js, "w") as f:
        json.dump(doc, f)


def rel_err(got, want) -> float:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape}, expected {want.shape}")
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def check_norms(got, want_norms) -> float:
    """Largest relative error of block norms (lists of lists / arrays), < GEMM_REL_TOL."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want_norms, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"norms shape {got.shape}, expected {want.shape}")
    e = float(np.max(np.abs(got - want) / np.maximum(want, 1e-300)))
    if not e < GEMM_REL_TOL:
        raise AssertionError(f"block norm relative error {e:e} (bound {GEMM_REL_TOL:e})")
    return e


def check_sv(got, want) -> float:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{got.shape} singular values, expected {want.shape}")
    e = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))
    if not e < TSQR_REL_TOL:
        raise AssertionError(f"singular value relative error {e:e} (bound {TSQR_REL_TOL:e})")
    return e


class Reference:
    def __init__(self, ref_dir, kind, args):
        self.kind, self.args = kind, args
        npy, js = ref_paths(ref_dir, kind, args)
        with open(js) as f:
            self.doc = json.load(f)
        self.npy = npy
        self._c = None

    @property
    def c(self):
        if self._c is None:
            self._c = np.load(self.npy, mmap_mode="r")
        return self._c


# --------------------------------------------------------------------------- engines


class RunTimeout(Exception):
    def __init__(self, after_s):
        super().__init__(f"timed out after {after_s:.1f} s")


class DaskEngine:
    def __init__(self):
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    dashboard_address=None, silence_logs=logging.ERROR)
        self.client = Client(self.cluster)
        self.client.wait_for_workers(2)
        self.runs = 0

    def build(self, kind, args, full):
        import dask.array as da

        # Fresh key names every run, so that nothing of an earlier run (the warm-up) can be
        # reused by the scheduler.
        self.runs += 1
        tag = f"{os.getpid()}-{self.runs}"

        if kind == "gemm":
            n, b = args
            ch = tuple(l for _, l in tiles(n, b))
            a = da.map_blocks(gen_chunk, GEMM_SEED_A, chunks=(ch, ch), dtype=np.float64,
                              meta=np.empty((0, 0)), name=f"block-a-{tag}")
            bb = da.map_blocks(gen_chunk, GEMM_SEED_B, chunks=(ch, ch), dtype=np.float64,
                               meta=np.empty((0, 0)), name=f"block-b-{tag}")
            c = a @ bb
            if full:
                return [c]
            g = len(ch)
            norms = c.map_blocks(frobenius_block, chunks=((1,) * g, (1,) * g),
                                 dtype=np.float64)
            return [norms, c.blocks[0, 0]]
        rows, cols, br = args
        a = da.map_blocks(gen_chunk, TSQR_SEED,
                          chunks=(tuple(l for _, l in tiles(rows, br)), (cols,)),
                          dtype=np.float64, meta=np.empty((0, 0)), name=f"block-{tag}")
        _, s, _ = da.linalg.svd(a)
        return [s]

    def run(self, kind, args, ref, timeout, warm):
        from distributed import wait

        full = kind == "gemm" and warm
        tb = time.perf_counter()
        colls = self.build(kind, args, full)
        t0 = time.perf_counter()
        futs = self.client.compute(colls)
        try:
            wait(futs, timeout=timeout)
        except TimeoutError:
            raise RunTimeout(time.perf_counter() - t0) from None
        vals = self.client.gather(futs)
        t1 = time.perf_counter()
        del futs
        info = {"build_ms": (t0 - tb) * 1e3, "graph_tasks": graph_tasks(colls)}
        if kind == "gemm":
            if full:
                info["full_rel_err"] = e = rel_err(vals[0], ref.c)
                if not e < GEMM_REL_TOL:
                    raise AssertionError(f"‖C − C_ref‖/‖C_ref‖ = {e:e}")
            else:
                info["norm_rel_err"] = check_norms(vals[0], ref.doc["norms"])
                b = args[1]
                c00 = ref.c[:min(b, args[0]), :min(b, args[0])]
                info["sample_rel_err"] = e = rel_err(vals[1], c00)
                if not e < GEMM_REL_TOL:
                    raise AssertionError(f"C[0,0] relative error {e:e}")
        else:
            info["sv_rel_err"] = check_sv(vals[0], ref.doc["sv"])
        return (t1 - t0) * 1e3, info

    def close(self):
        self.client.close()
        self.cluster.close()

    @staticmethod
    def versions():
        import dask
        import distributed

        return {"dask": dask.__version__, "distributed": distributed.__version__,
                "numpy": np.__version__}


def graph_tasks(colls):
    """Tasks in the collections' graph as built (before the scheduler's optimisation)."""
    try:
        keys = set()
        for c in colls:
            keys.update(c.__dask_graph__().keys())
        return len(keys)
    except Exception:  # noqa: BLE001 - informational only
        return None


class NumpyEngine:
    """The single-node kernel, all cores (OpenBLAS threads), on the whole matrices."""

    def __init__(self):
        self.inputs = None

    def run(self, kind, args, ref, timeout, warm):
        info = {}
        if self.inputs is None:
            t = time.perf_counter()
            if kind == "gemm":
                n = args[0]
                self.inputs = (block(n, n, GEMM_SEED_A, 0, 0), block(n, n, GEMM_SEED_B, 0, 0))
            else:
                rows, cols, _ = args
                self.inputs = (block(rows, cols, TSQR_SEED, 0, 0),)
            info["gen_ms"] = (time.perf_counter() - t) * 1e3
        t0 = time.perf_counter()
        if kind == "gemm":
            out = self.inputs[0] @ self.inputs[1]
        else:
            out = np.linalg.svd(self.inputs[0], compute_uv=False)
        t1 = time.perf_counter()
        if kind == "gemm":
            info["full_rel_err"] = e = rel_err(out, ref.c)
            if not e < GEMM_REL_TOL:
                raise AssertionError(f"‖C − C_ref‖/‖C_ref‖ = {e:e}")
        else:
            info["sv_rel_err"] = check_sv(out, ref.doc["sv"])
        return (t1 - t0) * 1e3, info

    def close(self):
        pass

    @staticmethod
    def versions():
        return {"numpy": np.__version__, "blas": blas_name()}


def blas_name() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        b = cfg["Build Dependencies"]["blas"]
        return f"{b.get('name')} {b.get('version')}"
    except Exception:  # noqa: BLE001
        return "unknown"


ENGINES = {"dask": DaskEngine, "numpy": NumpyEngine}


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=sorted(ENGINES))
    ap.add_argument("--workload")
    ap.add_argument("--ref", help="directory of the reference files")
    ap.add_argument("--reference", metavar="WORKLOAD", help="write the reference and exit")
    ap.add_argument("--digests", action="store_true",
                    help="print the sha256 of DIGEST_BLOCKS as JSON and exit")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    ap.add_argument("--json")
    a = ap.parse_args()

    if a.digests:
        print(json.dumps([{"args": list(p), "sha256": digest(block(*p))}
                          for p in DIGEST_BLOCKS]))
        return
    if a.reference:
        write_reference(a.ref, a.reference)
        return
    if not (a.engine and a.workload and a.ref and a.json):
        ap.error("--engine, --workload, --ref and --json are required")

    kind, args = parse_workload(a.workload)
    cls = ENGINES[a.engine]
    doc = {"engine": a.engine, "workload": a.workload, "tasks": rukong_tasks(kind, args),
           "versions": cls.versions(), "python": platform.python_version(),
           "warmup": a.warmup, "repeats": a.repeats, "timeout_s": a.timeout,
           "startup_s": None, "warmup_ms": [], "warmup_info": [], "samples": [],
           "timed_out": False, "error": None}

    def save():
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, a.json)

    save()
    try:
        ref = Reference(a.ref, kind, args)
        t = time.perf_counter()
        engine = cls()
        doc["startup_s"] = time.perf_counter() - t
        save()
        for i in range(a.warmup + a.repeats):
            warm = i < a.warmup
            wall_ms, info = engine.run(kind, args, ref, a.timeout, warm)
            if warm:
                doc["warmup_ms"].append(wall_ms)
                doc["warmup_info"].append(info)
            else:
                doc["samples"].append({"wall_ms": wall_ms, "checked": True,
                                       "loadavg_1m": os.getloadavg()[0], **info})
            save()
    except RunTimeout as e:
        doc["timed_out"] = True
        doc["error"] = str(e)
        save()
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
    except Exception:  # noqa: BLE001
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

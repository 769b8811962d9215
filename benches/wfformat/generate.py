#!/usr/bin/env python3
"""Generates the WfFormat test instances in client/tests/data/wfformat/.

Synthetic instances from the WfCommons recipes (WfChef) and `WorkflowGenerator`. The JSON
is the `wfcommons` package's own (`Workflow.generate_json`, what `write_json` writes), so it
is in the format version that package writes (WfFormat 1.6 for wfcommons 1.6); this script
only lays it out with one task or file per line.

    python3 -m venv /tmp/wfvenv && /tmp/wfvenv/bin/pip install 'wfcommons==1.6'
    /tmp/wfvenv/bin/python benches/wfformat/generate.py [OUT_DIR]

OUT_DIR defaults to client/tests/data/wfformat (relative to the repository root). The
output is deterministic for a given wfcommons version: `random` and `numpy.random` are
seeded before each instance, uuid4 (file names) is replaced by a seeded one, and the
wall-clock and user fields (createdAt, executedAt, author) are pinned.
"""

import json
import pathlib
import random
import sys
import uuid

import numpy as np
import wfcommons
from wfcommons import WorkflowGenerator
import wfcommons.wfchef.duplicate
import wfcommons.wfgen.abstract_recipe
from wfcommons.wfchef.recipes import EpigenomicsRecipe, MontageRecipe

PINNED_WFCOMMONS = "1.6"
SEED = 20240501
PINNED_TIME = "2024-05-01T00:00:00+00:00"

# (file name, recipe class, upper bound on the number of tasks)
INSTANCES = [
    ("montage-small.json", MontageRecipe, 60),
    ("epigenomics-small.json", EpigenomicsRecipe, 250),
    ("montage-1000.json", MontageRecipe, 1000),
]


class SeededUuid4:
    """uuid4 from a seeded generator: wfcommons names files (and duplicated graph nodes)
    with uuid.uuid4(), which reads os.urandom."""

    def __init__(self) -> None:
        self.rng = random.Random()

    def seed(self, seed: int) -> None:
        self.rng.seed(seed)

    def __call__(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


UUID4 = SeededUuid4()
wfcommons.wfgen.abstract_recipe.uuid.uuid4 = UUID4  # the module's `uuid`, i.e. the stdlib one
wfcommons.wfchef.duplicate.uuid4 = UUID4


def main() -> None:
    if wfcommons.__version__ != PINNED_WFCOMMONS:
        sys.exit(f"wfcommons {wfcommons.__version__} found, {PINNED_WFCOMMONS} expected "
                 f"(pip install 'wfcommons=={PINNED_WFCOMMONS}')")
    root = pathlib.Path(__file__).resolve().parents[2]
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "client/tests/data/wfformat"
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (file_name, recipe, num_tasks) in enumerate(INSTANCES):
        random.seed(SEED + i)
        np.random.seed(SEED + i)
        UUID4.seed(SEED + i)
        workflow = WorkflowGenerator(recipe.from_num_tasks(num_tasks)).build_workflow(
            file_name.removesuffix(".json"))
        workflow.generate_json()
        instance = workflow.workflow_json
        # Pin the wall-clock timestamps so that reruns give byte-identical files.
        instance["createdAt"] = PINNED_TIME
        instance["author"] = {"name": "rukong benches/wfformat/generate.py",
                              "email": "support@wfcommons.org"}
        if "execution" in instance["workflow"]:
            instance["workflow"]["execution"]["executedAt"] = PINNED_TIME
        path = out_dir / file_name
        # Compact but line-broken: one task or file per line keeps each file well under 1 MB.
        with open(path, "w") as f:
            f.write(dump(instance))
        tasks = instance["workflow"]["specification"]["tasks"]
        edges = sum(len(t.get("parents", [])) for t in tasks)
        print(f"{path}: {len(tasks)} tasks, {edges} edges, {path.stat().st_size} bytes")


def dump(instance) -> str:
    """JSON with one array element per line for the long arrays (tasks, files)."""
    def compact(v):
        return json.dumps(v, separators=(",", ":"), sort_keys=False)

    lines = ["{"]
    items = list(instance.items())
    for k, (key, value) in enumerate(items):
        comma = "," if k + 1 < len(items) else ""
        if key == "workflow":
            lines.append(f'"workflow":{{')
            sections = list(value.items())
            for s, (skey, svalue) in enumerate(sections):
                scomma = "," if s + 1 < len(sections) else ""
                lines.append(f'"{skey}":{{')
                fields = list(svalue.items())
                for f, (fkey, fvalue) in enumerate(fields):
                    fcomma = "," if f + 1 < len(fields) else ""
                    if isinstance(fvalue, list):
                        lines.append(f'"{fkey}":[')
                        lines.append(",\n".join(compact(e) for e in fvalue))
                        lines.append(f"]{fcomma}")
                    else:
                        lines.append(f'"{fkey}":{compact(fvalue)}{fcomma}')
                lines.append(f"}}{scomma}")
            lines.append(f"}}{comma}")
        else:
            lines.append(f'"{key}":{compact(value)}{comma}')
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

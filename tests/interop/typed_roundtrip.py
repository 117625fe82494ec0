"""Typed C++ trees and Python Orbax.

usage: typed_roundtrip.py TYPED_TOOL WORK_DIR

1. A C++ struct (nested structs, a map, a list of structs, a scalar, a string) saved by cairn restores
   in Python Orbax as the nested dicts and lists with the same names and values.
2. The same structure written by Python Orbax restores strictly into the C++ struct.
"""
import os, shutil, subprocess, sys

import numpy as np
import orbax.checkpoint as ocp

tool, work = sys.argv[1], os.path.abspath(sys.argv[2])
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = []


def ramp(shape, offset):
    return (np.arange(int(np.prod(shape)), dtype=np.float32) + np.float32(offset)).reshape(shape)


def expected(offset):
    return {
        "encoder": {"w": ramp((8, 4), offset), "b": ramp((4,), offset + 100)},
        "heads": {"cls": ramp((4, 2), offset + 200), "reg": ramp((4, 1), offset + 300)},
        "layers": [{"w": ramp((4, 4), offset + 400), "b": ramp((4,), offset + 500)},
                   {"w": ramp((4, 4), offset + 600), "b": ramp((4,), offset + 700)}],
        "step": 1200 if offset == 0 else 7,
        "name": "cairn" if offset == 0 else "python",
    }


def same(a, b, path=""):
    if isinstance(b, dict):
        if not isinstance(a, dict) or sorted(a) != sorted(b):
            failures.append(f"{path}: expected keys {sorted(b)}, got {type(a).__name__} {sorted(a) if isinstance(a, dict) else a}")
            return
        for k in b:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(b, list):
        if not isinstance(a, list) or len(a) != len(b):
            failures.append(f"{path}: expected a list of {len(b)}, got {type(a).__name__}")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}.{i}")
    elif isinstance(b, np.ndarray):
        a = np.asarray(a)
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            failures.append(f"{path}: array differs")
    elif a != b:
        failures.append(f"{path}: {a!r} != {b!r}")


root = os.path.join(work, "cairn")
subprocess.run([tool, "write", root], check=True)
got = ocp.PyTreeCheckpointer().restore(os.path.join(root, "1", "default"))
same(got, expected(0))
print(f"1. C++ struct saved by cairn -> Python: nested dicts/lists with the same names and values ({len(failures)} differences)")

py = os.path.join(work, "python")
ocp.PyTreeCheckpointer().save(py, expected(0.5))
r = subprocess.run([tool, "read", py], capture_output=True, text=True)
print("2.", r.stdout.strip() or r.stderr.strip())
if r.returncode != 0:
    failures.append(f"Python -> C++ struct: {r.stdout} {r.stderr}")

shutil.rmtree(work, ignore_errors=True)
for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)

# SPDX-License-Identifier: Apache-2.0
"""bench/tree.py: Python Orbax saving and restoring the many-leaf trees that cairn_bench_tree saves.

usage: tree.py --dir DIR [--trees a:10000:1024,b:100000:16] [--python-leaves N] [--skip-after-s S]
               [--budget-s B] [--leaves-per-layer K]

Each tree is a nested dict of float32 numpy arrays, {"layer_0000": {"w_00": ..., ...}, ...}, K leaves
per layer (default 16), leaf i at layer_{i // K}/w_{i % K}: the same names, shapes and dtype as the
C++ side, and values of the same kind (N(0, 0.02) float32 weights; not the same bytes). Each tree is saved with
ocp.PyTreeCheckpointer() (Orbax V0 defaults: OCDBT, zarr v2, zstd), its page cache is dropped, and it
is restored with PyTreeCheckpointer().restore(path) (numpy arrays back, from the saved metadata) and
compared bit for bit. Times are wall-clock seconds of the synchronous calls.

Budget: --python-leaves N caps every tree at N leaves (then the per-leaf figures still compare, and
the JSON says how many leaves were used). Once the save + restore of one tree took more than
--skip-after-s seconds (default 60), the remaining trees are skipped and said to be so. Otherwise a
tree whose time, projected from the previous tree's seconds per leaf (times (leaves ratio)^0.4: Orbax
slows per leaf as trees grow), would overrun what is left of --budget-s (default 240) is scaled down
to the leaves that fit (at least 1,000), and said to be so.
Prints one JSON line at the end: {"python_ok":1, "<tree>_save_s":..., "<tree>_restore_s":...,
"<tree>_leaves":..., "<tree>_skipped":"why" (only when skipped), ...}.
"""
import argparse, json, os, shutil, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
ap.add_argument("--trees", default="a:10000:1024,b:100000:16", help="name:leaves:float32 elements per leaf, ...")
ap.add_argument("--python-leaves", type=int, default=0, help="cap on leaves per tree (0: no cap)")
ap.add_argument("--skip-after-s", type=float, default=60.0)
ap.add_argument("--budget-s", type=float, default=240.0, help="total seconds for all trees' save + restore")
ap.add_argument("--leaves-per-layer", type=int, default=16)
args = ap.parse_args()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_util import drop_cache  # noqa: E402

import numpy as np
import orbax.checkpoint as ocp
import jax

out = {"python_ok": 1, "orbax_version": ocp.__version__, "jax_version": jax.__version__,
       "numpy_version": np.__version__}


def make_tree(leaves, elements, seed):
    rng = np.random.default_rng(seed)
    flat = (rng.standard_normal(leaves * elements, dtype=np.float32) * np.float32(0.02)).astype(np.float32)
    tree = {}
    k = args.leaves_per_layer
    for i in range(leaves):
        layer = tree.setdefault(f"layer_{i // k:04d}", {})
        layer[f"w_{i % k:02d}"] = flat[i * elements:(i + 1) * elements].copy()
    return tree


def bit_exact(want, got):
    if sorted(want) != sorted(got):
        return False
    for layer, leaves in want.items():
        if sorted(leaves) != sorted(got[layer]):
            return False
        for name, a in leaves.items():
            b = np.asarray(got[layer][name])
            if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
                return False
    return True


os.makedirs(args.dir, exist_ok=True)
ok = True
stop_reason = None
spent = 0.0         # seconds of save + restore so far
per_leaf_s = None   # of the last tree
prev_leaves = 0     # of the last tree
for spec in [s for s in args.trees.split(",") if s]:
    name, leaves, elements = spec.split(":")
    leaves, elements = int(leaves), int(elements)
    if stop_reason:
        out[f"{name}_skipped"] = stop_reason
        print(f"tree.py: tree {name} skipped: {stop_reason}", file=sys.stderr, flush=True)
        continue
    used = min(leaves, args.python_leaves) if args.python_leaves > 0 else leaves
    # Orbax's time per leaf grows with the leaf count (restore of 100,000 leaves: ~4x the per-leaf time
    # of 10,000 here), so the projection from the previous tree scales by (leaves ratio)^0.4.
    growth = max(1.0, used / prev_leaves) ** 0.4 if prev_leaves else 1.0
    projected = used * per_leaf_s * growth if per_leaf_s is not None else 0.0
    if per_leaf_s is not None and projected > args.budget_s - spent:
        fit = max(1000, int((args.budget_s - spent) / (per_leaf_s * growth)))
        if fit < used:
            out[f"{name}_scaled"] = (f"projected {projected:.0f} s for {used} leaves exceeds the "
                                     f"{args.budget_s - spent:.0f} s left of the budget; ran {fit} leaves")
            print(f"tree.py: tree {name}: {out[name + '_scaled']}", file=sys.stderr, flush=True)
            used = fit
    t0 = time.perf_counter()
    tree = make_tree(used, elements, 20240601 + used)
    out[f"{name}_generate_s"] = round(time.perf_counter() - t0, 3)
    path = os.path.join(args.dir, "py_" + name)
    shutil.rmtree(path, ignore_errors=True)
    ckptr = ocp.PyTreeCheckpointer()
    t0 = time.perf_counter()
    ckptr.save(path, tree)
    save_s = time.perf_counter() - t0
    drop_cache(path)
    t0 = time.perf_counter()
    restored = ocp.PyTreeCheckpointer().restore(path)
    restore_s = time.perf_counter() - t0
    exact = bit_exact(tree, restored)
    ok = ok and exact
    out[f"{name}_leaves"] = used
    out[f"{name}_leaves_requested"] = leaves
    out[f"{name}_elements"] = elements
    out[f"{name}_save_s"] = round(save_s, 4)
    out[f"{name}_restore_s"] = round(restore_s, 4)
    out[f"{name}_bit_exact"] = int(exact)
    print(f"tree.py: tree {name}: {used} leaves of {elements} float32: save {save_s:.2f} s, restore {restore_s:.2f} s",
          file=sys.stderr, flush=True)
    del tree, restored
    spent += save_s + restore_s
    per_leaf_s = (save_s + restore_s) / used
    prev_leaves = used
    shutil.rmtree(path, ignore_errors=True)
    if save_s + restore_s > args.skip_after_s:
        stop_reason = (f"tree {name} took {save_s + restore_s:.1f} s in Python (> {args.skip_after_s:g} s budget); "
                       f"use --python-leaves to scale")

out["bit_exact"] = int(ok)
print(json.dumps(out, separators=(",", ":")), flush=True)
sys.exit(0 if ok else 1)

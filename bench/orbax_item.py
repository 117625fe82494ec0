# SPDX-License-Identifier: Apache-2.0
"""bench/orbax_item.py: Python Orbax saving and restoring the tree that cairn_bench_orbax_item saves.

usage: orbax_item.py --dir DIR [--arrays N] [--array-mib M] [--variants v0,v1]

The tree is {"params": {"layer_00": ..., ...}}: N float32 jax.Arrays of M MiB each (shape
[64*M, 4096]: [4096, 4096] for 64 MiB), drawn once as N(0, 0.02) and varied per array
by a rotation and random sign flips (the same recipe as the C++ side; only the shapes and the value
distribution match, not the bytes). Two variants, each saved, its page cache dropped, then restored:
  v0: ocp.StandardCheckpointer (zarr v2, OCDBT, zstd level 1: Orbax V0's defaults);
  v1: ocp.v1.save / load (formerly save_pytree / load_pytree) (zarr v3, OCDBT, zstd level 3: the V1 API's defaults,
      the format cairn::save writes by default).
Times are wall-clock seconds of the synchronous call (V0: save + wait_until_finished, so the
background write is included). Peak memory beyond the data (VmHWM reset through
/proc/self/clear_refs before each phase) is reported too. Prints one JSON line at the end.
"""
import argparse, json, os, shutil, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
ap.add_argument("--arrays", type=int, default=64)
ap.add_argument("--array-mib", type=int, default=64)
ap.add_argument("--variants", default="v0,v1")
args = ap.parse_args()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_util import Peak, drop_cache  # noqa: E402

import numpy as np
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import v1 as ocp1

MiB = 1 << 20
# save_pytree / load_pytree were renamed save / load (the old names warn).
ocp1_save = getattr(ocp1, "save", None) or ocp1.save_pytree
ocp1_load = getattr(ocp1, "load", None) or ocp1.load_pytree


def shape_for(array_mib):
    return (array_mib * 64, 4096)  # float32: 64 rows of 4096 per MiB, as the C++ side


def make_tree(n, array_mib):
    shape = shape_for(array_mib)
    count = shape[0] * shape[1]
    rng = np.random.default_rng(20240601)
    base = (rng.standard_normal(count, dtype=np.float32) * np.float32(0.02)).astype(np.float32)
    params = {}
    for i in range(n):
        a = np.roll(base, (i * 1000003) % count)
        flips = rng.integers(0, 2, count, dtype=np.uint32) << np.uint32(31)
        a.view(np.uint32)[:] ^= flips
        params[f"layer_{i:02d}"] = jax.device_put(a.reshape(shape))
        del a, flips
    jax.block_until_ready(params)
    return {"params": params}


def stored_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def bit_exact(tree, restored):
    want, got = tree["params"], restored["params"]
    if sorted(want) != sorted(got):
        return False
    for k in want:
        a, b = np.asarray(want[k]), np.asarray(got[k])
        if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a.view(np.uint32), b.view(np.uint32)):
            return False
    return True


os.makedirs(args.dir, exist_ok=True)
out = {"python_ok": 1, "arrays": args.arrays, "array_MiB": args.array_mib,
       "orbax_version": ocp.__version__, "jax_version": jax.__version__, "cpu_devices": len(jax.devices())}
t0 = time.perf_counter()
tree = make_tree(args.arrays, args.array_mib)
out["generate_s"] = round(time.perf_counter() - t0, 3)
total = args.arrays * args.array_mib * MiB
out["bytes"] = total
ok = True

for variant in [v for v in args.variants.split(",") if v]:
    path = os.path.join(args.dir, "py_" + variant)
    shutil.rmtree(path, ignore_errors=True)
    if variant == "v0":
        ckptr = ocp.StandardCheckpointer()
        with Peak() as p:
            t0 = time.perf_counter()
            ckptr.save(path, tree)
            ckptr.wait_until_finished()
            save_s = time.perf_counter() - t0
    elif variant == "v1":
        with Peak() as p:
            t0 = time.perf_counter()
            ocp1_save(path, tree)
            save_s = time.perf_counter() - t0
    else:
        sys.exit(f"unknown variant {variant}")
    out[f"{variant}_save_s"] = round(save_s, 4)
    out[f"{variant}_save_peak_extra_MiB"] = round(p.extra_mib, 1)
    out[f"{variant}_stored_bytes"] = stored_bytes(path)
    drop_cache(path)
    with Peak() as p:
        t0 = time.perf_counter()
        if variant == "v0":
            restored = ocp.StandardCheckpointer().restore(path)
        else:
            restored = ocp1_load(path)
        jax.block_until_ready(restored)
        load_s = time.perf_counter() - t0
    out[f"{variant}_load_s"] = round(load_s, 4)
    out[f"{variant}_load_peak_extra_MiB"] = round(p.extra_mib - total / MiB, 1)  # beyond the restored arrays
    exact = bit_exact(tree, restored)
    out[f"{variant}_bit_exact"] = int(exact)
    ok = ok and exact
    del restored
    shutil.rmtree(path, ignore_errors=True)

out["bit_exact"] = int(ok)
print(json.dumps(out, separators=(",", ":")), flush=True)
sys.exit(0 if ok else 1)

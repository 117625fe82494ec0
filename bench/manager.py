# SPDX-License-Identifier: Apache-2.0
"""bench/manager.py: Python Orbax's CheckpointManager on the state cairn_bench_manager saves.

usage: manager.py --dir DIR [--large N] [--large-mib M] [--small N] [--small-kib K]

The state is {"large_0": ..., "small_0000": ...}: N float32 arrays of M MiB and N' of K KiB, N(0, 0.02)
weights (the same shapes and distribution as the C++ side, not the same bytes), as jax.Arrays on one CPU
device. ocp.CheckpointManager (Orbax's defaults: async save, OCDBT, zarr v3 + zstd) saves step 0:
the blocking part is the time `save` takes to return; the total adds `wait_until_finished`. The
checkpoint's pages are dropped, then `restore` reads it back (StandardRestore). Prints one JSON line.
"""
import argparse, json, os, shutil, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_util import Peak, drop_cache  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
ap.add_argument("--large", type=int, default=4)
ap.add_argument("--large-mib", type=int, default=224)
ap.add_argument("--small", type=int, default=2048)
ap.add_argument("--small-kib", type=int, default=64)
args = ap.parse_args()

rng = np.random.default_rng(7)
state = {}
for i in range(args.large):
    n = args.large_mib << 18
    state[f"large_{i}"] = jax.device_put((rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)).reshape(-1, 1024))
for i in range(args.small):
    state[f"small_{i:04d}"] = jax.device_put(rng.standard_normal(args.small_kib << 8, dtype=np.float32) * np.float32(0.02))
jax.block_until_ready(state)
total = sum(a.nbytes for a in state.values())

shutil.rmtree(args.dir, ignore_errors=True)
mngr = ocp.CheckpointManager(args.dir)
with Peak() as peak:
    t0 = time.perf_counter()
    mngr.save(0, args=ocp.args.StandardSave(state))
    blocking = time.perf_counter() - t0
    mngr.wait_until_finished()
    save_s = time.perf_counter() - t0
drop_cache(args.dir)
abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state)
t0 = time.perf_counter()
restored = mngr.restore(0, args=ocp.args.StandardRestore(abstract))
jax.block_until_ready(restored)
restore_s = time.perf_counter() - t0
exact = all(np.asarray(restored[k]).tobytes() == np.asarray(v).tobytes() for k, v in state.items())
mngr.close()
shutil.rmtree(args.dir, ignore_errors=True)
print(json.dumps({"python_ok": 1, "orbax_version": ocp.__version__, "bytes": total, "blocking_s": round(blocking, 4),
                  "save_s": round(save_s, 4), "restore_s": round(restore_s, 4), "save_peak_extra_MiB": round(peak.extra_mib, 1),
                  "bit_exact": int(exact)}))

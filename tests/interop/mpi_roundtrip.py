"""A checkpoint written by 4 cairn processes under mpirun, read by single-process Python.

usage: mpi_roundtrip.py MPI_PROGRAM WORK_DIR MPIRUN...

1. `mpirun -n 4 MPI_PROGRAM save` writes step 1: every process its shards into `ocdbt.process_<i>/`,
   the primary the merged root (tests/dist/job.hpp holds the job's arrays and shardings).
2. Python Orbax, in one process with 8 CPU devices, restores the item with its saved shardings and
   onto other target shardings; every array and every addressable shard is bit-exact.
3. TensorStore opens the merged root database (ocdbt kvstore + zarr3) and reads every array; its keys
   are exactly the union of the per-process databases' keys.
"""
import os, shutil, subprocess, sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
import jax  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402
import tensorstore as ts  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

program, work, mpirun = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3:]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = []


def pattern(dtype, shape, seed):
    """tests/dist/job.hpp's pattern(): byte i is (37 i + 11 seed + i / 5) mod 256."""
    n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    i = np.arange(n, dtype=np.int64)
    return np.frombuffer(((i * 37 + seed * 11 + i // 5) & 0xFF).astype(np.uint8).tobytes(), dtype=dtype).reshape(shape)


want = {"params.w": pattern(np.float32, (8, 6), 1), "params.b": pattern(np.int16, (6,), 2),
        "params.r": pattern(ml_dtypes.bfloat16, (5, 3), 3), "h": pattern(np.int32, (4,), 4)}
saved_specs = {"params.w": P("data", "model"), "params.b": P("model"), "params.r": P()}

# 1. Four cairn processes save.
root = os.path.join(work, "root")
run = subprocess.run(mpirun + ["-n", "4", program, "save", root, "1"], capture_output=True, text=True)
print(run.stdout.strip())
if run.returncode != 0:
    sys.exit(f"mpirun failed ({run.returncode}):\n{run.stderr}")
item = os.path.join(root, "1", "default")
print("per-process databases:", sorted(d for d in os.listdir(item) if d.startswith("ocdbt.process_")))


def get(tree, name):
    for part in name.split("."):
        tree = tree[part]
    return tree


# 2. Single-process Orbax.
devices = jax.devices()
default = ocp.PyTreeCheckpointer().restore(item)
for name, arr in want.items():
    r = get(default, name)
    if np.asarray(r).tobytes() != arr.tobytes() or np.asarray(r).dtype != arr.dtype:
        failures.append(f"saved sharding: {name} differs")
    elif name in saved_specs and r.sharding.spec != saved_specs[name]:
        failures.append(f"saved sharding: {name} restored as {r.sharding.spec}, saved {saved_specs[name]}")
if int(default["step"]) != 42 or default["name"] != "mlp":
    failures.append(f"scalar/string leaves: step={default['step']!r} name={default['name']!r}")
mesh8 = Mesh(np.array(devices[:8]), ("x",))
mesh1 = Mesh(np.array(devices[:1]), ("x",))
targets = [("8 devices P(x)", lambda s: NamedSharding(mesh8, P("x") if s[0] % 8 == 0 else P())),
           ("1 device", lambda s: NamedSharding(mesh1, P()))]
for label, make in targets:
    abstract = {"params": {k: jax.ShapeDtypeStruct(want["params." + k].shape, want["params." + k].dtype,
                                                   sharding=make(want["params." + k].shape)) for k in "wbr"}}
    got = ocp.PyTreeCheckpointer().restore(item, args=ocp.args.PyTreeRestore(
        item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract), partial_restore=True))
    for k in "wbr":
        r, arr = got["params"][k], want["params." + k]
        if r.sharding != abstract["params"][k].sharding:
            failures.append(f"{label}: params.{k} restored with {r.sharding}")
        for s in r.addressable_shards:
            if np.asarray(s.data).tobytes() != np.ascontiguousarray(arr[s.index]).tobytes():
                failures.append(f"{label}: params.{k} shard {s.index} on {s.device} differs")
print(f"2. Python Orbax restored the 4-process checkpoint with its saved shardings and onto {len(targets)} others "
      f"({len(failures)} differences)")

# 3. TensorStore on the merged root.
before = len(failures)
base = "file://" + item + "/"
for name, arr in want.items():
    got = ts.open({"driver": "zarr3", "kvstore": {"driver": "ocdbt", "base": base, "path": name + "/"}}).result().read().result()
    if got.tobytes() != arr.tobytes():
        failures.append(f"TensorStore: {name} differs")


def keys(path):
    return set(ts.KvStore.open({"driver": "ocdbt", "base": "file://" + path + "/"}).result().list().result())


merged = keys(item)
union = set()
for d in sorted(os.listdir(item)):
    if d.startswith("ocdbt.process_"):
        part = keys(os.path.join(item, d))
        if part & union:
            failures.append(f"{d} repeats keys of another process: {sorted(part & union)[:3]}")
        union |= part
if merged != union:
    failures.append(f"merged root keys differ from the per-process union: {sorted(merged ^ union)[:5]}")
print(f"3. TensorStore read {len(want)} arrays through the merged root; {len(merged)} keys = the union of the "
      f"per-process databases ({len(failures) - before} differences)")

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)

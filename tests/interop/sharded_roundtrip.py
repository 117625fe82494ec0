"""Sharded checkpoints between cairn and Python Orbax, resharded both ways, bit-exact.

usage: sharded_roundtrip.py SHARD_TOOL CAIRN_CLI WORK_DIR

1. Python Orbax saves arrays sharded on a 2x2 CPU mesh (4 simulated devices); cairn restores them onto
   other shardings (1, 2, 4 and 8 devices, 1-D and 2-D meshes) and every device buffer equals its
   slice. `cairn plan` prints the plan from metadata alone.
2. cairn saves arrays sharded on a simulated 2x2 mesh; Python Orbax restores them with different target
   shardings (and with the saved `_sharding`), and every addressable shard equals its slice.
"""
import os, shutil, subprocess, sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
import jax  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

tool, cli, work = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = []
devices = jax.devices()
assert len(devices) >= 8, f"expected 8 CPU devices, got {len(devices)}"


def ramp(shape, dtype, offset):
    return (np.arange(int(np.prod(shape))).astype(dtype) + np.asarray(offset, dtype)).reshape(shape)


def expected():
    return {
        "dense_1": {"kernel": ramp((64, 32), np.float32, 0), "bias": ramp((32,), np.float32, 1000)},
        "embed": {"table": ramp((16, 8), np.int32, 7), "rows": ramp((8, 6), np.float32, 3)},
    }


def flat(tree, prefix=""):
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from flat(v, name + ".")
        else:
            yield name, v


mesh22 = Mesh(np.array(devices[:4]).reshape(2, 2), ("data", "model"))

# 1. Python writes, cairn reshards.
want = expected()
specs = {"dense_1.kernel": P(None, "model"), "dense_1.bias": P(), "embed.table": P("data", "model"),
         "embed.rows": P(("data", "model"))}
placed = {}
for name, arr in flat(want):
    a, b = name.split(".")
    placed.setdefault(a, {})[b] = jax.device_put(arr, NamedSharding(mesh22, specs[name]))
py_root = os.path.join(work, "python")
ocp.PyTreeCheckpointer().save(os.path.join(py_root, "1", "default"), placed)
item = os.path.join(py_root, "1", "default")
targets = [("x=1", "-"), ("x=2", "x"), ("x=8", "-,x"), ("data=2,model=2", "data,-"), ("data=2,model=2", "model,data"),
           ("a=4,b=2", "a+b"), ("a=2,b=4", "-,b")]
checked = 0
for mesh, spec in targets:
    out = os.path.join(work, "read", f"{mesh}_{spec}".replace(",", "_").replace("=", "").replace("+", "p"))
    os.makedirs(out)
    subprocess.run([tool, "read", item, out, mesh, spec], check=True)
    arrays = dict(flat(want))
    for line in open(os.path.join(out, "shards.txt")):
        param, device, origin, extent, dtype = line.split()
        o = [] if origin == "-" else [int(v) for v in origin.split(",")]
        e = [] if extent == "-" else [int(v) for v in extent.split(",")]
        whole = arrays.get(param)
        if whole is None:
            if param.split(".")[0] not in ("dense_1", "embed"):
                failures.append(f"unexpected param {param}")
            continue
        sl = tuple(slice(a, a + b) for a, b in zip(o, e))
        got = open(os.path.join(out, f"{param}@{device}.bin"), "rb").read()
        if got != np.ascontiguousarray(whole[sl]).tobytes():
            failures.append(f"{mesh} {spec}: {param} on device {device} {sl} differs")
        checked += 1
# Orbax's replica-parallel write splits a shard among its replicas (2 here), so the saved chunks are
# [32,16] halves of the [64,16] shards: 4 chunks, each needed by the two devices of one target row.
plan = subprocess.run([cli, "plan", item, "dense_1.kernel", "--mesh", "data=2,model=2", "--spec", "data,-"],
                      check=True, capture_output=True, text=True).stdout
if "saved  f32[64,32] {data:2, model:2} P(-, model)" not in plan or "cost: read 8192 B in 4 chunks" not in plan:
    failures.append("cairn plan printed:\n" + plan)
print(f"1. Orbax-written 2x2 sharded arrays -> cairn on {len(targets)} target shardings: {checked} device buffers compared "
      f"({len(failures)} differences)")
print(plan, end="")

# 2. cairn writes, Python reshards.
c_root = os.path.join(work, "cairn")
subprocess.run([tool, "write", c_root], check=True)
c_item = os.path.join(c_root, "1", "default")
mesh8 = Mesh(np.array(devices[:8]).reshape(4, 2), ("a", "b"))
mesh2 = Mesh(np.array(devices[:2]), ("x",))
restores = [
    ("2x2 P(data, -)", lambda s: NamedSharding(mesh22, P("data", *([None] * (len(s) - 1))))),
    ("4x2 P(b, a)", lambda s: NamedSharding(mesh8, P("b", "a") if len(s) == 2 and s[1] % 4 == 0 else P("b"))),
    ("2 P(-, x)", lambda s: NamedSharding(mesh2, P(None, "x") if len(s) == 2 else P())),
]
before = len(failures)
for label, make in restores:
    abstract = {a: {b: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=make(v.shape)) for b, v in d.items()} for a, d in want.items()}
    got = ocp.PyTreeCheckpointer().restore(c_item, args=ocp.args.PyTreeRestore(
        item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract)))
    for name, arr in flat(want):
        a, b = name.split(".")
        r = got[a][b]
        if r.sharding != abstract[a][b].sharding:
            failures.append(f"{label}: {name} restored with {r.sharding}")
        for s in r.addressable_shards:
            if np.asarray(s.data).tobytes() != np.ascontiguousarray(arr[s.index]).tobytes():
                failures.append(f"{label}: {name} shard {s.index} on {s.device} differs")
default = ocp.PyTreeCheckpointer().restore(c_item)
for name, arr in flat(want):
    a, b = name.split(".")
    r = default[a][b]
    if not isinstance(r, jax.Array) or np.asarray(r).tobytes() != arr.tobytes():
        failures.append(f"saved sharding: {name} differs")
    elif r.sharding.spec != NamedSharding(mesh22, specs[name]).spec:
        failures.append(f"saved sharding: {name} restored as {r.sharding.spec}, saved {specs[name]}")
print(f"2. cairn-written 2x2 sharded arrays -> Python Orbax onto {len(restores)} target shardings and the saved one "
      f"({len(failures) - before} differences)")

for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)

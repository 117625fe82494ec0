"""OCDBT interop with real TensorStore, both ways.

usage: ocdbt_tensorstore.py CAIRN SAMPLES_DIR WORK_DIR

1. Every database cairn wrote under SAMPLES_DIR (tests/ocdbt/sample_dbs.cpp) opens with TensorStore's
   ocdbt kvstore driver and yields exactly the keys, sizes and bytes `cairn kv ls` / `kv get` report.
2. TensorStore writes a database with many keys, large values and many generations (version-tree
   nodes included); cairn reads it identically.
3. cairn adds generations on top of the TensorStore-written database; TensorStore reads them.
"""
import os, random, shutil, subprocess, sys

import tensorstore as ts

cairn, samples, work = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def ts_open(path):
    return ts.KvStore.open({"driver": "ocdbt", "base": "file://" + os.path.abspath(path) + "/"}).result()


def cairn_ls(path):
    out = subprocess.run([cairn, "kv", "ls", path], capture_output=True, check=True).stdout.decode()
    return {l.split("\t")[0]: int(l.split("\t")[1]) for l in out.splitlines()}


def cairn_get(path, key):
    return subprocess.run([cairn, "kv", "get", path, key], capture_output=True, check=True).stdout


def compare(path, sample_values=200):
    store = ts_open(path)
    ts_keys = sorted((k.decode() for k in store.list().result()), key=str.encode)  # listing order is unspecified
    ours = cairn_ls(path)
    check(ts_keys == sorted(ours, key=str.encode), f"{path}: TensorStore lists {len(ts_keys)} keys, cairn {len(ours)}")
    keys = list(ours)
    # Each `cairn kv get` decodes the index again (~0.3 s for a million keys): sample big databases thinly.
    step = max(1, len(keys) // (sample_values if len(keys) <= 10000 else 20))
    for key in keys[::step]:
        value = store.read(key.encode()).result().value
        check(len(value) == ours[key], f"{path}: {key}: TensorStore size {len(value)} != cairn {ours[key]}")
        check(value == cairn_get(path, key), f"{path}: {key}: bytes differ")
    return len(ts_keys)


# 1. cairn writes, TensorStore reads.
total = 0
for name in sorted(os.listdir(samples)):
    path = os.path.join(samples, name)
    if os.path.isfile(os.path.join(path, "manifest.ocdbt")):
        n = compare(path)
        total += n
        print(f"cairn → TensorStore: {name}: {n} keys agree")
    for sub in sorted(os.listdir(path)):  # per-process children of a merged root
        if sub.startswith("ocdbt.process_"):
            compare(os.path.join(path, sub))

# 2. TensorStore writes (many keys, large values, many generations), cairn reads.
shutil.rmtree(work, ignore_errors=True)
db = os.path.join(work, "ts_written")
store = ts_open(db)
rng = random.Random(5)
expect = {}
txn = ts.Transaction()
for i in range(20000):
    k = f"params/layer{i // 100:03d}/w{i % 100:02d}"
    v = rng.randbytes(rng.choice([1, 50, 700, 1500]))
    expect[k] = v
    store.with_transaction(txn).write(k.encode(), v).result()
txn.commit_async().result()
for g in range(40):  # one generation per write: version-tree nodes of height 1 and 2 (arity 16)
    k = f"big/{g:02d}"
    v = rng.randbytes(300000 if g % 10 else 3000000)
    expect[k] = v
    store.write(k.encode(), v).result()
for g in range(0, 40, 9):
    k = f"big/{g:02d}"
    store.delete_range(ts.KvStore.KeyRange(k.encode(), (k + "\0").encode())).result()
    del expect[k]
ours = cairn_ls(db)
check(sorted(ours) == sorted(expect), f"TensorStore → cairn: keys differ ({len(ours)} vs {len(expect)})")
for k in list(expect)[::97] + [k for k in expect if k.startswith("big/")]:
    check(cairn_get(db, k) == expect[k], f"TensorStore → cairn: {k}: bytes differ")
print(f"TensorStore → cairn: {len(ours)} keys of a {len(expect)}-key, 40+ generation database agree")

# 3. cairn adds generations on top; TensorStore reads the result.
for g in range(20):
    k = f"cairn/{g:02d}"
    v = rng.randbytes(2000 * (g + 1))
    src = os.path.join(work, "value")
    with open(src, "wb") as f:
        f.write(v)
    subprocess.run([cairn, "kv", "put", db, k, src], capture_output=True, check=True)
    expect[k] = v
store = ts_open(db)
ts_keys = sorted(k.decode() for k in store.list().result())
check(ts_keys == sorted(expect), "cairn generations on a TensorStore database: keys differ in TensorStore")
for k in [f"cairn/{g:02d}" for g in range(20)] + list(expect)[::501]:
    check(store.read(k.encode()).result().value == expect[k], f"cairn generation → TensorStore: {k}: bytes differ")
print(f"cairn → TensorStore: 20 new generations on the TensorStore database read back ({len(ts_keys)} keys)")

shutil.rmtree(work, ignore_errors=True)
print(f"{total} keys of cairn-written databases read by TensorStore; {len(failures)} failures")
sys.exit(1 if failures else 0)

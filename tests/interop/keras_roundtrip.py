"""Keras 3 `keras.callbacks.OrbaxCheckpoint` interop, both ways.

usage: keras_roundtrip.py INTEROP_TOOL WORK_DIR

1. The seed tutorial's model (Dense 64 relu -> Dense 1, Adam, MSE), trained briefly with the
   OrbaxCheckpoint callback; cairn loads the latest step and must return every weight and optimizer
   variable identical to `model.get_state_tree()`, and the model config string.
2. cairn writes a checkpoint in Keras's layout (items `pytree` and `model_config`, zarr v3);
   `keras.saving.load_model(root)` and `model.load_weights(root)` must yield identical weights.
"""
import json, os, shutil, subprocess, sys

import numpy as np
import keras

tool, work = sys.argv[1], os.path.abspath(sys.argv[2])
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def make_model():
    # The seed tutorial's MLP, built functionally with explicit names: variable paths are then the same
    # for the trained model, a fresh one and one rebuilt from its config by load_model. (A Sequential
    # model rebuilt from config loses the model-name prefix get_state_tree() saved, so in this Keras
    # release load_model cannot restore it even from Keras's own checkpoint.)
    inputs = keras.Input((32,), name="features")
    hidden = keras.layers.Dense(64, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(1, name="head")(hidden)
    model = keras.Model(inputs, outputs, name="mlp")
    model.compile(optimizer="adam", loss="mse")
    return model


def flatten(tree, prefix=()):
    out = {}
    if isinstance(tree, dict):
        if not tree:
            out[prefix] = "Dict"
        for k, v in tree.items():
            out.update(flatten(v, prefix + (str(k),)))
    else:
        out[prefix] = np.asarray(tree)
    return out


def np_dtype(name):
    import ml_dtypes
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def dumped(leaves, d):
    out = {}
    for l in leaves:
        path = tuple(k for k, _ in l["path"])
        if l["kind"] in ("array", "scalar"):
            out[path] = np.frombuffer(open(os.path.join(d, l["file"]), "rb").read(), dtype=np_dtype(l["dtype"])).reshape(l["shape"])
        elif l["kind"] == "string":
            out[path] = l["value"]
        else:
            out[path] = l["kind"]
    return out


def same(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


rng = np.random.default_rng(0)
x = rng.standard_normal((256, 32)).astype("float32")
y = rng.standard_normal((256, 1)).astype("float32")

# 1. Keras writes, cairn reads.
root = os.path.join(work, "keras_ckpt")
model = make_model()
model.fit(x, y, epochs=2, batch_size=32, validation_split=0.2, verbose=0,
          callbacks=[keras.callbacks.OrbaxCheckpoint(directory=root, max_to_keep=2)])
state = flatten(model.get_state_tree())
out = os.path.join(work, "dump")
r = subprocess.run([tool, "dump", root, out], capture_output=True, text=True)
check(r.returncode == 0, f"cairn dump of the Keras checkpoint: {r.stderr}")
if r.returncode == 0:
    index = json.load(open(os.path.join(out, "index.json")))
    got = dumped(index["items"]["pytree"]["leaves"], out)
    check(sorted(got) == sorted(state), f"Keras state keys differ: {sorted(set(state) ^ set(got))[:6]}")
    bad = [".".join(k) for k in state if k in got and not same(state[k], got[k])]
    check(not bad, f"Keras weights/optimizer variables differ: {bad[:6]}")
    cfg = dumped(index["items"]["model_config"]["leaves"], out)
    check(isinstance(cfg.get(("config",)), str) and "Dense" in cfg[("config",)], "model_config string")
    n_opt = sum(1 for k in state if k[0] == "optimizer_variables")
    print(f"1. Keras OrbaxCheckpoint -> cairn: {len(state)} leaves ({n_opt} optimizer variables) identical")
    config_string = cfg.get(("config",))

# 2. cairn writes Keras's layout, Keras loads it.
    spec = os.path.join(work, "spec")
    os.makedirs(spec)
    leaves = []
    for i, (path, v) in enumerate(sorted(state.items())):
        keys = [[k, 2] for k in path]
        if isinstance(v, str):
            leaves.append({"path": keys, "kind": v})
            continue
        open(os.path.join(spec, f"l{i}.bin"), "wb").write(v.tobytes())
        leaves.append({"path": keys, "kind": "array", "dtype": v.dtype.name, "shape": list(v.shape), "file": f"l{i}.bin"})
    items = {"pytree": {"leaves": leaves},
             "model_config": {"leaves": [{"path": [["config", 2]], "kind": "string", "value": config_string}]}}
    json.dump({"items": items}, open(os.path.join(spec, "index.json"), "w"))
    root2 = os.path.join(work, "cairn_keras")
    r = subprocess.run([tool, "write", spec, root2, "4", "3"], capture_output=True, text=True)
    check(r.returncode == 0, f"cairn write (Keras layout): {r.stderr}")
    if r.returncode == 0:
        # load_model rebuilds the model from model_config and applies the pytree exactly as it does for
        # Keras's own checkpoint: both must give the same model.
        loaded = keras.saving.load_model(root2)
        check([w.path for w in model.weights] == [w.path for w in loaded.weights], "load_model: architecture")
        for a, b in zip(model.weights, loaded.weights):
            check(same(np.asarray(a), np.asarray(b)), f"load_model: weight {b.path} differs")
        check(np.array_equal(model.predict(x[:8], verbose=0), loaded.predict(x[:8], verbose=0)), "load_model: predictions differ")
        # load_weights into a model of the same structure restores the trained weights exactly.
        fresh = make_model()
        fresh.load_weights(root2)
        for a, b in zip(model.weights, fresh.weights):
            check(same(np.asarray(a), np.asarray(b)), f"load_weights: weight {a.path} differs")
        check(np.array_equal(model.predict(x[:8], verbose=0), fresh.predict(x[:8], verbose=0)), "load_weights: predictions differ")
        print(f"2. cairn (Keras layout, zarr v3) -> keras.saving.load_model and model.load_weights: "
              f"{len(model.weights)} trained weights identical, predictions equal")

shutil.rmtree(work, ignore_errors=True)
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)

"""The C++ Keras tutorial's checkpoints load in Keras.

usage: keras_tutorial.py EXAMPLE_BINARY WORK_DIR

Runs examples/keras_tutorial, then, with 4 simulated CPU devices:
1. keras.saving.load_model(basic root) rebuilds the model from cairn's model_config and sets the weights,
   optimizer and metric variables of the latest step (4) exactly as saved;
2. the same for the distributed root (dense_1/kernel saved sharded P(-, model) on a 2x2 mesh);
3. model.load_weights(root) of the save-every-4-batches root loads step 16's weights.
"""
import os, shutil, subprocess, sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
import keras  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402

example, work = sys.argv[1], os.path.abspath(sys.argv[2])
shutil.rmtree(work, ignore_errors=True)
run = subprocess.run([example, work], capture_output=True, text=True)
if run.returncode != 0 or "Weights match!" not in run.stdout:
    print(run.stdout, run.stderr)
    sys.exit(1)
failures = []


def flat(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from flat(v, f"{prefix}{k}/")
        else:
            yield f"{prefix}{k}", np.asarray(v)


def saved_pytree(root, step):
    return dict(flat(ocp.PyTreeCheckpointer().restore(os.path.join(root, str(step), "pytree"))))


def check_model(model, root, step, label, with_optimizer=True):
    saved = saved_pytree(root, step)
    state = dict(flat(model.get_state_tree()))
    groups = ("trainable_variables/", "optimizer_variables/") if with_optimizer else ("trainable_variables/",)
    compared = 0
    for name, value in saved.items():
        if not name.startswith(groups):
            continue
        if name not in state:
            failures.append(f"{label}: {name} is not a variable of the loaded model")
            continue
        if state[name].dtype != value.dtype or state[name].shape != value.shape or state[name].tobytes() != value.tobytes():
            failures.append(f"{label}: {name} differs from step {step}")
        compared += 1
    x = np.random.default_rng(0).random((4, 32), dtype=np.float32)
    if not np.all(np.isfinite(model.predict(x, verbose=0))):
        failures.append(f"{label}: predictions are not finite")
    return compared


basic = os.path.join(work, "orbax_ckpt_basic")
n1 = check_model(keras.saving.load_model(basic), basic, 4, "load_model(basic)")
dist = os.path.join(work, "orbax_ckpt_distributed")
n2 = check_model(keras.saving.load_model(dist), dist, 2, "load_model(distributed)")
batches = os.path.join(work, "orbax_ckpt_batches")
fresh = keras.saving.load_model(basic)
fresh.load_weights(batches)
n3 = check_model(fresh, batches, 16, "load_weights(batches)", with_optimizer=False)
print(f"keras.saving.load_model / load_weights on the C++ tutorial's checkpoints: {n1} + {n2} + {n3} variables compared "
      f"({len(failures)} differences)")
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)

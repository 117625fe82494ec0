// SPDX-License-Identifier: Apache-2.0
// The Keras "Orbax Checkpointing in Keras" guide, in C++: a tiny MLP (32 -> Dense 64 relu -> Dense 1,
// Adam, MSE) trained in plain C++ on random data, checkpointed by cairn's OrbaxCheckpoint callback in
// Keras's own layout (items `pytree` and `model_config`), so `keras.saving.load_model(dir)` loads what
// this program trained. Sections, with the guide's numbers:
//   1. basic save: 3 epochs, max_to_keep=3 -> steps 0 1 2
//   2. load the full model, and load weights into a fresh model ("Weights match!")
//   3. resume with initial_epoch=3: epochs 4-5, max_to_keep=5 -> 0 1 2 3 4
//   4. best only on val_loss, max_to_keep=1
//   5. save every 4 batches: 2 epochs x 8 batches, max_to_keep=3 -> 8 12 16
//   6. distributed on a simulated 2x2 CPU mesh with dense_1/kernel P(-, model), max_to_keep=2 -> 1 2;
//      the loaded shardings, then a resharded load with P(data, -)
// Usage: example_keras_tutorial [OUTPUT_DIR]   (default: <temp>/cairn_keras_tutorial)
#include <cairn/backend/host.hpp>
#include <cairn/cairn.hpp>
#include <cairn/checkpoint/callback.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// ---- a tiny Keras-like MLP -------------------------------------------------------------------------

struct dense_layer {
  std::string name;
  int in = 0, out = 0;
  std::vector<float> kernel, bias;  // kernel is [in, out], row-major, as Keras stores it
};

struct adam_slot {
  std::vector<float> m, v;
};

struct model {
  dense_layer l1{"dense_1", 32, 64, {}, {}}, l2{"dense_2", 64, 1, {}, {}};
  std::map<std::string, adam_slot> slots;  // "<layer>_<kernel|bias>"
  std::int32_t iterations = 0;
  float learning_rate = 0.001f;
  float loss_total = 0, loss_count = 0;  // Keras's loss tracker (a Mean over the epoch)

  explicit model(unsigned seed) {
    std::mt19937 rng(seed);
    for (dense_layer* l : {&l1, &l2}) {
      const float limit = std::sqrt(6.0f / static_cast<float>(l->in + l->out));  // Glorot uniform
      std::uniform_real_distribution<float> u(-limit, limit);
      l->kernel.resize(static_cast<std::size_t>(l->in * l->out));
      for (auto& w : l->kernel) w = u(rng);
      l->bias.assign(static_cast<std::size_t>(l->out), 0.0f);
      for (const char* part : {"kernel", "bias"}) {
        auto& s = slots[l->name + "_" + part];
        const std::size_t n = std::string(part) == "kernel" ? l->kernel.size() : l->bias.size();
        s.m.assign(n, 0.0f);
        s.v.assign(n, 0.0f);
      }
    }
  }

  // Forward pass for rows [begin, end) of x; returns predictions, fills hidden activations.
  std::vector<float> forward(const std::vector<float>& x, std::size_t begin, std::size_t end, std::vector<float>* hidden) const {
    const std::size_t n = end - begin;
    std::vector<float> h(n * 64), y(n);
    for (std::size_t r = 0; r < n; ++r) {
      for (int j = 0; j < 64; ++j) {
        float a = l1.bias[static_cast<std::size_t>(j)];
        for (int i = 0; i < 32; ++i) a += x[(begin + r) * 32 + static_cast<std::size_t>(i)] * l1.kernel[static_cast<std::size_t>(i * 64 + j)];
        h[r * 64 + static_cast<std::size_t>(j)] = std::max(a, 0.0f);
      }
      float o = l2.bias[0];
      for (int j = 0; j < 64; ++j) o += h[r * 64 + static_cast<std::size_t>(j)] * l2.kernel[static_cast<std::size_t>(j)];
      y[r] = o;
    }
    if (hidden) *hidden = std::move(h);
    return y;
  }

  float mse(const std::vector<float>& x, const std::vector<float>& y, std::size_t begin, std::size_t end) const {
    const auto p = forward(x, begin, end, nullptr);
    float s = 0;
    for (std::size_t r = 0; r < p.size(); ++r) s += (p[r] - y[begin + r]) * (p[r] - y[begin + r]);
    return s / static_cast<float>(p.size());
  }

  // One Adam step on rows [begin, end); returns the batch loss.
  float train_step(const std::vector<float>& x, const std::vector<float>& y, std::size_t begin, std::size_t end) {
    std::vector<float> h;
    const auto p = forward(x, begin, end, &h);
    const std::size_t n = end - begin;
    std::vector<float> gk1(l1.kernel.size(), 0), gb1(l1.bias.size(), 0), gk2(l2.kernel.size(), 0), gb2(1, 0);
    float loss = 0;
    for (std::size_t r = 0; r < n; ++r) {
      const float d = p[r] - y[begin + r];
      loss += d * d;
      const float g = 2 * d / static_cast<float>(n);
      gb2[0] += g;
      for (int j = 0; j < 64; ++j) {
        const float hj = h[r * 64 + static_cast<std::size_t>(j)];
        gk2[static_cast<std::size_t>(j)] += g * hj;
        if (hj <= 0) continue;
        const float gh = g * l2.kernel[static_cast<std::size_t>(j)];
        gb1[static_cast<std::size_t>(j)] += gh;
        for (int i = 0; i < 32; ++i) gk1[static_cast<std::size_t>(i * 64 + j)] += gh * x[(begin + r) * 32 + static_cast<std::size_t>(i)];
      }
    }
    ++iterations;
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-7f;
    const float t = static_cast<float>(iterations);
    const float alpha = learning_rate * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    auto update = [&](std::vector<float>& w, const std::vector<float>& g, adam_slot& s) {
      for (std::size_t i = 0; i < w.size(); ++i) {
        s.m[i] += (g[i] - s.m[i]) * (1 - b1);
        s.v[i] += (g[i] * g[i] - s.v[i]) * (1 - b2);
        w[i] -= alpha * s.m[i] / (std::sqrt(s.v[i]) + eps);
      }
    };
    update(l1.kernel, gk1, slots["dense_1_kernel"]);
    update(l1.bias, gb1, slots["dense_1_bias"]);
    update(l2.kernel, gk2, slots["dense_2_kernel"]);
    update(l2.bias, gb2, slots["dense_2_bias"]);
    loss /= static_cast<float>(n);
    loss_total += loss * static_cast<float>(n);
    loss_count += static_cast<float>(n);
    return loss;
  }
};

cairn::host_array to_array(const std::vector<float>& v, cairn::shape s) {
  return cairn::host_array::from(std::span<const float>(v), std::move(s));
}
template <class T>
cairn::host_array rank0(T v) {
  return cairn::host_array::from(std::span<const T>(&v, 1), cairn::shape{});
}
std::vector<float> from_array(const cairn::host_array& a) {
  std::vector<float> v(static_cast<std::size_t>(a.shape().num_elements()));
  std::memcpy(v.data(), a.bytes().data(), v.size() * sizeof(float));
  return v;
}

// Keras's state tree (model.get_state_tree()) of the model; placed on a mesh when `place` is set.
cairn::dynamic_tree state_tree(const model& m, bool weights_only,
                               const std::function<cairn::dynamic_tree(const std::string&, cairn::host_array)>& place) {
  auto leaf = [&](const std::string& path, cairn::host_array a) { return place ? place(path, std::move(a)) : cairn::dynamic_tree(std::move(a)); };
  cairn::dynamic_tree t;
  for (const dense_layer* l : {&m.l1, &m.l2}) {
    t["trainable_variables"][l->name]["kernel"] = leaf(l->name + "/kernel", to_array(l->kernel, cairn::shape{l->in, l->out}));
    t["trainable_variables"][l->name]["bias"] = leaf(l->name + "/bias", to_array(l->bias, cairn::shape{l->out}));
  }
  t["non_trainable_variables"] = cairn::dynamic_tree(cairn::dynamic_tree::map_type{});
  if (weights_only) return t;
  auto& adam = t["optimizer_variables"]["adam"];
  adam["iteration"] = leaf("adam/iteration", rank0(m.iterations));
  adam["learning_rate"] = leaf("adam/learning_rate", rank0(m.learning_rate));
  for (const auto& [name, s] : m.slots) {
    const dense_layer& l = name.rfind("dense_1", 0) == 0 ? m.l1 : m.l2;
    const cairn::shape sh = name.find("kernel") != std::string::npos ? cairn::shape{l.in, l.out} : cairn::shape{l.out};
    adam[name + "_momentum"] = leaf("adam/" + name + "_momentum", to_array(s.m, sh));
    adam[name + "_velocity"] = leaf("adam/" + name + "_velocity", to_array(s.v, sh));
  }
  t["metrics_variables"]["loss"]["total"] = leaf("loss/total", rank0(m.loss_total));
  t["metrics_variables"]["loss"]["count"] = leaf("loss/count", rank0(m.loss_count));
  return t;
}

// Sets a model from a loaded `pytree` item (arrays, or sharded arrays gathered).
void set_state(model& m, const cairn::dynamic_tree& t) {
  auto arr = [](const cairn::dynamic_tree& n) { return n.type() == cairn::dynamic_tree::kind::sharded ? n.as_sharded().gather() : n.as_array(); };
  for (dense_layer* l : {&m.l1, &m.l2}) {
    l->kernel = from_array(arr(t.at(cairn::key_path{cairn::key("trainable_variables"), cairn::key(l->name), cairn::key("kernel")})));
    l->bias = from_array(arr(t.at(cairn::key_path{cairn::key("trainable_variables"), cairn::key(l->name), cairn::key("bias")})));
  }
  const auto& adam = t.at(cairn::key_path{cairn::key("optimizer_variables"), cairn::key("adam")});
  std::int32_t it = 0;
  std::memcpy(&it, arr(adam.at(cairn::key("iteration"))).bytes().data(), sizeof it);
  m.iterations = it;
  for (auto& [name, s] : m.slots) {
    s.m = from_array(arr(adam.at(cairn::key(name + "_momentum"))));
    s.v = from_array(arr(adam.at(cairn::key(name + "_velocity"))));
  }
}

// The model's Keras config (what `saving_lib._serialize_model_as_json` writes for this architecture).
std::string keras_config() {
  auto dense = [](const char* name, int units, const char* activation, int in, const char* from) {
    return std::string(R"({"module": "keras.layers", "class_name": "Dense", "config": {"name": ")") + name +
           R"(", "trainable": true, "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null}, "units": )" +
           std::to_string(units) + R"(, "activation": ")" + activation +
           R"(", "use_bias": true, "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null, "input_axes": null, "output_axes": null}, "registered_name": null}, "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null}, "kernel_regularizer": null, "bias_regularizer": null, "kernel_constraint": null, "bias_constraint": null, "quantization_config": null}, "registered_name": null, "build_config": {"input_shape": [null, )" +
           std::to_string(in) + R"(]}, "name": ")" + name +
           R"(", "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"shape": [null, )" + std::to_string(in) +
           R"(], "dtype": "float32", "keras_history": [")" + from + R"(", 0, 0]}}], "kwargs": {}}]})";
  };
  return std::string(R"({"module": "keras.src.models.functional", "class_name": "Functional", "config": {"name": "functional", "trainable": true, "layers": [)") +
         R"({"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [null, 32], "dtype": "float32", "sparse": false, "ragged": false, "name": "input_layer", "optional": false}, "registered_name": null, "name": "input_layer", "inbound_nodes": []}, )" +
         dense("dense_1", 64, "relu", 32, "input_layer") + ", " + dense("dense_2", 1, "linear", 64, "dense_1") +
         R"(], "input_layers": ["input_layer", 0, 0], "output_layers": ["dense_2", 0, 0]}, "registered_name": "Functional", "build_config": {"input_shape": null}, )"
         R"("compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.0010000000474974513, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}, "registered_name": null}, "loss": "mse", "loss_weights": null, "metrics": null, "weighted_metrics": null, "run_eagerly": false, "steps_per_execution": 1, "jit_compile": true}})";
}

// Keras's fit(): batches of 32, validation split from the end, logs per epoch, callback hooks.
void fit(model& m, const std::vector<float>& x, const std::vector<float>& y, int epochs, int initial_epoch, double validation_split,
         cairn::orbax_checkpoint* cb) {
  const std::size_t rows = y.size();
  const std::size_t train = validation_split > 0 ? static_cast<std::size_t>(static_cast<double>(rows) * (1 - validation_split)) : rows;
  const std::size_t batches = (train + 31) / 32;
  for (int epoch = initial_epoch; epoch < epochs; ++epoch) {
    m.loss_total = m.loss_count = 0;
    for (std::size_t b = 0; b < batches; ++b) {
      m.train_step(x, y, b * 32, std::min(train, (b + 1) * 32));
      if (cb) cb->on_train_batch_end(static_cast<std::int64_t>(b), {{"loss", m.loss_total / m.loss_count}});
    }
    cairn::training_logs logs{{"loss", m.loss_total / m.loss_count}};
    std::printf("Epoch %d/%d\n%zu/%zu - loss: %.4f", epoch + 1, epochs, batches, batches, logs["loss"]);
    if (train < rows) {
      logs["val_loss"] = m.mse(x, y, train, rows);
      std::printf(" - val_loss: %.4f", logs["val_loss"]);
    }
    std::printf("\n");
    if (cb) cb->on_epoch_end(epoch, logs);
  }
  if (cb) cb->on_train_end();
}

void listing(const fs::path& root) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  std::printf("%s:", root.string().c_str());
  for (const auto& n : names) std::printf(" %s", n.c_str());
  std::printf("\n");
}

cairn::callback_model binding(model& m, std::function<cairn::dynamic_tree(const std::string&, cairn::host_array)> place = {}) {
  return {[&m, place](bool weights_only) { return state_tree(m, weights_only, place); }, [] { return keras_config(); },
          [&m] { return static_cast<std::int64_t>(m.iterations); }};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const fs::path out = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "cairn_keras_tutorial";
    fs::remove_all(out);
    fs::create_directories(out);
    std::mt19937 rng(1234);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    std::vector<float> x_train(256 * 32), y_train(256);
    for (auto& v : x_train) v = u(rng);
    for (auto& v : y_train) v = u(rng);

    std::printf("== 1. Basic usage: save every epoch, max_to_keep=3 ==\n");
    model m(1);
    const fs::path basic = out / "orbax_ckpt_basic";
    {
      cairn::orbax_checkpoint cb({.directory = basic, .max_to_keep = 3}, binding(m));
      fit(m, x_train, y_train, 3, 0, 0.2, &cb);
    }
    listing(basic);

    std::printf("\n== 2. Loading: the full model, and weights into a fresh model ==\n");
    model loaded(99);
    const auto items = cairn::load_model_state(basic);
    set_state(loaded, items.at("pytree"));
    std::printf("Loaded model from step %lld: %d optimizer iterations, model_config of %zu bytes\n",
                static_cast<long long>(cairn::list_steps(basic).back().step), loaded.iterations,
                items.at("model_config").at(cairn::key("config")).as_string().size());
    model fresh(7);
    using weights_t = std::map<std::string, std::map<std::string, std::map<std::string, cairn::host_array>>>;
    weights_t weights;
    for (const dense_layer* l : {&fresh.l1, &fresh.l2}) {
      weights["trainable_variables"][l->name]["kernel"] = to_array(l->kernel, cairn::shape{l->in, l->out});
      weights["trainable_variables"][l->name]["bias"] = to_array(l->bias, cairn::shape{l->out});
    }
    cairn::load_weights(basic, weights);
    bool match = true;
    for (const dense_layer* l : {&m.l1, &m.l2})
      match = match && from_array(weights["trainable_variables"][l->name]["kernel"]) == l->kernel &&
              from_array(weights["trainable_variables"][l->name]["bias"]) == l->bias;
    std::printf("%s\n", match ? "Weights match!" : "Weights differ!");
    if (!match) return 1;

    std::printf("\n== 3. Resume training: initial_epoch=3, max_to_keep=5 ==\n");
    {
      model resumed(5);
      set_state(resumed, cairn::load_model_state(basic).at("pytree"));
      cairn::orbax_checkpoint cb({.directory = basic, .max_to_keep = 5}, binding(resumed));
      fit(resumed, x_train, y_train, 5, 3, 0.2, &cb);
    }
    listing(basic);

    std::printf("\n== 4. save_best_only on val_loss, max_to_keep=1 ==\n");
    const fs::path best = out / "orbax_ckpt_best";
    {
      model b(2);
      cairn::orbax_checkpoint cb({.directory = best, .monitor = "val_loss", .save_best_only = true, .max_to_keep = 1, .verbose = 1},
                                 binding(b));
      fit(b, x_train, y_train, 5, 0, 0.2, &cb);
      std::printf("best val_loss %.4f at step %lld\n", cb.best().value_or(0), static_cast<long long>(cb.manager().latest_step().value_or(-1)));
    }
    listing(best);

    std::printf("\n== 5. save_freq=4 batches: 2 epochs x 8 batches, max_to_keep=3 ==\n");
    const fs::path batches = out / "orbax_ckpt_batches";
    {
      model b(3);
      cairn::orbax_checkpoint cb({.directory = batches, .save_freq = 4, .max_to_keep = 3}, binding(b));
      fit(b, x_train, y_train, 2, 0, 0.0, &cb);
    }
    listing(batches);

    std::printf("\n== 6. Distributed: a 2x2 CPU mesh, dense_1/kernel P(-, model), max_to_keep=2 ==\n");
    const cairn::host_devices cpu(4);
    const cairn::device_mesh mesh = cpu.mesh({{"data", 2}, {"model", 2}});
    const cairn::named_sharding kernel_layout(mesh, cairn::partition_spec{cairn::replicated, "model"});
    const cairn::named_sharding replicated(mesh, cairn::partition_spec{});
    const fs::path dist = out / "orbax_ckpt_distributed";
    {
      model d(4);
      auto place = [&](const std::string& path, cairn::host_array a) {
        return cairn::dynamic_tree(cpu.put(a.view(), path == "dense_1/kernel" ? kernel_layout : replicated));
      };
      cairn::orbax_checkpoint cb({.directory = dist, .max_to_keep = 2}, binding(d, place));
      fit(d, x_train, y_train, 3, 0, 0.2, &cb);
    }
    listing(dist);
    using sharded_t = std::map<std::string, std::map<std::string, cairn::sharded_array>>;
    std::map<std::string, sharded_t> saved_layout{{"trainable_variables", {}}};
    cairn::restore_options weights_only;
    weights_only.item = "pytree";
    weights_only.partial = true;
    cairn::restore(dist, saved_layout, weights_only);
    std::printf("Loaded shardings (as saved):\n");
    for (const auto& [layer, vars] : saved_layout["trainable_variables"])
      for (const auto& [name, a] : vars)
        std::printf("  %s/%s: %s\n", layer.c_str(), name.c_str(), cairn::to_string(a.sharding(), a.type(), a.shape()).c_str());
    std::map<std::string, sharded_t> resharded;
    resharded["trainable_variables"]["dense_1"]["kernel"] =
        cairn::sharded_array::placed(cairn::named_sharding(mesh, cairn::partition_spec{"data", cairn::replicated}));
    cairn::restore(dist, resharded, weights_only);
    const auto& k = resharded["trainable_variables"]["dense_1"]["kernel"];
    std::printf("Resharded load of dense_1/kernel: %s\n", cairn::to_string(k.sharding(), k.type(), k.shape()).c_str());
    for (const auto& s : k.shards()) std::printf("  %s\n", cairn::to_string(s.shard).c_str());
    const auto& orig = saved_layout["trainable_variables"]["dense_1"]["kernel"];
    if (!(k.gather() == orig.gather())) {
      std::printf("Resharded kernel differs!\n");
      return 1;
    }
    std::printf("Resharded kernel matches the saved one.\n");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}

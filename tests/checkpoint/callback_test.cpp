// SPDX-License-Identifier: Apache-2.0
// The OrbaxCheckpoint callback against Keras's behaviour: step numbering by epoch and by batch (resumed
// counts continue), save_best_only with its modes and thresholds, a missing monitored metric, weights
// only, max_to_keep, Keras's layout, and the loading helpers.
#include <cairn/checkpoint/callback.hpp>

#include <doctest/doctest.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

using namespace cairn;

namespace {

struct toy {
  float w = 1.0f;
  std::int64_t iterations = 0;
};

callback_model bind(toy& t) {
  return {[&t](bool weights_only) {
            dynamic_tree s;
            s["trainable_variables"]["dense"]["kernel"] = host_array::from(std::span<const float>(&t.w, 1), shape{1});
            s["non_trainable_variables"] = dynamic_tree(dynamic_tree::map_type{});
            if (!weights_only) {
              const auto it = static_cast<std::int32_t>(t.iterations);
              s["optimizer_variables"]["adam"]["iteration"] = host_array::from(std::span<const std::int32_t>(&it, 1), shape{});
            }
            return s;
          },
          [] { return std::string(R"({"class_name": "Functional"})"); }, [&t] { return t.iterations; }};
}

std::vector<std::int64_t> steps(const std::filesystem::path& root) {
  std::vector<std::int64_t> out;
  for (const auto& s : list_steps(root)) out.push_back(s.step);
  return out;
}

}  // namespace

TEST_CASE("save_freq=epoch: the step is the 0-based epoch; max_to_keep keeps the latest (default 1)") {
  cairn_test::temp_dir dir;
  toy t;
  {
    orbax_checkpoint cb({.directory = dir.path()}, bind(t));
    for (int e = 0; e < 3; ++e) {
      t.w += 1;
      cb.on_epoch_end(e, {{"loss", 1.0}});
    }
    cb.on_train_end();
  }
  CHECK(steps(dir.path()) == std::vector<std::int64_t>{2});
  // Keras's layout: pytree + model_config, item handlers named.
  const auto items = load_model_state(dir.path());
  CHECK(items.count("pytree") == 1);
  CHECK(items.at("model_config").at(key("config")).as_string() == R"({"class_name": "Functional"})");
  CHECK(items.at("pytree").at(key_path{key("trainable_variables"), key("dense"), key("kernel")}).as_array().bytes().size() == 4);
}

TEST_CASE("save_freq=N batches: the step is the global batch count, and it continues on resume") {
  cairn_test::temp_dir dir;
  toy t;
  {
    orbax_checkpoint cb({.directory = dir.path(), .save_freq = 4, .max_to_keep = 3}, bind(t));
    for (int epoch = 0; epoch < 2; ++epoch)
      for (int b = 0; b < 8; ++b) {
        ++t.iterations;
        cb.on_train_batch_end(b);
      }
    cb.on_train_end();
  }
  CHECK(steps(dir.path()) == std::vector<std::int64_t>{8, 12, 16});
  {
    orbax_checkpoint cb({.directory = dir.path(), .save_freq = 4, .max_to_keep = 3}, bind(t));  // iterations = 16
    for (int b = 0; b < 8; ++b) cb.on_train_batch_end(b);
    cb.on_train_end();
  }
  CHECK(steps(dir.path()) == std::vector<std::int64_t>{16, 20, 24});
}

TEST_CASE("save_best_only: saves on improvement only; auto mode minimises losses; initial_value_threshold") {
  cairn_test::temp_dir dir;
  toy t;
  std::ostringstream log;
  orbax_checkpoint cb({.directory = dir.path(), .save_best_only = true, .max_to_keep = 5, .verbose = 1, .log = &log}, bind(t));
  const std::vector<double> val{0.5, 0.6, 0.4, 0.4, 0.3};
  for (int e = 0; e < 5; ++e) cb.on_epoch_end(e, {{"val_loss", val[static_cast<std::size_t>(e)]}});
  cb.on_train_end();
  CHECK(steps(dir.path()) == std::vector<std::int64_t>{0, 2, 4});
  CHECK(cb.best() == 0.3);
  CHECK(log.str().find("epoch 1: val_loss did not improve from 0.5 (0.6), not saving") != std::string::npos);
  CHECK(log.str().find("step 2: staged ") != std::string::npos);

  cairn_test::temp_dir dir2;
  orbax_checkpoint acc({.directory = dir2.path(), .monitor = "val_accuracy", .save_best_only = true, .max_to_keep = 5,
                        .initial_value_threshold = 0.7},
                       bind(t));
  const std::vector<double> a{0.6, 0.8, 0.75, 0.9};
  for (int e = 0; e < 4; ++e) acc.on_epoch_end(e, {{"val_accuracy", a[static_cast<std::size_t>(e)]}});
  acc.on_train_end();
  CHECK(steps(dir2.path()) == std::vector<std::int64_t>{1, 3});

  cairn_test::temp_dir dir3;
  CHECK_THROWS_WITH_AS(orbax_checkpoint({.directory = dir3.path(), .monitor = "f2", .save_best_only = true}, bind(t)),
                       doctest::Contains("cannot determine whether it should be maximized or minimized"), error);
}

TEST_CASE("a missing monitored metric warns and does not save") {
  cairn_test::temp_dir dir;
  toy t;
  std::ostringstream log;
  orbax_checkpoint cb({.directory = dir.path(), .save_best_only = true, .log = &log}, bind(t));
  cb.on_epoch_end(0, {{"loss", 0.3}});
  cb.on_train_end();
  CHECK(steps(dir.path()).empty());
  CHECK(log.str() == "UserWarning: Can save best model only with val_loss available, skipping save at epoch 0.\n");
}

TEST_CASE("save_weights_only: trainable and non-trainable variables, no model_config; load_weights") {
  cairn_test::temp_dir dir;
  toy t;
  t.w = 42;
  {
    orbax_checkpoint cb({.directory = dir.path(), .save_on_background = false, .save_weights_only = true}, bind(t));
    cb.on_epoch_end(0);
  }
  const auto items = load_model_state(dir.path());
  CHECK(items.count("model_config") == 0);
  const auto& tree = items.at("pytree");
  CHECK(tree.as_map().count("optimizer_variables") == 0);
  CHECK(tree.as_map().count("non_trainable_variables") == 1);
  std::map<std::string, std::map<std::string, std::map<std::string, host_array>>> weights;
  weights["trainable_variables"]["dense"]["kernel"] = host_array(dtype::float32, shape{1});
  load_weights(dir.path(), weights);
  float w = 0;
  std::memcpy(&w, weights["trainable_variables"]["dense"]["kernel"].bytes().data(), 4);
  CHECK(w == 42);
  weights["trainable_variables"]["dense_9"]["kernel"] = host_array(dtype::float32, shape{1});
  CHECK_THROWS_WITH_AS(load_weights(dir.path(), weights), doctest::Contains("the checkpoint lacks \"trainable_variables.dense_9.kernel\""),
                       error);
}

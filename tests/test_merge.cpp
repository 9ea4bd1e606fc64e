// merge/: WiSE-FT and task arithmetic of tiny checkpoints against the formulas computed here,
// and the refusals (another architecture, added modules, an existing output), which must leave
// an existing output untouched.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>

#include "core/file_io.h"
#include "formats/safetensors.h"
#include "merge/merge.h"
#include "model/checkpoint.h"
#include "test_util.h"

using namespace gemkit;
using gemkit::test::expect_error;
using gemkit::test::temp_folder;
using gemkit::test::tiny_decoder_config;

namespace {

// A tiny decoder with seeded random weights saved as a checkpoint; returns its folder.
std::string saved_model(const std::string& name, int seed, const ModelConfig& config = tiny_decoder_config()) {
  torch::manual_seed(seed);
  Transformer m(config);
  TensorDtypes dtypes;
  for (const auto& p : m->named_parameters()) dtypes[p.key()] = DType::F32;
  const std::string dir = temp_folder("merge", name);
  SaveOptions o;
  o.overwrite = true;
  save_pretrained(m, dtypes, dir, o);
  write_text_file_atomic(dir + "/tokenizer.json", "{}");  // carried over to the merged folder, not read
  return dir;
}

std::map<std::string, torch::Tensor> weights(const std::string& dir) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : load_pretrained(dir).model->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

}  // namespace

TEST(Merge, WiseFtAndTaskArithmeticFollowTheirFormulas) {
  const std::string base = saved_model("base", 1), ft1 = saved_model("ft1", 2), ft2 = saved_model("ft2", 3);
  const std::string out = temp_folder("merge", "out") + "/wise";
  merge_checkpoints({base, {ft1}, 0.25, out, false});
  const auto w0 = weights(base), w1 = weights(ft1), w2 = weights(ft2), wise = weights(out);
  ASSERT_EQ(wise.size(), w0.size());
  for (const auto& [name, t] : wise)
    EXPECT_TRUE(torch::allclose(t, 0.75 * w0.at(name) + 0.25 * w1.at(name), 1e-6, 1e-7)) << name;

  const std::string ta = temp_folder("merge", "ta") + "/sum";
  merge_checkpoints({base, {ft1, ft2}, 0.5, ta, false});
  for (const auto& [name, t] : weights(ta))
    EXPECT_TRUE(torch::allclose(t, w0.at(name) + 0.5 * ((w1.at(name) - w0.at(name)) + (w2.at(name) - w0.at(name))),
                                1e-6, 1e-7))
        << name;
  EXPECT_TRUE(file_exists(out + "/config.json"));
}

TEST(Merge, RefusalsNameTheProblemAndKeepTheOutput) {
  const std::string base = saved_model("rbase", 1), ft = saved_model("rft", 2);
  const std::string out = temp_folder("merge", "rout") + "/merged";
  merge_checkpoints({base, {ft}, 0.5, out, false});
  const std::string before = read_text_file(out + "/config.json");

  expect_error([&] { merge_checkpoints({base, {ft}, 0.5, out, false}); }, {out, "exists already", "--force"});
  const std::string wider = saved_model("wider", 2, tiny_decoder_config(3));
  expect_error([&] { merge_checkpoints({base, {wider}, 0.5, out, true}); },
               {wider + "/config.json", "different architecture"});
  const std::string routed = saved_model("routed", 2);
  write_text_file_atomic(routed + "/" + kExtraTensorsFile, "not read");
  expect_error([&] { merge_checkpoints({base, {routed}, 0.5, out, true}); }, {routed, "extra.safetensors", "dense"});
  // Nothing above touched the earlier result, and no temporary folder is left beside it.
  EXPECT_EQ(read_text_file(out + "/config.json"), before);
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(out).parent_path())) ++entries, (void)e;
  EXPECT_EQ(entries, 1u);
}

// TIES by hand on three task vectors of four entries, density 0.5 (two entries kept in each):
//   tau1 = [ 3, -1,  0.5, -4]  -> trimmed [ 3, 0, 0, -4]
//   tau2 = [-2,  1,  5,   -1]  -> trimmed [-2, 0, 5,  0]
//   tau3 = [ 1, -6, -1,    2]  -> trimmed [ 0,-6, 0,  2]
//   signs of the sums [1, -6, 5, -2] -> [+, -, +, -]; agreeing means: [3, -6, 5, -4]
TEST(Merge, TiesTrimsElectsSignAndAveragesTheAgreeingValues) {
  const std::vector<torch::Tensor> taus = {torch::tensor({3.0f, -1.0f, 0.5f, -4.0f}), torch::tensor({-2.0f, 1.0f, 5.0f, -1.0f}),
                                           torch::tensor({1.0f, -6.0f, -1.0f, 2.0f})};
  EXPECT_TRUE(torch::equal(ties_delta(taus, 0.5), torch::tensor({3.0f, -6.0f, 5.0f, -4.0f})));
  // Density 1 keeps everything: signs of [2, -6, 4.5, -3]; agreeing means [(3 + 1) / 2, (-1 - 6) / 2, (0.5 + 5) / 2, (-4 - 1) / 2].
  EXPECT_TRUE(torch::allclose(ties_delta(taus, 1.0), torch::tensor({2.0f, -3.5f, 2.75f, -2.5f})));
  expect_error([&] { ties_delta(taus, 0); }, {"density", "(0, 1]"});

  // Through checkpoints: theta0 + lambda * ties(theta_i - theta0), tensor by tensor.
  const std::string base = saved_model("tbase", 1), ft1 = saved_model("tft1", 2), ft2 = saved_model("tft2", 3);
  const std::string out = temp_folder("merge", "ties") + "/ties";
  MergeOptions o{base, {ft1, ft2}, 0.8, out, false};
  o.method = MergeMethod::Ties;
  o.density = 0.3;
  merge_checkpoints(o);
  const auto w0 = weights(base), w1 = weights(ft1), w2 = weights(ft2);
  for (const auto& [name, t] : weights(out))
    EXPECT_TRUE(torch::allclose(t, w0.at(name) + 0.8 * ties_delta({w1.at(name) - w0.at(name), w2.at(name) - w0.at(name)}, 0.3),
                                1e-6, 1e-7))
        << name;
}

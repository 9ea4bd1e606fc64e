// Dense exports of a routed GEM checkpoint (docs/design/gem-method.md section 8): the SCAR expert
// merged in float equals the routed model with every token forced to that expert; each expert
// as a PEFT adapter equals it too; the Hugging Face folder loads back to the same model.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>

#include "export/dense_model.h"
#include "export/peft_experts.h"
#include "export/peft_export.h"
#include "export/torchscript_export.h"
#include "formats/safetensors.h"
#include "model/checkpoint.h"
#include "routing/gem_modules.h"
#include "test_util.h"
#include "tests/scar_test_util.h"

using namespace gemkit;

namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// A routed checkpoint folder (base weights, gem.json, extra.safetensors) with random experts;
// returns the logits of `ids` with every token forced to `expert`.
torch::Tensor write_routed_checkpoint(const std::string& dir, const torch::Tensor& ids, const std::string& expert) {
  torch::manual_seed(21);
  Transformer m(test::tiny_decoder_config(3));
  m->eval();
  save_pretrained(m, {}, dir);
  GemConfig g;
  g.scar = true;
  g.scar_options = test::two_scar_experts();
  g.dtr = true;  // dropped by dense exports
  GemModules gem(m, g);
  test::randomise_experts(*gem.scar());
  torch::NoGradGuard no_grad;
  gem.save(dir);
  // The dense reference: DTR off (base blocks), every token to the expert.
  for (int64_t i = 0; i < m->num_blocks(); ++i) m->set_block(i, nullptr);
  gem.scar()->set_forced_expert(gem.scar()->expert_index(expert));
  return m->forward(ids).logits.detach();
}

}  // namespace

TEST(DenseExport, MergedExpertEqualsTheForcedExpert) {
  const std::string dir = test::temp_folder("gemkit_export", "routed");
  const torch::Tensor ids = torch::randint(50, {2, 9});
  const torch::Tensor want = write_routed_checkpoint(dir, ids, "law");
  DenseModel dense = load_dense_model(dir, "law");
  EXPECT_EQ(dense.provenance.at("merged_domain"), "law");
  EXPECT_EQ(dense.notes.size(), 2u);  // merged expert, DTR dense
  torch::NoGradGuard no_grad;
  dense.pre.model->eval();
  const torch::Tensor got = dense.pre.model->forward(ids).logits;
  EXPECT_LT(max_abs_diff(got, want), 1e-5);
  // The Hugging Face folder of the dense model loads back to the same function.
  const std::string hf = test::temp_folder("gemkit_export", "hf");
  SaveOptions so;
  so.overwrite = true;
  save_pretrained(dense.pre.model, dense.pre.dtypes, hf, so);
  Pretrained back = load_pretrained(hf);
  back.model->eval();
  EXPECT_LT(max_abs_diff(back.model->forward(ids).logits, got), 1e-6);

  test::expect_error([&] { load_dense_model(dir, ""); }, {dir, "--domain", "law", "finance"});
  test::expect_error([&] { load_dense_model(dir, "tax"); }, {dir, "tax"});
}

TEST(DenseExport, EachExpertAsAPeftAdapterEqualsTheForcedExpert) {
  const std::string dir = test::temp_folder("gemkit_export", "routed_peft");
  const torch::Tensor ids = torch::randint(50, {2, 9});
  const torch::Tensor want = write_routed_checkpoint(dir, ids, "finance");
  const std::string out = test::temp_folder("gemkit_export", "peft");
  const auto folders = export_scar_experts_as_peft(dir, out, "base", false);
  ASSERT_EQ(folders.size(), 2u);  // law, finance (not general)
  Pretrained base = load_pretrained(dir);
  base.model->eval();
  LoraAdapters adapters = load_peft_adapter(base.model, out + "/finance");
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_abs_diff(base.model->forward(ids).logits, want), 1e-5);
  test::expect_error([&] { export_scar_experts_as_peft(dir, out, "base", false); }, {"already holds a PEFT adapter"});
  const std::string plain = test::temp_folder("gemkit_export", "plain");
  save_pretrained(Transformer(test::tiny_decoder_config(2)), {}, plain);
  test::expect_error([&] { export_scar_experts_as_peft(plain, out, "base", true); }, {plain, "no SCAR experts"});
}

TEST(TorchScriptExport, BothLoadersReproduceTheForward) {
  const std::string dir = test::temp_folder("gemkit_export", "torchscript");
  for (int variant = 0; variant < 2; ++variant) {
    ModelConfig c = test::tiny_decoder_config(2);
    c.tie_word_embeddings = variant == 0;  // tied, GQA 4/2
    c.attention_bias = variant == 1;        // untied with q/k/v biases (Qwen2-style)
    if (variant == 1) c.num_key_value_heads = 4;
    torch::manual_seed(40 + variant);
    Transformer m(c);
    m->eval();
    {
      torch::NoGradGuard no_grad;
      for (auto& p : m->parameters()) p.add_(torch::randn_like(p) * 0.05);  // biases and norms non-trivial
    }
    const std::string path = dir + "/m" + std::to_string(variant) + ".pt";
    export_torchscript(m, path, false);
    const torch::Tensor ids = torch::randint(c.vocab_size, {2, 13});
    torch::NoGradGuard no_grad;
    const torch::Tensor want = m->forward(ids).logits;
    torch::jit::Module loaded = torch::jit::load(path);
    const torch::Tensor got = loaded.forward({ids}).toTensor();
    EXPECT_LT(max_abs_diff(got, want), 1e-5) << "variant " << variant;
    // Python's loader (torch 1.13 from Debian): same logits.
    std::ofstream(dir + "/ids.bin", std::ios::binary).write(reinterpret_cast<const char*>(ids.data_ptr<int64_t>()), ids.numel() * 8);
    const torch::Tensor w = want.contiguous();
    std::ofstream(dir + "/want.bin", std::ios::binary).write(reinterpret_cast<const char*>(w.data_ptr<float>()), w.numel() * 4);
    const std::string script =
        "import sys, torch\n"
        "m = torch.jit.load(sys.argv[1])\n"
        "ids = torch.frombuffer(bytearray(open(sys.argv[2], 'rb').read()), dtype=torch.int64).view(2, 13)\n"
        "want = torch.frombuffer(bytearray(open(sys.argv[3], 'rb').read()), dtype=torch.float32).view(2, 13, -1)\n"
        "d = (m(ids) - want).abs().max().item()\n"
        "print('max abs diff', d)\n"
        "sys.exit(0 if d < 1e-5 else 1)\n";
    std::ofstream(dir + "/check.py") << script;
    const std::string cmd = std::string(GEMKIT_TORCH_PYTHON) + " " + dir + "/check.py " + path + " " + dir + "/ids.bin " + dir + "/want.bin";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  test::expect_error([&] { export_torchscript(Transformer(test::tiny_decoder_config(2)), dir + "/m0.pt", false); },
                     {"m0.pt", "exists"});
}

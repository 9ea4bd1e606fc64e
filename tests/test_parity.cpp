// Reference parity (llm.c style): a small random model of each family is written to disk, an
// independent Python implementation written from the math (tests/reference/reference_model.py,
// Debian's python3-torch 1.13) computes logits, loss, every gradient and 10 AdamW steps, and
// gemkit must agree: logits within 1e-4 relative, gradients within 1e-3 relative, all losses
// within 1e-4.
//
// The C++ side writes and reads the safetensors files with formats/safetensors.h and
// model/state_dict.h; the reference reads and writes them with its own stdlib code.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "formats/safetensors.h"
#include "model/state_dict.h"
#include "model/transformer.h"

#ifndef GEMKIT_TORCH_PYTHON
#define GEMKIT_TORCH_PYTHON "/usr/bin/python3"
#endif

using namespace gemkit;
using json = nlohmann::json;

// ----- safetensors I/O through gemkit's own reader and writer ------------------------------
// (The Python reference keeps an independent stdlib reader: a format bug cannot hide in both.)

static void add_tensor(SafetensorsWriter& writer, const std::string& name, const torch::Tensor& t) {
  auto stored = std::make_shared<torch::Tensor>(t.detach().contiguous().cpu());
  writer.add(name, to_safetensors_dtype(stored->scalar_type(), name), stored->sizes().vec(),
             stored->data_ptr(), stored->nbytes(), stored);
}

static std::map<std::string, torch::Tensor> read_safetensors(const std::string& path) {
  const SafetensorsFile file(path);  // validates sizes and offsets against the header
  std::map<std::string, torch::Tensor> out;
  for (const TensorView& view : file.tensors()) out[view.name] = to_tensor(view);
  return out;
}

// ----- the reference process ---------------------------------------------------------------

static std::string temp_dir() {
  static const std::string dir = [] {
    std::string d = ::testing::TempDir() + "gemkit_parity_" + std::to_string(::getpid());
    std::string cmd = "mkdir -p '" + d + "'";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("cannot create " + d);
    return d;
  }();
  return dir;
}

// Fails the test (never skips) when the reference interpreter cannot run.
static void require_reference_python() {
  const std::string py = GEMKIT_TORCH_PYTHON;
  ASSERT_EQ(::access(py.c_str(), X_OK), 0)
      << "the parity reference needs " << py
      << " (CMake cache GEMKIT_TORCH_PYTHON); install Debian's python3 and python3-torch";
  const std::string cmd = "'" + py + "' -c 'import torch, numpy' > /dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0)
      << py << " cannot import torch (and numpy): install Debian's python3-torch";
}

static double rel_error(const torch::Tensor& got, const torch::Tensor& want) {
  auto g = got.detach().to(torch::kFloat64), w = want.to(torch::kFloat64);
  // Floor: a gradient that is zero in exact arithmetic (a key bias: softmax ignores a constant
  // shift) is rounding noise on both sides.
  const double scale = std::max(w.abs().max().item<double>(), 1e-6);
  return (g - w).abs().max().item<double>() / scale;
}

struct Case {
  std::string label;
  ModelConfig config;
  bool pad_left = false, pad_right = false;
};

static ModelConfig base_config(Family family, Head head) {
  ModelConfig c;
  c.family = family;
  c.head = head;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.max_position_embeddings = 16;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.layer_norm_eps = 1e-12;
  c.hidden_act = family == Family::Decoder ? "silu" : "gelu";
  c.num_labels = 3;
  return c;
}

static json config_json(const ModelConfig& c, const json& adamw) {
  const char* head = c.head == Head::CausalLM ? "causal_lm"
                     : c.head == Head::MaskedLM ? "masked_lm"
                                                : "classification";
  return {{"family", c.family == Family::Decoder ? "decoder" : "encoder"},
          {"head", head},
          {"num_hidden_layers", c.num_hidden_layers},
          {"hidden_size", c.hidden_size},
          {"num_attention_heads", c.num_attention_heads},
          {"num_key_value_heads", c.num_key_value_heads},
          {"head_dim", c.head_dim()},
          {"rope_scaling",
           {{"type", c.rope_scaling.type},
            {"factor", c.rope_scaling.factor},
            {"low_freq_factor", c.rope_scaling.low_freq_factor},
            {"high_freq_factor", c.rope_scaling.high_freq_factor},
            {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}}},
          {"rms_norm_eps", c.rms_norm_eps},
          {"rope_theta", c.rope_theta},
          {"layer_norm_eps", c.layer_norm_eps},
          {"tie_word_embeddings", c.tie_word_embeddings},
          {"bert_prefix", c.bert_prefix},
          {"adamw", adamw}};
}

static void run_parity(const Case& fam, uint64_t seed) {
  require_reference_python();
  if (::testing::Test::HasFatalFailure()) return;
  torch::manual_seed(seed);
  const ModelConfig& c = fam.config;
  Transformer model(c);

  // Inputs: B = 2 rows of T = 8 tokens; row 1 padded by 3 when the family asks for it.
  const int64_t B = 2, T = 8, pad = 3;
  auto ids = torch::randint(1, c.vocab_size, {B, T});
  auto mask = torch::ones({B, T}, torch::kInt64);
  if (fam.pad_left) mask[1].narrow(0, 0, pad).zero_();
  if (fam.pad_right) mask[1].narrow(0, T - pad, pad).zero_();
  ids = ids * mask;  // pad id 0
  auto token_types = torch::zeros({B, T}, torch::kInt64);
  token_types[0].narrow(0, T / 2, T / 2).fill_(1);
  torch::Tensor labels;
  if (c.head == Head::SequenceClassification) {
    labels = torch::tensor({2, 0});
  } else if (c.head == Head::CausalLM) {
    labels = ids.masked_fill(mask == 0, -100);
    // The first real token of a left-padded row is predicted from a padding position, whose
    // output is meaningless: leave it out of the loss (as its gradient would be).
    if (fam.pad_left) labels[1][pad] = -100;
  } else {  // masked LM: about a third of the real tokens carry a label
    labels = torch::full({B, T}, -100, torch::kInt64);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = b; t < T; t += 3)
        if (mask[b][t].item<int64_t>()) labels[b][t] = ids[b][t];
  }

  const json adamw = {{"lr", 1e-2}, {"beta1", 0.9}, {"beta2", 0.95}, {"eps", 1e-8},
                      {"weight_decay", 0.1}, {"steps", 10}};
  const std::string dir = temp_dir() + "/" + fam.label;
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  {
    std::ofstream(dir + "/config.json") << config_json(c, adamw).dump(2);
    SafetensorsWriter weights;
    add_state_dict(weights, *model, /*dtypes=*/{}, DType::F32);
    weights.write(dir + "/model.safetensors");
    SafetensorsWriter inputs;
    add_tensor(inputs, "input_ids", ids);
    add_tensor(inputs, "attention_mask", mask);
    add_tensor(inputs, "token_type_ids", token_types);
    add_tensor(inputs, "labels", labels);
    inputs.write(dir + "/inputs.safetensors");
  }
  const std::string cmd = "'" GEMKIT_TORCH_PYTHON "' '" GEMKIT_SOURCE_DIR
                          "/tests/reference/reference_model.py' '" + dir + "/config.json' '" + dir +
                          "/model.safetensors' '" + dir + "/inputs.safetensors' '" + dir +
                          "/reference.safetensors' > '" + dir + "/reference.log' 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    std::ifstream log(dir + "/reference.log");
    std::stringstream ss;
    ss << log.rdbuf();
    FAIL() << "reference_model.py failed (" << rc << "):\n" << ss.str();
  }
  auto ref = read_safetensors(dir + "/reference.safetensors");

  // gemkit: the same forward, loss, backward and 10 AdamW steps.
  ForwardOptions options;
  options.attention_mask = fam.pad_left || fam.pad_right ? mask : torch::Tensor();
  options.token_type_ids = token_types;
  torch::optim::AdamW opt(model->parameters(),
                          torch::optim::AdamWOptions(adamw["lr"].get<double>())
                              .betas({adamw["beta1"].get<double>(), adamw["beta2"].get<double>()})
                              .eps(adamw["eps"].get<double>())
                              .weight_decay(adamw["weight_decay"].get<double>()));
  auto ref_losses = ref.at("losses");
  double logits_err = 0, grad_err = 0, loss_err = 0;
  std::string worst_grad;
  for (int64_t step = 0; step < adamw["steps"].get<int64_t>(); ++step) {
    opt.zero_grad();
    auto out = model->forward(ids, options);
    auto loss = model->loss(out, labels);
    loss.backward();
    if (step == 0) {
      auto logits = out.logits.detach(), want = ref.at("logits");
      if (logits.dim() == 3) {  // padding positions carry no meaning: compare real tokens only
        auto keep = mask.to(torch::kBool).unsqueeze(-1).to(torch::kFloat32);
        logits = logits * keep;
        want = want * keep;
      }
      ASSERT_EQ(logits.sizes(), want.sizes());
      logits_err = rel_error(logits, want);
      for (const auto& p : model->named_parameters()) {
        ASSERT_TRUE(ref.count("grad." + p.key())) << "reference has no gradient for " << p.key();
        ASSERT_TRUE(p.value().grad().defined()) << "no gradient for " << p.key();
        const double e = rel_error(p.value().grad(), ref.at("grad." + p.key()));
        if (e > grad_err) grad_err = e, worst_grad = p.key();
      }
    }
    const double want = ref_losses[step].item<double>();
    loss_err = std::max(loss_err, std::abs(loss.item<double>() - want) / std::max(std::abs(want), 1e-8));
    opt.step();
  }
  EXPECT_LT(logits_err, 1e-4) << fam.label;
  EXPECT_LT(grad_err, 1e-3) << fam.label << " worst gradient " << worst_grad;
  EXPECT_LT(loss_err, 1e-4) << fam.label;
  const bool ok = logits_err < 1e-4 && grad_err < 1e-3 && loss_err < 1e-4;
  std::printf("[parity] %-28s %s  logits rel %.2e  grads rel %.2e (%s)  10 AdamW losses rel %.2e\n",
              fam.label.c_str(), ok ? "PASS" : "FAIL", logits_err, grad_err, worst_grad.c_str(),
              loss_err);
}

TEST(Parity, DecoderGqaUntiedLeftPadded) {
  Case f{"decoder_gqa_untied", base_config(Family::Decoder, Head::CausalLM), true, false};
  f.config.num_key_value_heads = 2;
  run_parity(f, 1);
}

TEST(Parity, DecoderQkvBiasTied) {
  Case f{"decoder_qkv_bias_tied", base_config(Family::Decoder, Head::CausalLM)};
  f.config.attention_bias = true;
  f.config.tie_word_embeddings = true;
  f.config.num_key_value_heads = 1;
  run_parity(f, 2);
}

TEST(Parity, DecoderClassification) {
  Case f{"decoder_classification", base_config(Family::Decoder, Head::SequenceClassification),
           false, true};
  f.config.attention_bias = true;
  f.config.num_key_value_heads = 2;
  run_parity(f, 3);
}

TEST(Parity, EncoderMaskedLm) {
  Case f{"encoder_mlm", base_config(Family::Encoder, Head::MaskedLM), false, true};
  run_parity(f, 4);
}

TEST(Parity, EncoderClassification) {
  Case f{"encoder_classification", base_config(Family::Encoder, Head::SequenceClassification),
           false, true};
  f.config.bert_prefix = true;
  run_parity(f, 5);
}

// The scaled-RoPE cases only test something if the scaling changes what parity compares: the
// gradients of the same weights with plain RoPE must differ far beyond the parity tolerance.
// (At the random init the attention is nearly uniform, so the logits move less than the
// gradients of q_proj and k_proj, which is where a wrong rotation shows.)
static void expect_rope_scaling_matters(const ModelConfig& scaled_config) {
  torch::manual_seed(11);
  Transformer scaled(scaled_config);
  ModelConfig plain_config = scaled_config;
  plain_config.rope_scaling = RopeScaling();
  Transformer plain(plain_config);
  {
    torch::NoGradGuard no_grad;
    auto source = scaled->named_parameters();
    for (auto& p : plain->named_parameters()) p.value().copy_(source[p.key()]);
  }
  auto ids = torch::randint(1, scaled_config.vocab_size, {2, 8});
  for (Transformer* m : {&scaled, &plain}) (*m)->loss((*m)->forward(ids), ids).backward();
  double diff = 0;
  auto plain_params = plain->named_parameters();
  for (const auto& p : scaled->named_parameters())
    diff = std::max(diff, rel_error(plain_params[p.key()].grad(), p.value().grad()));
  EXPECT_GT(diff, 1e-2) << "rope scaling " << scaled_config.rope_scaling.type << " barely changes the gradients";
}

// Llama 3.2 layout (tied embeddings, GQA) with llama3 RoPE scaling. theta 100 and head_dim 8
// give wavelengths 2*pi*100^(k/4) = 6.3, 19.9, 62.8, 198.7 against the thresholds
// original_max_position_embeddings / high_freq_factor = 8 and / low_freq_factor = 32: one
// frequency is kept, one interpolated smoothly and two divided by the factor.
TEST(Parity, DecoderLlama3RopeScalingTied) {
  Case f{"decoder_llama3_rope", base_config(Family::Decoder, Head::CausalLM), true, false};
  f.config.num_key_value_heads = 2;
  f.config.tie_word_embeddings = true;
  f.config.rope_theta = 100.0;
  f.config.rope_scaling.type = "llama3";
  f.config.rope_scaling.factor = 8.0;
  f.config.rope_scaling.low_freq_factor = 1.0;
  f.config.rope_scaling.high_freq_factor = 4.0;
  f.config.rope_scaling.original_max_position_embeddings = 32;
  const RopeScaling& s = f.config.rope_scaling;
  int kept = 0, smoothed = 0, divided = 0;
  for (int64_t i = 0; i < f.config.head_dim(); i += 2) {
    const double wavelen = 2 * M_PI * std::pow(f.config.rope_theta, static_cast<double>(i) / f.config.head_dim());
    const double old_context = static_cast<double>(s.original_max_position_embeddings);
    if (wavelen < old_context / s.high_freq_factor) ++kept;
    else if (wavelen > old_context / s.low_freq_factor) ++divided;
    else ++smoothed;
  }
  ASSERT_TRUE(kept > 0 && smoothed > 0 && divided > 0) << kept << " " << smoothed << " " << divided;
  expect_rope_scaling_matters(f.config);
  run_parity(f, 6);
}

// Linear RoPE scaling, and a head_dim of its own (q_proj 32 -> 4 x 16, k/v 32 -> 2 x 16) as
// some Llama/Qwen variants have.
TEST(Parity, DecoderLinearRopeExplicitHeadDim) {
  Case f{"decoder_linear_rope_head_dim", base_config(Family::Decoder, Head::CausalLM), false, true};
  f.config.num_key_value_heads = 2;
  f.config.explicit_head_dim = 16;
  f.config.rope_theta = 100.0;
  f.config.rope_scaling.type = "linear";
  f.config.rope_scaling.factor = 4.0;
  {
    Transformer shapes(f.config);
    auto params = shapes->named_parameters();
    EXPECT_EQ(params["model.layers.0.self_attn.q_proj.weight"].sizes(), torch::IntArrayRef({64, 32}));
    EXPECT_EQ(params["model.layers.0.self_attn.k_proj.weight"].sizes(), torch::IntArrayRef({32, 32}));
    EXPECT_EQ(params["model.layers.0.self_attn.o_proj.weight"].sizes(), torch::IntArrayRef({32, 64}));
  }
  expect_rope_scaling_matters(f.config);
  run_parity(f, 7);
}

#include "quant/qat.h"

#include "quant/fake_quant.h"

namespace gemkit {

torch::Tensor fake_quantize_activations(const torch::Tensor& x) {
  if (x.size(-1) % kQuantBlock != 0) return x;
  const torch::Tensor x32 = x.to(torch::kFloat);
  return fake_quantize(x32, QuantType::Q8_0, "activations").to(x.scalar_type());
}

struct Qat::Hook : LinearHook {
  Hook(QuantType type, bool activations, std::shared_ptr<bool> enabled, std::string name)
      : type(type), activations(activations), enabled(std::move(enabled)), name(std::move(name)) {}
  torch::Tensor transform_input(const torch::Tensor& x) override {
    if (!*enabled || !activations) return x;
    // What llama.cpp's CPU path does to a matmul's input: Q8_0 blocks for block-quantized
    // weights, f16 for f16 weights.
    if (type == QuantType::F16) return fake_quantize(x.to(torch::kFloat), QuantType::F16, name).to(x.scalar_type());
    return fake_quantize_activations(x);
  }
  torch::Tensor transform_weight(const torch::Tensor& w) override {
    return *enabled ? fake_quantize(w, type, name) : w;
  }
  QuantType type;
  bool activations;
  std::shared_ptr<bool> enabled;
  std::string name;
};

Qat::Qat(Transformer model, QatOptions options)
    : model_(std::move(model)), options_(std::move(options)), enabled_(std::make_shared<bool>(true)) {
  for (const std::string& path : model_->linear_paths()) {
    Linear linear = model_->linear(path);
    const std::string name = path + ".weight";
    const QuantType type = options_.policy.type_for(name, linear->weight.sizes().vec());
    if (type == QuantType::F32) continue;
    auto hook = std::make_shared<Hook>(type, options_.activations, enabled_, name);
    // First in the order: adapters added earlier must see the quantized input too.
    std::vector<std::shared_ptr<LinearHook>> others = linear->hooks();
    linear->clear_hooks();
    linear->add_hook(hook);
    for (auto& h : others) linear->add_hook(h);
    linear_hooks_.push_back({linear, hook});
    types_[name] = type;
  }
  for (const auto& item : model_->named_parameters()) {
    if (item.key() != "model.embed_tokens.weight") continue;
    const QuantType type = options_.policy.type_for(item.key(), item.value().sizes().vec());
    if (type == QuantType::F32) break;
    embedding_hook_ = std::make_shared<Hook>(type, options_.activations, enabled_, item.key());
    model_->set_embedding_hook(embedding_hook_);
    types_[item.key()] = type;
  }
}

Qat::~Qat() {
  for (auto& [linear, hook] : linear_hooks_) linear->remove_hook(hook);
  if (embedding_hook_ && model_->embedding_hook() == embedding_hook_) model_->set_embedding_hook(nullptr);
}

void Qat::set_enabled(bool enabled) { *enabled_ = enabled; }
bool Qat::enabled() const { return *enabled_; }

}  // namespace gemkit

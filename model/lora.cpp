#include "model/lora.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <regex>
#include <set>

#include "core/error.h"
#include "formats/safetensors.h"

namespace gemkit {

namespace {

const std::string kWhere = "lora";

bool ends_with_component(const std::string& path, const std::string& name) {
  if (path == name) return true;
  return path.size() > name.size() && path.compare(path.size() - name.size(), name.size(), name) == 0 &&
         path[path.size() - name.size() - 1] == '.';
}

// Output heads: PEFT's "all-linear" leaves the output layer out (it maps to the vocabulary or
// the labels, and adapting it is a different kind of fine-tuning).
bool is_output_head(const std::string& path) {
  return path == "lm_head" || path == "score" || path == "classifier" || path.rfind("cls.predictions.", 0) == 0;
}

std::string peft_prefix(const std::string& path) { return "base_model.model." + path; }

}  // namespace

double LoraOptions::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

bool lora_target_matches(const std::string& pattern, const std::string& path) {
  if (pattern == "all-linear") return !is_output_head(path);
  if (pattern.rfind("re:", 0) == 0) {
    try {
      return std::regex_match(path, std::regex(pattern.substr(3), std::regex::ECMAScript));
    } catch (const std::regex_error& e) {
      fail(kWhere + ".target_modules", "invalid regex \"" + pattern.substr(3) + "\": " + e.what());
    }
  }
  return ends_with_component(path, pattern);
}

std::vector<std::string> lora_select_modules(const Transformer& model,
                                             const std::vector<std::string>& target_modules) {
  if (target_modules.empty()) fail(kWhere + ".target_modules", "empty; name at least one module (e.g. q_proj)");
  std::vector<std::string> selected;
  std::set<std::string> used;
  for (const auto& path : model->linear_paths()) {
    bool hit = false;
    for (const auto& pattern : target_modules) {
      if (lora_target_matches(pattern, path)) {
        hit = true;
        used.insert(pattern);
      }
    }
    if (hit) selected.push_back(path);
  }
  for (const auto& pattern : target_modules) {
    if (!used.count(pattern)) {
      std::string example = model->linear_paths().empty() ? "" : " (e.g. " + model->linear_paths().front() + ")";
      fail(kWhere + ".target_modules",
           "\"" + pattern + "\" matches no linear layer of the model" + example +
               "; use a module name such as q_proj, \"re:<regex>\" or \"all-linear\"");
    }
  }
  return selected;
}

LoraLayer::LoraLayer(LinearImpl* linear, int64_t rank, double scale, double dropout, uint64_t generator_seed)
    : scale(scale), dropout(dropout), linear_(linear),
      generator_(at::make_generator<at::CPUGeneratorImpl>(generator_seed)) {
  const auto& w = linear->weight;
  const int64_t in = linear->in_features();
  // kaiming_uniform_(a = sqrt(5)) on [rank, in]: gain sqrt(2 / (1 + 5)), bound
  // gain * sqrt(3 / fan_in) = 1 / sqrt(in). Drawn on the CPU from the layer's own generator so
  // the values do not depend on the device or on other users of the global RNG.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  torch::Tensor a = torch::empty({rank, in}, torch::kFloat32);
  a.uniform_(-bound, bound, generator_);
  A = a.to(w.device(), w.scalar_type()).set_requires_grad(true);
  B = torch::zeros({linear->out_features(), rank}, w.options()).set_requires_grad(true);
}

torch::Tensor LoraLayer::delta(const torch::Tensor& x) const {
  return torch::matmul(torch::matmul(x, A.t()), B.t()) * scale;
}

torch::Tensor LoraLayer::delta_weight() const {
  torch::NoGradGuard no_grad;
  return torch::matmul(B.to(torch::kFloat32), A.to(torch::kFloat32)) * scale;
}

torch::Tensor LoraLayer::adjust_output(const torch::Tensor& x, const torch::Tensor& y) {
  if (!active) return y;
  torch::Tensor in = x;
  if (dropout > 0 && linear_->is_training()) {
    // Inverted dropout (as nn.Dropout): keep with probability 1 - p, scale by 1 / (1 - p). The
    // mask comes from the layer's CPU generator (seeded, device independent) and is moved.
    torch::Tensor keep = torch::empty(x.sizes(), torch::kFloat32);
    keep.bernoulli_(1.0 - dropout, generator_);
    in = x * (keep.to(x.device(), x.scalar_type()) / (1.0 - dropout));
  }
  return y + delta(in);
}

torch::Tensor LoraLayer::generator_state() const { return generator_.get_state().clone(); }

void LoraLayer::set_generator_state(const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator_.mutex());
  generator_.set_state(state.to(torch::kCPU, torch::kUInt8).contiguous());
}

LoraAdapters LoraAdapters::attach(Transformer& model, const LoraOptions& options) {
  if (options.rank < 1) fail(kWhere + ".rank", "must be >= 1, got " + std::to_string(options.rank));
  if (!(options.alpha > 0) || !std::isfinite(options.alpha))
    fail(kWhere + ".alpha", "must be a positive number, got " + std::to_string(options.alpha));
  if (!(options.dropout >= 0 && options.dropout < 1))
    fail(kWhere + ".dropout", "must be in [0, 1), got " + std::to_string(options.dropout));

  LoraAdapters adapters;
  adapters.options_ = options;
  const auto paths = lora_select_modules(model, options.target_modules);
  for (const auto& path : paths) {
    Linear linear = model->linear(path);
    for (const auto& h : linear->hooks()) {
      if (dynamic_cast<const LoraLayer*>(h.get()))
        fail(kWhere, path + " already carries a LoRA adapter; detach() it before attaching another");
    }
    if (options.rank > std::min(linear->in_features(), linear->out_features()))
      fail(kWhere + ".rank", std::to_string(options.rank) + " exceeds the smaller dimension of " + path + " (" +
                                 std::to_string(linear->out_features()) + " x " +
                                 std::to_string(linear->in_features()) + ")");
  }
  if (options.freeze_base) {
    for (auto& p : model->parameters()) p.set_requires_grad(false);
  }
  // Per-layer seeds: distinct streams, and the same layer gets the same init whatever the
  // other targets are (the index is the layer's position among all linear layers).
  const auto& all = model->linear_paths();
  for (const auto& path : paths) {
    const uint64_t index = static_cast<uint64_t>(std::find(all.begin(), all.end(), path) - all.begin());
    const uint64_t seed = options.seed * 1000003ULL + index;
    Linear linear = model->linear(path);
    auto hook = std::make_shared<LoraLayer>(linear.get(), options.rank, options.scale(), options.dropout, seed);
    linear->add_hook(hook);
    adapters.entries_.push_back({path, linear, hook});
  }
  adapters.attached_ = true;
  return adapters;
}

std::vector<std::string> LoraAdapters::module_paths() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.path);
  return out;
}

LoraLayer& LoraAdapters::layer(const std::string& path) {
  for (auto& e : entries_)
    if (e.path == path) return *e.hook;
  fail(kWhere, "no adapter on module " + path);
}

const LoraLayer& LoraAdapters::layer(const std::string& path) const {
  return const_cast<LoraAdapters*>(this)->layer(path);
}

std::vector<torch::Tensor> LoraAdapters::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& e : entries_) {
    out.push_back(e.hook->A);
    out.push_back(e.hook->B);
  }
  return out;
}

std::map<std::string, torch::Tensor> LoraAdapters::named_parameters() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : entries_) {
    out[peft_prefix(e.path) + ".lora_A.weight"] = e.hook->A;
    out[peft_prefix(e.path) + ".lora_B.weight"] = e.hook->B;
  }
  return out;
}

void LoraAdapters::load_named_parameters(const std::map<std::string, torch::Tensor>& tensors,
                                         const std::string& where) {
  const auto expected = named_parameters();
  for (const auto& [name, dst] : expected) {
    auto it = tensors.find(name);
    if (it == tensors.end()) fail(where, "missing tensor " + name);
    if (it->second.sizes() != dst.sizes())
      fail(where, name + ": shape " + shape_text(it->second.sizes().vec()) + ", expected " +
                      shape_text(dst.sizes().vec()) + " (rank " + std::to_string(options_.rank) + ")");
    if (!it->second.is_floating_point()) fail(where, name + ": not a floating-point tensor");
  }
  for (const auto& [name, t] : tensors) {
    if (!expected.count(name))
      fail(where, "unexpected tensor " + name + " (the model has no adapter of that name; " +
                      std::to_string(expected.size()) + " expected)");
  }
  const bool was_merged = merged_;
  unmerge();  // the merged product must be the one of the adapters being replaced
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, dst] : expected) dst.copy_(tensors.at(name));
  }
  if (was_merged) merge();
}

void LoraAdapters::merge() {
  if (merged_) return;
  torch::NoGradGuard no_grad;
  for (auto& e : entries_) {
    auto& w = e.linear->weight;
    // Sum in float32 even for half-precision weights, then round once.
    w.copy_((w.to(torch::kFloat32) + e.hook->delta_weight().to(w.device())).to(w.scalar_type()));
    e.hook->active = false;
  }
  merged_ = true;
}

void LoraAdapters::unmerge() {
  if (!merged_) return;
  torch::NoGradGuard no_grad;
  for (auto& e : entries_) {
    auto& w = e.linear->weight;
    w.copy_((w.to(torch::kFloat32) - e.hook->delta_weight().to(w.device())).to(w.scalar_type()));
    e.hook->active = enabled_;
  }
  merged_ = false;
}

void LoraAdapters::set_enabled(bool enabled) {
  enabled_ = enabled;
  if (!merged_)
    for (auto& e : entries_) e.hook->active = enabled;
}

void LoraAdapters::detach() {
  if (!attached_) return;
  for (auto& e : entries_) e.linear->remove_hook(e.hook);
  attached_ = false;
}

std::map<std::string, torch::Tensor> LoraAdapters::generator_states() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : entries_) out[e.path] = e.hook->generator_state();
  return out;
}

void LoraAdapters::set_generator_states(const std::map<std::string, torch::Tensor>& states,
                                        const std::string& where) {
  for (const auto& e : entries_)
    if (!states.count(e.path)) fail(where, "no dropout generator state for " + e.path);
  for (const auto& [path, state] : states) {
    bool known = false;
    for (const auto& e : entries_) known = known || e.path == path;
    if (!known) fail(where, "dropout generator state for " + path + ", which has no adapter");
  }
  for (auto& e : entries_) {
    try {
      e.hook->set_generator_state(states.at(e.path));
    } catch (const c10::Error& err) {
      fail(where, e.path + ": invalid dropout generator state (" + err.what_without_backtrace() + ")");
    }
  }
}

void LoraAdapters::to(const torch::Device& device) {
  torch::NoGradGuard no_grad;
  for (auto& e : entries_) {
    e.hook->A.set_data(e.hook->A.to(device));
    e.hook->B.set_data(e.hook->B.to(device));
  }
}

}  // namespace gemkit

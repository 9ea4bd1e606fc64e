#include "preservation/weight_penalty.h"

#include <cmath>

#include "core/error.h"
#include "formats/safetensors.h"  // shape_text
#include "preservation/tensor_file.h"

namespace gemkit {

namespace {

constexpr const char* kAnchorFormat = "gemkit-weight-anchor-v1";

std::string shape_of(const torch::Tensor& t) { return shape_text(t.sizes().vec()); }

// float32 at least: a bf16 (theta - theta*) would round small moves to zero.
torch::ScalarType anchor_dtype(const torch::Tensor& t) {
  return torch::promote_types(t.scalar_type(), torch::kFloat32);
}

void check_importance(const std::string& where, const std::string& name, const torch::Tensor& f,
                      const torch::Tensor& param) {
  if (f.sizes() != param.sizes())
    fail(where, name + ": importance shape " + shape_of(f) + " does not match the parameter's " + shape_of(param));
  if (!torch::isfinite(f).all().item<bool>() || (f < 0).any().item<bool>())
    fail(where, name + ": importance values must be finite and >= 0");
}

const torch::Tensor& find_in(const std::map<std::string, torch::Tensor>& tensors, const std::string& name,
                             const std::string& where, const std::string& what) {
  auto it = tensors.find(name);
  if (it == tensors.end()) fail(where, name + ": no " + what);
  return it->second;
}

}  // namespace

WeightAnchor WeightAnchor::make(const NamedParams& params, const std::map<std::string, torch::Tensor>* fisher) {
  const char* where = fisher ? "WeightAnchor::ewc" : "WeightAnchor::l2sp";
  if (params.empty()) fail(where, "no parameters to anchor");
  WeightAnchor a;
  for (const auto& [name, p] : params) {
    if (a.entries_.count(name)) fail(where, name + ": listed twice");
    Entry e;
    e.anchor = p.detach().to(anchor_dtype(p)).clone();
    if (fisher) {
      const torch::Tensor& f = find_in(*fisher, name, where, "Fisher for this parameter");
      check_importance(where, name, f, p);
      e.importance = f.detach().to(p.device(), torch::kFloat32).clone();
    } else {
      e.importance = torch::ones({}, torch::TensorOptions().device(p.device()).dtype(torch::kFloat32));
    }
    a.entries_.emplace(name, std::move(e));
  }
  return a;
}

WeightAnchor WeightAnchor::l2sp(const NamedParams& params) { return make(params, nullptr); }

WeightAnchor WeightAnchor::ewc(const NamedParams& params, const std::map<std::string, torch::Tensor>& fisher) {
  return make(params, &fisher);
}

const WeightAnchor::Entry& WeightAnchor::entry_for(const std::string& name, const torch::Tensor& t,
                                                   const char* where) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    fail(where, name + ": no anchor for this name (" + std::to_string(entries_.size()) +
                    " anchored parameters, e.g. " + (entries_.empty() ? "none" : entries_.begin()->first) + ")");
  if (t.sizes() != it->second.anchor.sizes())
    fail(where, name + ": shape " + shape_of(t) + " does not match the anchor's " + shape_of(it->second.anchor));
  return it->second;
}

torch::Tensor WeightAnchor::penalty(const NamedParams& current) const {
  if (current.empty()) fail("WeightAnchor::penalty", "no parameters given");
  torch::Tensor sum;
  for (const auto& [name, p] : current) {
    const Entry& e = entry_for(name, p, "WeightAnchor::penalty");
    const torch::Tensor term = (e.importance * (p.to(e.anchor.scalar_type()) - e.anchor).square()).sum();
    sum = sum.defined() ? sum + term : term;
  }
  return 0.5 * sum;
}

torch::Tensor WeightAnchor::penalty_of_deltas(const NamedParams& deltas) const {
  if (deltas.empty()) fail("WeightAnchor::penalty_of_deltas", "no deltas given");
  torch::Tensor sum;
  for (const auto& [name, d] : deltas) {
    const Entry& e = entry_for(name, d, "WeightAnchor::penalty_of_deltas");
    const torch::Tensor term = (e.importance * d.to(e.anchor.scalar_type()).square()).sum();
    sum = sum.defined() ? sum + term : term;
  }
  return 0.5 * sum;
}

void WeightAnchor::consolidate(const NamedParams& current, const std::map<std::string, torch::Tensor>& new_fisher,
                               double gamma) {
  const char* where = "WeightAnchor::consolidate";
  if (!(gamma >= 0) || !std::isfinite(gamma)) fail(where, "gamma must be finite and >= 0, got " + std::to_string(gamma));
  std::map<std::string, torch::Tensor> given;
  for (const auto& [name, p] : current) {
    entry_for(name, p, where);
    if (!given.emplace(name, p).second) fail(where, name + ": listed twice");
  }
  // Everything is checked before anything changes: a failed call leaves the anchor as it was.
  for (const auto& [name, e] : entries_) {
    const torch::Tensor& p = find_in(given, name, where, "current value given (every anchored parameter is needed)");
    check_importance(where, name, find_in(new_fisher, name, where, "new Fisher for this parameter"), p);
  }
  for (auto& [name, e] : entries_) {
    const torch::Tensor& p = given.at(name);
    e.importance = gamma * e.importance + new_fisher.at(name).detach().to(e.importance.device(), torch::kFloat32);
    e.anchor = p.detach().to(e.anchor.device(), e.anchor.scalar_type()).clone();
  }
}

void WeightAnchor::save(const std::string& path) const {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, e] : entries_) {
    tensors["anchor." + name] = e.anchor;
    tensors["importance." + name] = e.importance;
  }
  save_named_tensors(path, tensors, {{"format", kAnchorFormat}});
}

WeightAnchor WeightAnchor::load(const std::string& path) {
  std::map<std::string, std::string> metadata;
  const std::map<std::string, torch::Tensor> tensors = load_named_tensors(path, &metadata);
  auto format = metadata.find("format");
  if (format == metadata.end() || format->second != kAnchorFormat)
    fail(path, std::string("not a gemkit weight anchor (metadata format is not ") + kAnchorFormat + ")");
  WeightAnchor a;
  const std::string anchor_prefix = "anchor.", importance_prefix = "importance.";
  for (const auto& [key, t] : tensors) {
    if (key.rfind(importance_prefix, 0) == 0) {
      find_in(tensors, anchor_prefix + key.substr(importance_prefix.size()), path, "tensor (it has " + key + ")");
      continue;
    }
    if (key.rfind(anchor_prefix, 0) != 0) fail(path, "tensor " + key + ": expected anchor.<name> or importance.<name>");
    const std::string name = key.substr(anchor_prefix.size());
    const torch::Tensor& f = find_in(tensors, importance_prefix + name, path, "tensor (it has " + key + ")");
    if (!t.is_floating_point() || !f.is_floating_point()) fail(path, name + ": anchor and importance must be floats");
    if (f.dim() != 0 && f.sizes() != t.sizes())
      fail(path, "tensor importance." + name + ": shape " + shape_of(f) + " is neither [] nor the anchor's " +
                     shape_of(t));
    a.entries_[name] = Entry{t, f.to(torch::kFloat32)};
  }
  if (a.entries_.empty()) fail(path, "no anchored parameters");
  return a;
}

void WeightAnchor::to(const torch::Device& device) {
  for (auto& [name, e] : entries_) {
    e.anchor = e.anchor.to(device);
    e.importance = e.importance.to(device);
  }
}

std::vector<std::string> WeightAnchor::names() const {
  std::vector<std::string> out;
  for (const auto& item : entries_) out.push_back(item.first);
  return out;
}

const torch::Tensor& WeightAnchor::anchor(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail("WeightAnchor::anchor", name + ": no anchor for this name");
  return it->second.anchor;
}

const torch::Tensor& WeightAnchor::importance(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail("WeightAnchor::importance", name + ": no anchor for this name");
  return it->second.importance;
}

NamedParams named_params(const torch::nn::Module& module) {
  NamedParams out;
  for (const auto& p : module.named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

NamedParams lora_weight_deltas(const LoraAdapters& adapters) {
  NamedParams out;
  for (const std::string& path : adapters.module_paths()) {
    const LoraLayer& layer = adapters.layer(path);
    out.emplace_back(path + ".weight",
                     torch::matmul(layer.B.to(torch::kFloat32), layer.A.to(torch::kFloat32)) * layer.scale);
  }
  return out;
}

}  // namespace gemkit

#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/torch_compat.h"
#include "formats/safetensors.h"
#include "model/state_dict.h"

namespace gemkit {

bool param_decays(const std::string& name, const torch::Tensor& p, const std::vector<std::string>& no_decay) {
  if (p.dim() < 2) return false;
  for (const std::string& pattern : no_decay)
    if (!pattern.empty() && name.find(pattern) != std::string::npos) return false;
  return true;
}

Optimizer make_optimizer(const NamedParams& params, const OptimizerOptions& o) {
  Optimizer opt;
  for (const auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    (param_decays(name, p, o.no_decay) ? opt.decay : opt.no_decay).emplace_back(name, p);
  }
  if (opt.decay.empty() && opt.no_decay.empty())
    fail("optimizer", "no trainable parameters (every parameter has requires_grad false)");
  auto group = [&](const NamedParams& named, double wd) {
    std::vector<torch::Tensor> ps;
    for (const auto& np : named) ps.push_back(np.second);
    auto options = std::make_unique<torch::optim::AdamWOptions>(o.lr);
    options->betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(wd);
    return torch::optim::OptimizerParamGroup(ps, std::move(options));
  };
  // Both groups always exist (possibly empty) so group indices mean the same in every run.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.push_back(group(opt.decay, o.weight_decay));
  groups.push_back(group(opt.no_decay, 0.0));
  opt.adamw = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(o.lr));
  if (!(o.mofo_fraction > 0 && o.mofo_fraction <= 1))
    fail("train.mofo_fraction", "expected a share in (0, 1], got " + std::to_string(o.mofo_fraction));
  opt.mofo_fraction = o.mofo_fraction;
  return opt;
}

void Optimizer::set_lr(double lr) {
  for (auto& g : adamw->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

namespace {

template <typename F>
void for_each_named(const Optimizer& o, F f) {
  for (const NamedParams* group : {&o.decay, &o.no_decay})
    for (const auto& [name, p] : *group) f(name, p);
}

}  // namespace

void Optimizer::step() {
  if (mofo_fraction >= 1) {
    adamw->step();
    return;
  }
  // AdamW moves every entry; MoFO keeps the update only where |exp_avg| is among the largest
  // mofo_fraction of the tensor, so the others are put back. Their moments still update, so an
  // entry whose gradient keeps pushing enters the selection later.
  torch::NoGradGuard no_grad;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> before;
  for_each_named(*this, [&](const std::string&, const torch::Tensor& p) {
    if (p.grad().defined()) before.emplace_back(p, p.detach().clone());
  });
  adamw->step();
  auto& state = adamw->state();
  for (auto& [p, old] : before) {
    auto it = state.find(compat::optimizer_state_key(state, p));
    if (it == state.end()) continue;
    const torch::Tensor m = static_cast<const torch::optim::AdamWParamState&>(*it->second).exp_avg().abs().flatten();
    const int64_t keep = std::max<int64_t>(1, int64_t(std::ceil(mofo_fraction * double(m.numel()))));
    // The keep-th largest |m| is the (numel - keep + 1)-th smallest; ties at it are all kept.
    const torch::Tensor threshold = std::get<0>(m.kthvalue(m.numel() - keep + 1));
    const torch::Tensor moved = (m >= threshold).view(p.sizes());
    p.copy_(torch::where(moved, p, old));
  }
}

void Optimizer::save_state(const std::string& path, std::map<std::string, int64_t>& steps) const {
  SafetensorsWriter writer;
  auto& state = adamw->state();
  for_each_named(*this, [&](const std::string& name, const torch::Tensor& p) {
    auto it = state.find(compat::optimizer_state_key(state, p));
    if (it == state.end()) return;  // never updated yet: no state, as in a fresh AdamW
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    steps[name] = s.step();
    for (const auto& [suffix, t] : {std::pair<const char*, torch::Tensor>{".exp_avg", s.exp_avg()},
                                    {".exp_avg_sq", s.exp_avg_sq()}}) {
      torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
      writer.add(name + suffix, to_safetensors_dtype(c.scalar_type(), name + suffix), c.sizes().vec(),
                 c.data_ptr(), size_t(c.nbytes()), std::make_shared<torch::Tensor>(c));
    }
  });
  writer.write(path);
}

void Optimizer::load_state(const std::string& path, const std::map<std::string, int64_t>& steps) {
  SafetensorsSet file = SafetensorsSet::open(path);
  auto& state = adamw->state();
  state.clear();
  for_each_named(*this, [&](const std::string& name, const torch::Tensor& p) {
    auto step = steps.find(name);
    if (step == steps.end()) return;  // had no state when saved
    auto tensor = [&](const std::string& key) {
      const TensorView* v = file.find(key);
      if (!v) fail(path, "optimizer state for parameter " + name + " is missing (" + key + ")");
      torch::Tensor t = to_tensor(*v);
      if (t.sizes() != p.sizes()) fail(path, key + ": shape " + shape_text(t.sizes().vec()) +
                                                 " does not match the parameter's " + shape_text(p.sizes().vec()));
      return t.to(p.device(), p.scalar_type());
    };
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step->second);
    s->exp_avg(tensor(name + ".exp_avg"));
    s->exp_avg_sq(tensor(name + ".exp_avg_sq"));
    state[compat::optimizer_state_key(state, p)] = std::move(s);
  });
}

}  // namespace gemkit

#include "routing/scar.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "model/lora.h"

namespace gemkit {
namespace {

enum Group { kAttention = 0, kMlp = 1 };

// The linear's name within its block and its group; entry linears read the group's
// normalised input and decide the routing.
struct LinearRole {
  Group group;
  bool entry;
};
bool linear_role(const std::string& name, LinearRole* role) {
  static const std::map<std::string, LinearRole> roles = {
      {"q_proj", {kAttention, true}}, {"k_proj", {kAttention, true}}, {"v_proj", {kAttention, true}},
      {"o_proj", {kAttention, false}}, {"gate_proj", {kMlp, true}},   {"up_proj", {kMlp, true}},
      {"down_proj", {kMlp, false}}};
  auto it = roles.find(name);
  if (it == roles.end()) return false;
  *role = it->second;
  return true;
}

std::string block_prefix(int64_t block) { return "model.layers." + std::to_string(block) + "."; }
std::string linear_path(int64_t block, const std::string& name) {
  static const std::set<std::string> attention = {"q_proj", "k_proj", "v_proj", "o_proj"};
  return block_prefix(block) + (attention.count(name) ? "self_attn." : "mlp.") + name;
}

}  // namespace

void validate(const ScarOptions& o) {
  validate(o.router);
  if (o.experts.empty()) fail("ScarOptions.experts", "needs at least one domain expert");
  std::set<std::string> seen;
  for (const std::string& e : o.experts) {
    if (e.empty() || e.find('.') != std::string::npos)
      fail("ScarOptions.experts", "expert names must be non-empty and contain no '.', got '" + e + "'");
    if (e == kGeneralExpert) fail("ScarOptions.experts", "\"general\" is the base path (general_expert), not a domain expert");
    if (!seen.insert(e).second) fail("ScarOptions.experts", "duplicate expert '" + e + "'");
  }
  if (o.router.general_bias != 0 && !o.general_expert)
    fail("ScarOptions.router.general_bias", "needs the general expert (general_expert = true)");
  if (o.rank < 1) fail("ScarOptions.rank", "must be >= 1");
  if (!(o.alpha > 0)) fail("ScarOptions.alpha", "must be > 0");
  if (o.target_modules.empty()) fail("ScarOptions.target_modules", "needs at least one linear");
  LinearRole role;
  for (const std::string& t : o.target_modules)
    if (!linear_role(t, &role))
      fail("ScarOptions.target_modules", "'" + t + "' is not a decoder block linear (q_proj, k_proj, v_proj, "
                                                   "o_proj, gate_proj, up_proj, down_proj)");
}

// ---------------------------------------------------------------------------------------------
// Shared state of the hooks.

struct Scar::State {
  struct Decision {
    int64_t rows = 0, cols = 0;  // leading dims of the routed input: [rows, cols] tokens
    ExpertRouting routing;        // [rows * cols, E]
  };
  struct Adapter {
    std::string path;
    int64_t expert;
    std::shared_ptr<LoraLayer> layer;
  };

  Transformer model{nullptr};
  ScarOptions options;
  std::vector<std::string> names;
  std::map<int64_t, ExpertRouter> routers;
  int64_t first_block = 0;
  int64_t forced = -1;
  // Per (block, group): the input that was routed last and its decision.
  std::map<std::pair<int64_t, int>, std::pair<torch::Tensor, Decision>> current;
  std::vector<Decision> decisions;  // of the last forward pass
  ScarStats stats;
  std::vector<Adapter> adapters;
  std::set<std::string> frozen;  // experts that do not train (freeze_experts)
  bool frozen_queries = false;   // freeze_router_queries
  // Per routed block: the mask of trained key rows (1) and the keys as they were frozen.
  std::map<int64_t, std::pair<torch::Tensor, torch::Tensor>> frozen_keys;
  std::vector<std::pair<Linear, std::shared_ptr<LinearHook>>> installed;

  const Decision& route(int64_t block, Group group, const torch::Tensor& x) {
    auto& slot = current[{block, int(group)}];
    if (slot.first.defined() && slot.first.is_same(x)) return slot.second;  // same group input
    // The first decision of a forward pass starts a new record.
    if (block == first_block && group == kAttention) decisions.clear();
    Decision d;
    d.rows = x.dim() >= 2 ? x.size(0) : 1;
    d.cols = x.numel() / x.size(-1) / d.rows;
    auto flat = x.reshape({-1, x.size(-1)});
    const int64_t E = int64_t(names.size());
    if (forced >= 0) {
      auto one = torch::zeros({flat.size(0), E}, flat.options().dtype(torch::kFloat));
      one.select(1, forced).fill_(1.0);
      d.routing = ExpertRouting{torch::zeros_like(one), one, one.to(torch::kBool), one};
    } else {
      d.routing = routers.at(block)->route(flat);
    }
    record(d);
    slot = {x, d};
    decisions.push_back(d);
    return slot.second;
  }

  void record(const Decision& d) {
    const ExpertRouting& r = d.routing;
    torch::NoGradGuard no_grad;
    const int64_t E = r.probs.size(1);
    auto p = r.probs.detach();
    stats.decisions += p.size(0);
    auto first = torch::bincount(p.argmax(1), {}, E).to(torch::kCPU);
    for (int64_t e = 0; e < E; ++e) stats.first_choice[size_t(e)] += first[e].item<int64_t>();
    stats.experts_sum += r.chosen.sum().item<double>();
    stats.entropy_sum += (-(p * torch::log(p.clamp_min(1e-12))).sum()).item<double>();
    if (d.cols > 1) {
      stats.rows += d.rows;
      stats.rows_first_expert += (p.view({d.rows, d.cols, E}).mean(1).argmax(1) == 0).sum().item<int64_t>();
    }
  }
};

namespace {

// On the entry linears of a routed group: routes the group's input (and changes nothing).
class RouteHook : public LinearHook {
 public:
  RouteHook(Scar::State* s, int64_t block, Group group) : s_(s), block_(block), group_(group) {}
  torch::Tensor transform_input(const torch::Tensor& x) override {
    s_->route(block_, group_, x);
    return x;
  }

 private:
  Scar::State* s_;
  int64_t block_;
  Group group_;
};

// On a targeted linear: y += sum over the chosen domain experts e of g_e * scale * B_e A_e x,
// each expert computed on its own rows only.
class ExpertHook : public LinearHook {
 public:
  ExpertHook(Scar::State* s, int64_t block, Group group, std::string path)
      : s_(s), block_(block), group_(group), path_(std::move(path)) {}
  std::vector<std::shared_ptr<LoraLayer>> experts;  // by expert index; nullptr: general

  torch::Tensor adjust_output(const torch::Tensor& x, const torch::Tensor& y) override {
    auto it = s_->current.find({block_, int(group_)});
    if (it == s_->current.end()) fail(path_, "SCAR expert ran before its group was routed (gemkit bug)");
    const ExpertRouting& r = it->second.second.routing;
    auto xf = x.reshape({-1, x.size(-1)});
    auto yf = y.reshape({-1, y.size(-1)});
    if (r.gates.size(0) != xf.size(0))
      fail(path_, "SCAR routing covers " + std::to_string(r.gates.size(0)) + " tokens, the layer sees " +
                      std::to_string(xf.size(0)) + " (gemkit bug)");
    for (size_t e = 0; e < experts.size(); ++e) {
      if (!experts[e]) continue;
      auto rows = r.chosen.select(1, int64_t(e)).nonzero().squeeze(1);
      if (rows.numel() == 0) continue;
      auto gate = r.gates.index_select(0, rows).select(1, int64_t(e)).unsqueeze(1).to(y.scalar_type());
      yf = yf.index_add(0, rows, experts[e]->delta(xf.index_select(0, rows)) * gate);
    }
    return yf.view(y.sizes());
  }

 private:
  Scar::State* s_;
  int64_t block_;
  Group group_;
  std::string path_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

Scar::Scar(Transformer model, ScarOptions options) : state_(std::make_shared<State>()) {
  State& s = *state_;
  validate(options);
  const ModelConfig& config = model->config();
  if (config.family != Family::Decoder) fail("Scar", "SCAR needs a decoder model (Llama/Qwen2 layout)");
  if (options.blocks.empty())
    for (int64_t i = 0; i < model->num_blocks(); ++i) options.blocks.push_back(i);
  std::sort(options.blocks.begin(), options.blocks.end());
  options.blocks.erase(std::unique(options.blocks.begin(), options.blocks.end()), options.blocks.end());
  for (int64_t b : options.blocks)
    if (b < 0 || b >= model->num_blocks())
      fail("ScarOptions.blocks", "block " + std::to_string(b) + " out of range [0, " +
                                     std::to_string(model->num_blocks()) + ")");
  s.model = model;
  s.options = options;
  if (options.general_expert) s.names.push_back(kGeneralExpert);
  for (const std::string& e : options.experts) s.names.push_back(e);
  s.stats.first_choice.assign(s.names.size(), 0);
  s.first_block = options.blocks.front();

  auto params = model->parameters();
  const auto dtype = params.empty() ? torch::kFloat : params.front().scalar_type();
  const double scale = options.alpha / double(options.rank);
  // Every router and adapter draws from a generator of its own, seeded from options.seed.
  uint64_t layer_seed = options.seed * 1000003ULL;
  for (int64_t b : options.blocks) {
    ExpertRouter router(config.hidden_size, int64_t(s.names.size()), options.router, config.rms_norm_eps,
                        ++layer_seed);
    router->to(model->device(), dtype);
    s.routers.emplace(b, router);
    // Route hooks first, so a group is routed before any of its experts runs.
    for (const char* entry : {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"}) {
      LinearRole role;
      linear_role(entry, &role);
      Linear linear = model->linear(linear_path(b, entry));
      auto hook = std::make_shared<RouteHook>(&s, b, role.group);
      linear->add_hook(hook);
      s.installed.push_back({linear, hook});
    }
    for (const std::string& t : options.target_modules) {
      LinearRole role;
      linear_role(t, &role);
      const std::string path = linear_path(b, t);
      Linear linear = model->linear(path);
      auto hook = std::make_shared<ExpertHook>(&s, b, role.group, path);
      hook->experts.resize(s.names.size());
      for (size_t e = options.general_expert ? 1 : 0; e < s.names.size(); ++e) {
        auto layer = std::make_shared<LoraLayer>(linear.get(), options.rank, scale, 0.0, ++layer_seed);
        hook->experts[e] = layer;
        s.adapters.push_back({path, int64_t(e), layer});
      }
      linear->add_hook(hook);
      s.installed.push_back({linear, hook});
    }
  }
}

Scar::~Scar() {
  for (auto& [linear, hook] : state_->installed) linear->remove_hook(hook);
}

const ScarOptions& Scar::options() const { return state_->options; }
const std::vector<std::string>& Scar::expert_names() const { return state_->names; }
int64_t Scar::num_experts() const { return int64_t(state_->names.size()); }
int64_t Scar::expert_index(const std::string& name) const {
  const auto& n = state_->names;
  auto it = std::find(n.begin(), n.end(), name);
  return it == n.end() ? -1 : int64_t(it - n.begin());
}

std::map<std::string, torch::Tensor> Scar::named_parameters() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [b, router] : state_->routers) {
    out["routers." + std::to_string(b) + ".query"] = router->query;
    out["routers." + std::to_string(b) + ".keys"] = router->keys;
  }
  for (const auto& a : state_->adapters) {
    const std::string base = "experts." + state_->names[size_t(a.expert)] + "." + a.path;
    out[base + ".lora_A.weight"] = a.layer->A;
    out[base + ".lora_B.weight"] = a.layer->B;
  }
  return out;
}

void Scar::load_named_parameters(const std::map<std::string, torch::Tensor>& tensors, const std::string& where) {
  auto mine = named_parameters();
  for (const auto& [name, t] : mine) {
    auto it = tensors.find(name);
    if (it == tensors.end()) fail(where, name + ": missing SCAR tensor");
    if (it->second.sizes() != t.sizes())
      fail(where, name + ": shape " + c10::str(it->second.sizes()) + ", expected " + c10::str(t.sizes()));
  }
  for (const auto& [name, t] : tensors)
    if (!mine.count(name)) fail(where, name + ": unexpected SCAR tensor (experts or blocks differ from gem.json?)");
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : mine) t.copy_(tensors.at(name));
}

namespace {
// Router tensors are told apart by their last name component ("routers.<b>.keys" / ".query").
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

void Scar::load_earlier_stage(const std::map<std::string, torch::Tensor>& tensors,
                              const std::vector<std::string>& earlier, const std::string& where) {
  std::vector<int64_t> row_of;  // earlier key row -> row here
  for (const std::string& name : earlier) {
    const int64_t e = expert_index(name);
    if (e < 0) fail(where, "expert '" + name + "' of the earlier stage is not among this run's experts (scar.experts): "
                           "every earlier expert must be kept");
    row_of.push_back(e);
  }
  // Everything is checked before anything is copied.
  std::map<std::string, torch::Tensor> mine = named_parameters(), copy;
  for (const auto& [name, t] : mine) {
    const bool key = ends_with(name, ".keys");
    const bool earlier_adapter = [&] {
      for (const std::string& n : earlier)
        if (name.rfind("experts." + n + ".", 0) == 0) return true;
      return false;
    }();
    if (!key && !earlier_adapter && name.rfind("routers.", 0) != 0) continue;  // a new expert's adapter
    auto it = tensors.find(name);
    if (it == tensors.end()) fail(where, name + ": missing SCAR tensor of the earlier stage");
    const std::vector<int64_t> want =
        key ? std::vector<int64_t>{int64_t(earlier.size()), t.size(1)} : t.sizes().vec();
    if (it->second.sizes().vec() != want)
      fail(where, name + ": shape " + c10::str(it->second.sizes()) + ", expected " + c10::str(c10::IntArrayRef(want)));
    copy[name] = it->second;
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : copy) {
    torch::Tensor target = mine.at(name);
    if (ends_with(name, ".keys")) {
      for (size_t r = 0; r < row_of.size(); ++r) target[row_of[r]].copy_(t[int64_t(r)]);
    } else {
      target.copy_(t);
    }
  }
}

void Scar::freeze_experts(const std::vector<std::string>& names) {
  State& s = *state_;
  auto mask = torch::ones({num_experts(), 1});
  for (const std::string& name : names) {
    const int64_t e = expert_index(name);
    if (e < 0) fail("scar.frozen_experts", "'" + name + "' is not an expert of this run (scar.experts)");
    mask[e] = 0;
    for (const auto& a : s.adapters)
      if (a.expert == e) {
        a.layer->A.set_requires_grad(false);
        a.layer->B.set_requires_grad(false);
      }
    s.frozen.insert(name);
  }
  for (auto& [block, router] : s.routers) {
    router->keys.set_requires_grad(true);
    const torch::Tensor m = mask.to(router->keys.options());
    router->keys.register_hook([m](torch::Tensor grad) { return grad * m; });
    s.frozen_keys[block] = {m, router->keys.detach().clone()};
  }
}

void Scar::restore_frozen_keys() {
  torch::NoGradGuard no_grad;
  for (auto& [block, saved] : state_->frozen_keys) {
    torch::Tensor keys = state_->routers.at(block)->keys;
    keys.copy_(saved.first * keys + (1 - saved.first) * saved.second);
  }
}

void Scar::freeze_router_queries() {
  for (auto& [block, router] : state_->routers) router->query.set_requires_grad(false);
  state_->frozen_queries = true;
}

std::set<std::string> Scar::frozen_parameter_names() const {
  std::set<std::string> out;
  for (const auto& [name, t] : named_parameters()) {
    for (const std::string& n : state_->frozen)
      if (name.rfind("experts." + n + ".", 0) == 0) out.insert(name);
    if (state_->frozen_queries && ends_with(name, ".query")) out.insert(name);
  }
  return out;
}

ScarLosses Scar::losses(const torch::Tensor& row_expert, const torch::Tensor& valid) const {
  const State& s = *state_;
  ScarLosses out;
  auto opts = torch::TensorOptions().device(s.model->device());
  out.balance = out.z = out.supervision = torch::zeros({}, opts);
  if (s.decisions.empty()) return out;
  const int64_t B = row_expert.defined() ? row_expert.size(0) : -1;
  int64_t supervised_decisions = 0, correct = 0, counted = 0;
  for (const auto& d : s.decisions) {
    const ExpertRouting& r = d.routing;
    const int64_t E = r.probs.size(1);
    // Padding is masked where the decision covers the whole [B, T] batch.
    torch::Tensor w;
    if (valid.defined() && d.rows == valid.size(0) && d.cols == valid.size(1))
      w = valid.reshape({-1}).to(r.probs.scalar_type());
    else
      w = torch::ones({r.probs.size(0)}, r.probs.options());
    const auto n = w.sum().clamp_min(1.0);
    auto f = (torch::one_hot(r.probs.detach().argmax(1), E).to(r.probs.scalar_type()) * w.unsqueeze(1)).sum(0) / n;
    auto P = (r.probs * w.unsqueeze(1)).sum(0) / n;
    out.balance = out.balance + double(E) * (f * P).sum();
    out.z = out.z + (torch::logsumexp(r.logits, 1).pow(2) * w).sum() / n;
    if (B > 0 && d.rows == B) {
      auto wr = w.view({B, d.cols, 1});
      auto mean_p = (r.probs.view({B, d.cols, E}) * wr).sum(1) / wr.sum(1).clamp_min(1.0);  // [B, E]
      auto labelled = row_expert >= 0;
      const int64_t m = labelled.sum().item<int64_t>();
      if (m > 0) {
        auto rows = labelled.nonzero().squeeze(1);
        auto target = row_expert.index_select(0, rows);
        auto p_target = mean_p.index_select(0, rows).gather(1, target.unsqueeze(1)).squeeze(1);
        // Class-balanced: each domain present weighs the same whatever its share of rows, so the
        // replay share does not become the router's prior (75% domain rows would otherwise pull
        // ambiguous general tokens to the domain expert).
        auto count = torch::bincount(target, {}, E).to(p_target.scalar_type());
        auto weight = 1.0 / count.index_select(0, target);
        weight = weight / weight.sum();
        out.supervision = out.supervision - (torch::log(p_target.clamp_min(1e-9)) * weight).sum();
        ++supervised_decisions;
        correct += (mean_p.detach().index_select(0, rows).argmax(1) == target).sum().item<int64_t>();
        counted += m;
        out.supervised_rows = m;
      }
    }
  }
  const double D = double(s.decisions.size());
  out.balance = out.balance / D;
  out.z = out.z / D;
  if (supervised_decisions > 0) out.supervision = out.supervision / double(supervised_decisions);
  out.domain_accuracy = counted ? double(correct) / double(counted) : 0.0;
  return out;
}

torch::Tensor Scar::general_probability(int64_t rows, int64_t seq_len) const {
  const State& s = *state_;
  if (!s.options.general_expert) return {};
  torch::Tensor sum;
  int64_t n = 0;
  for (const auto& d : s.decisions) {
    if (d.rows != rows || d.cols != seq_len) continue;
    auto p = d.routing.probs.detach().select(1, 0).view({rows, seq_len});
    sum = sum.defined() ? sum + p : p;
    ++n;
  }
  return n ? sum / double(n) : torch::Tensor();
}

void Scar::set_general_bias(double bias) {
  ScarOptions o = state_->options;
  o.router.general_bias = bias;
  validate(o);
  state_->options = o;
  for (auto& [block, router] : state_->routers) router->set_general_bias(bias);
  state_->current.clear();
}

void Scar::set_forced_expert(int64_t e) {
  if (e < -1 || e >= num_experts())
    fail("Scar::set_forced_expert", "expert " + std::to_string(e) + " out of range");
  state_->forced = e;
  state_->current.clear();
}

const ScarStats& Scar::stats() const { return state_->stats; }
void Scar::reset_stats() {
  state_->stats = ScarStats{};
  state_->stats.first_choice.assign(state_->names.size(), 0);
}

std::vector<std::pair<std::string, torch::Tensor>> Scar::weight_deltas(const std::string& expert) const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  const int64_t only = expert.empty() ? -1 : expert_index(expert);
  if (!expert.empty() && only < 0) fail("Scar::weight_deltas", "no expert named '" + expert + "'");
  for (const auto& a : state_->adapters) {
    if (only >= 0 && a.expert != only) continue;
    out.push_back({a.path + ".weight",
                   torch::matmul(a.layer->B.to(torch::kFloat), a.layer->A.to(torch::kFloat)) * a.layer->scale});
  }
  return out;
}

}  // namespace gemkit

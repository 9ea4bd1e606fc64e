#include "methods/gem.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "core/error.h"

namespace gemkit {
namespace {

std::vector<int64_t> block_list(const Recipe& r, const std::string& key) {
  std::vector<int64_t> blocks;
  if (!r.has(key)) return blocks;
  for (const std::string& s : r.get_strings(key)) {
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (end == s.c_str() || *end || v < 0) fail(key, "expected block indices (integers >= 0), got '" + s + "'");
    blocks.push_back(v);
  }
  return blocks;
}

}  // namespace

GemConfig gem_config_from_recipe(const Recipe& r) {
  GemConfig c;
  c.dtr = r.get_bool("dtr.enabled");
  if (c.dtr) {
    c.dtr_blocks = block_list(r, "dtr.blocks");
    auto& o = c.dtr_options;
    o.capacity = r.get_float("dtr.capacity");
    o.threshold = r.get_float("dtr.threshold");
    o.initial_bias = r.get_float("dtr.initial_bias");
    o.attention_only = r.get_bool("dtr.attention_only");
    o.anneal_steps = r.get_int("dtr.anneal_steps");
    o.seed = uint64_t(r.get_int("dtr.seed"));
  }
  c.scar = r.get_bool("scar.enabled");
  if (c.scar) {
    if (!r.has("scar.experts")) fail("scar.experts", "not set: name the domain experts (e.g. scar.experts = [\"law\"])");
    auto& o = c.scar_options;
    o.experts = r.get_strings("scar.experts");
    o.general_expert = r.get_bool("scar.general_expert");
    o.blocks = block_list(r, "scar.blocks");
    o.target_modules = r.get_strings("scar.target_modules");
    o.rank = r.get_int("scar.rank");
    o.alpha = r.get_float("scar.alpha");
    o.router.router_dim = r.get_int("scar.router_dim");
    o.router.temperature = r.get_float("scar.temperature");
    o.router.mass = r.get_float("scar.mass");
    o.router.max_experts = r.get_int("scar.max_experts");
    o.router.general_bias = r.get_float("scar.general_bias");
    o.seed = uint64_t(r.get_int("scar.seed"));
  }
  return c;
}

void GemMethod::attach(Trainer& trainer, MethodContext& context) {
  const Recipe& r = context.recipe;
  const SourceDomains& domains = context.domains;
  gem_ = std::make_unique<GemModules>(context.model, gem_config_from_recipe(r));
  GemModules& gem = *gem_;
  // A sequential stage: model.path is the previous stage's routed checkpoint; its routers and
  // experts continue here, the ones named in scar.frozen_experts without training.
  const std::vector<std::string> earlier = gem.load_earlier_stage(context.base_model);
  if (!earlier.empty()) {
    std::string names;
    for (const std::string& e : earlier) names += (names.empty() ? "" : ", ") + e;
    std::printf("gem: continuing the routing of %s (experts: %s)\n", context.base_model.c_str(), names.c_str());
  }
  std::set<std::string>& frozen = frozen_;
  if (r.has("scar.frozen_experts")) {
    if (!gem.scar()) fail("scar.frozen_experts", "needs scar.enabled");
    for (const std::string& e : r.get_strings("scar.frozen_experts"))
      if (std::find(earlier.begin(), earlier.end(), e) == earlier.end())
        fail("scar.frozen_experts", "'" + e + "' was not trained by an earlier stage (model.path has no such expert): "
                                    "frozen, it would stay at its initialisation");
    gem.scar()->freeze_experts(r.get_strings("scar.frozen_experts"));
  }
  if (r.get_bool("scar.frozen_query")) {
    if (!gem.scar()) fail("scar.frozen_query", "needs scar.enabled");
    if (earlier.empty())
      fail("scar.frozen_query", "model.path is not an earlier stage's routed checkpoint: a frozen query would stay at "
                                "its random initialisation");
    gem.scar()->freeze_router_queries();
  }
  if (gem.scar())
    for (const std::string& name : gem.scar()->frozen_parameter_names()) frozen.insert("scar." + name);
  std::map<std::string, torch::Tensor> trainable, fixed;
  for (const auto& [name, p] : gem.named_parameters()) (frozen.count(name) ? fixed : trainable)[name] = p;
  trainer.add_parameters(trainable);
  trainer.add_parameters(fixed, /*trainable=*/false);
  trainer.add_checkpoint_hook({[&gem](const std::string& folder) { gem.save_config(folder); }, nullptr});

  if (TokenRouters* dtr = gem.dtr())
    trainer.add_loss_term({"dtr_aux", r.get_float("dtr.aux_weight"), [dtr](const StepContext&) { return (*dtr)->aux_loss(); }, false});

  // SCAR's three losses come from one pass over the routing decisions; the first term computes
  // them for the micro-batch and the other two read the cached values. No GEM term reads the
  // logits (needs_logits false), so GEM runs keep the chunked loss.
  auto cached = std::make_shared<ScarLosses>();
  auto accuracy = std::make_shared<std::pair<double, int64_t>>(0.0, 0);  // correct rows, rows
  if (Scar* scar = gem.scar()) {
    auto balance = [scar, cached, accuracy, domains](const StepContext& c) {
      std::vector<int64_t> experts;
      for (const std::string& d : row_domains(c.batch, domains)) experts.push_back(d.empty() ? -1 : scar->expert_index(d));
      auto row_expert = torch::tensor(experts, torch::kInt64).to(c.tensors.input_ids.device());
      *cached = scar->losses(row_expert, c.tensors.attention_mask.to(torch::kBool));
      accuracy->first += cached->domain_accuracy * double(cached->supervised_rows);
      accuracy->second += cached->supervised_rows;
      return cached->balance;
    };
    trainer.add_loss_term({"scar_balance", r.get_float("scar.balance_weight"), balance, false});
    trainer.add_loss_term({"scar_z", r.get_float("scar.z_weight"), [cached](const StepContext&) { return cached->z; }, false});
    trainer.add_loss_term({"scar_supervision", r.get_float("scar.supervision_weight"),
                           [cached](const StepContext&) { return cached->supervision; }, false});
  }

  StepHook hook;
  hook.before = [&gem](int64_t step) {
    gem.set_step(step);
    gem.metrics();  // drop what forwards outside training (validation, budget checks) counted
  };
  hook.after = [&gem, accuracy](int64_t) {
    if (gem.scar()) gem.scar()->restore_frozen_keys();
    auto m = gem.metrics();
    if (accuracy->second > 0) m["scar/domain_accuracy"] = accuracy->first / double(accuracy->second);
    *accuracy = {0.0, 0};
    return m;
  };
  trainer.add_step_hook(hook);
}

int64_t GemMethod::added_parameters() const {
  int64_t n = 0;
  for (const auto& [name, p] : gem_->named_parameters())
    if (!frozen_.count(name)) n += p.numel();
  return n;
}

NamedParams GemMethod::weight_deltas() const {
  if (!gem_->scar()) return {};
  return gem_->scar()->weight_deltas();
}

bool GemMethod::routes_general_tokens() const {
  return gem_->scar() && gem_->scar()->options().general_expert;
}

torch::Tensor GemMethod::general_probability(int64_t rows, int64_t seq_len) const {
  if (!routes_general_tokens()) return {};
  return gem_->scar()->general_probability(rows, seq_len);
}

}  // namespace gemkit

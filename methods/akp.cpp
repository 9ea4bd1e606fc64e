#include "methods/akp.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "model/batch_tensors.h"
#include "model/checkpoint.h"
#include "preservation/distillation.h"
#include "preservation/fisher.h"
#include "preservation/forgetting_budget.h"
#include "preservation/teacher.h"
#include "preservation/weight_penalty.h"

namespace gemkit {
namespace {

}  // namespace

// What the method keeps for the run: the teacher, the anchors and the controller.
struct AkpState {
  Transformer model{nullptr};
  TrainMode mode = TrainMode::Full;
  LoaderOptions loader;
  std::vector<const Method*> adapters;  // methods attached before AKP (their weight deltas)
  const Recipe* recipe = nullptr;
  std::unique_ptr<Teacher> teacher;
  std::unique_ptr<WeightAnchor> ewc, l2sp;
  std::unique_ptr<ForgettingBudget> budget;
  std::vector<TokenBatch> budget_batches;
  double base_general_loss = 0;
  double last_general_loss = 0, last_rise = 0;
  double kd_weight = 0, ewc_weight = 0;
};

namespace {

// The weights the penalties look at: every trained model weight (full mode), or the effective
// weight changes of the adapters and experts (frozen base).
NamedParams penalised(const AkpState& s, bool deltas) {
  NamedParams out;
  if (!deltas) {
    for (const auto& p : s.model->named_parameters())
      if (p.value().requires_grad()) out.push_back({p.key(), p.value()});
    return out;
  }
  for (const Method* m : s.adapters)
    for (auto& d : m->weight_deltas()) out.push_back(d);
  return out;
}

// Mean loss of `model` (as it runs now) over held-out batches, without gradients.
double mean_loss(Transformer model, const std::vector<TokenBatch>& batches, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  double sum = 0;
  int64_t n = 0;
  for (const TokenBatch& b : batches) {
    const BatchTensors t = batch_to_tensors(b, device);
    const int64_t targets = (t.labels != -100).sum().item<int64_t>();
    if (targets == 0) continue;
    ForwardOptions fo;
    fo.attention_mask = t.attention_mask;
    fo.segment_ids = t.segment_ids;
    sum += model->loss(model->forward(t.input_ids, fo), t.labels).item<double>() * double(targets);
    n += targets;
  }
  if (was_training) model->train();
  return n ? sum / double(n) : std::nan("");
}

std::vector<TokenBatch> held_out(const std::string& shard, const LoaderOptions& lo, int64_t max_batches) {
  std::vector<TokenBatch> b = sequential_batches(shard, lo);
  if (max_batches > 0 && int64_t(b.size()) > max_batches) b.resize(size_t(max_batches));
  if (b.empty()) fail(shard, "holds no batches for the knowledge-preservation measurements");
  return b;
}

}  // namespace

AkpMethod::AkpMethod() : state_(std::make_unique<AkpState>()) {}
AkpMethod::~AkpMethod() = default;

void AkpMethod::finish(const MethodContext& context) {
  AkpState& s = *state_;
  if (!s.ewc || s.mode != TrainMode::Full) return;
  const std::string& run_dir = context.run_dir;
  const Recipe& r = *s.recipe;
  const std::string shard = r.get_strings("train.data").front();
  FisherOptions fo;
  fo.max_sequences = r.get_int("akp.fisher_sequences");
  fo.seed = uint64_t(r.get_int("akp.fisher_seed"));
  auto fisher = compute_fisher(s.model, held_out(shard, s.loader, 0), fo);
  NamedParams current;
  for (const std::string& name : s.ewc->names()) current.push_back({name, s.model->named_parameters()[name]});
  WeightAnchor next = *s.ewc;
  next.consolidate(current, fisher, r.get_float("akp.ewc_gamma"));
  const std::string path = (std::filesystem::path(run_dir) / kEwcAnchorFile).string();
  next.save(path);
  std::printf("online EWC: anchor for the next stage (F <- %g F + Fisher on %s) in %s\n", r.get_float("akp.ewc_gamma"),
              shard.c_str(), path.c_str());
}

bool akp_enabled(const Recipe& r) {
  return r.get_float("akp.kd_weight") > 0 || r.get_float("akp.ewc_weight") > 0 || r.get_float("akp.l2sp_weight") > 0;
}

void AkpMethod::attach(Trainer& trainer, MethodContext& in) {
  AkpState* s = state_.get();
  const Recipe& r = in.recipe;
  s->model = in.model;
  s->mode = in.mode;
  s->loader = in.loader;
  s->adapters = in.attached;
  s->recipe = &r;
  const bool frozen_base = in.mode != TrainMode::Full;
  const torch::Device device = in.model->device();
  s->kd_weight = r.get_float("akp.kd_weight");
  s->ewc_weight = r.get_float("akp.ewc_weight");
  const double l2sp_weight = r.get_float("akp.l2sp_weight");

  // The teacher: the base network itself when only added modules train, else a frozen copy.
  if (s->kd_weight > 0 || (r.get_float("akp.budget") > 0 && r.get_string("akp.budget_reference") == "base")) {
    if (frozen_base) {
      s->teacher = std::make_unique<Teacher>(Teacher::same_network(in.model));
    } else {
      if (!r.has("model.path")) fail("akp.kd_weight", "distillation needs a pre-trained model.path (the teacher)");
      s->teacher = std::make_unique<Teacher>(Teacher::frozen_copy(load_pretrained(r.get_string("model.path"), device).model));
    }
  }

  if (s->kd_weight > 0) {
    const double temperature = r.get_float("akp.temperature");
    const std::string domain_rule = r.get_string("akp.kd_domain_weight");
    const Method* router = nullptr;  // the method that tells general tokens apart (SCAR)
    for (const Method* m : in.attached)
      if (m->routes_general_tokens()) router = m;
    if (domain_rule == "router" && !router)
      fail("akp.kd_domain_weight", "\"router\" needs SCAR with a general expert (scar.enabled, scar.general_expert); "
                                   "use \"none\" or \"all\"");
    AkpState* state = s;
    const SourceDomains domains = in.domains;
    trainer.add_loss_term({"kd", s->kd_weight, [state, router, domains, temperature, domain_rule](const StepContext& c) {
      const auto& t = c.tensors;
      const int64_t B = t.input_ids.size(0), T = t.input_ids.size(1);
      auto opts = torch::TensorOptions().device(t.input_ids.device()).dtype(torch::kFloat);
      // Positions with a next-token target: the causal loss's own mask (packing-aware).
      auto target = (t.labels != -100).to(torch::kFloat).roll(-1, 1);
      target.select(1, T - 1).zero_();
      torch::Tensor domain_w;
      if (domain_rule == "router") domain_w = router->general_probability(B, T);
      if (!domain_w.defined()) domain_w = torch::full({B, T}, domain_rule == "all" ? 1.0 : 0.0, opts);
      std::vector<float> replay;
      for (const std::string& d : row_domains(c.batch, domains)) replay.push_back(d == "general" ? 1.f : 0.f);
      auto is_replay = torch::tensor(replay, opts).unsqueeze(1);
      auto w = (is_replay + (1 - is_replay) * domain_w.to(opts)) * target;
      auto rows = (w.sum(1) > 0).nonzero().squeeze(1);
      if (rows.numel() == 0) return torch::Tensor();
      ForwardOptions fo;
      fo.attention_mask = t.attention_mask.index_select(0, rows);
      if (t.segment_ids.defined()) fo.segment_ids = t.segment_ids.index_select(0, rows);
      auto teacher = state->teacher->forward(t.input_ids.index_select(0, rows), fo).logits;
      return distillation_loss(c.output.logits.index_select(0, rows), teacher, w.index_select(0, rows), temperature);
    }});
  }

  if (s->ewc_weight > 0 || l2sp_weight > 0) {
    const NamedParams current = penalised(*s, frozen_base);
    if (current.empty())
      fail("akp", "EWC / L2-SP need weights that train: full mode, LoRA adapters or SCAR experts");
    // Anchors: the base weights (deltas are measured from zero change, so theta* = 0 there).
    // Several SCAR experts adapt the same weight: the anchor holds each name once.
    NamedParams anchor_params;
    for (const auto& [name, t] : current)
      if (std::none_of(anchor_params.begin(), anchor_params.end(), [&](const auto& a) { return a.first == name; }))
        anchor_params.push_back({name, frozen_base ? torch::zeros_like(t) : t.detach()});
    // EWC and L2-SP are the same quadratic penalty with another importance.
    const auto add_penalty = [&](const char* term, double weight, const WeightAnchor* anchor) {
      trainer.add_loss_term({term, weight, [anchor, s, frozen_base](const StepContext&) {
        const NamedParams now = penalised(*s, frozen_base);
        return frozen_base ? anchor->penalty_of_deltas(now) : anchor->penalty(now);
      }, false});  // a weight penalty: no logits
    };
    if (s->ewc_weight > 0 && r.has("akp.ewc_previous")) {
      // A later stage of sequential domains: the previous stage's consolidated anchor.
      if (frozen_base) fail("akp.ewc_previous", "online EWC over stages needs train.mode = \"full\"");
      s->ewc = std::make_unique<WeightAnchor>(WeightAnchor::load(r.get_string("akp.ewc_previous")));
      s->ewc->to(device);
    } else if (s->ewc_weight > 0) {
      if (!r.has("akp.fisher_data")) fail("akp.fisher_data", "not set: EWC needs general data for the Fisher (a token shard)");
      const std::string shard = r.get_string("akp.fisher_data");
      FisherOptions fo;
      fo.max_sequences = r.get_int("akp.fisher_sequences");
      fo.seed = uint64_t(r.get_int("akp.fisher_seed"));
      std::map<std::string, torch::Tensor> fisher;
      {
        BaseNetworkScope base(in.model);  // the Fisher of the base network, before adaptation
        fisher = load_or_compute_fisher(in.model, held_out(shard, in.loader, 0), {shard}, fo, r.get_string("akp.fisher_cache"));
      }
      for (auto& [name, f] : fisher) f = f.to(device);
      s->ewc = std::make_unique<WeightAnchor>(WeightAnchor::ewc(anchor_params, fisher));
    }
    if (s->ewc) add_penalty("ewc", s->ewc_weight, s->ewc.get());
    if (l2sp_weight > 0) {
      s->l2sp = std::make_unique<WeightAnchor>(WeightAnchor::l2sp(anchor_params));
      add_penalty("l2sp", l2sp_weight, s->l2sp.get());
    }
  }

  if (r.get_float("akp.budget") > 0) {
    if (!r.has("akp.budget_data")) fail("akp.budget_data", "not set: the forgetting budget needs a held-out general shard");
    ForgettingBudgetOptions bo;
    bo.budget = r.get_float("akp.budget");
    bo.every = r.get_int("akp.budget_every");
    s->budget = std::make_unique<ForgettingBudget>(bo);
    s->budget_batches = held_out(r.get_string("akp.budget_data"), in.loader, r.get_int("akp.budget_batches"));
    // The reference loss. "start": the model being trained, as training starts. It computes the
    // base function exactly unless DTR is attached (adapters and experts start at zero), and with
    // DTR the gap to the base is routing's own cost, which distillation strength cannot remove:
    // measured against the base, the controller raised lambda_kd 16x for it and starved the domain
    // (docs/gem.md). "base": the network before adaptation (the teacher). On resume the reference
    // comes back from the checkpoint. "routed" (frozen base only): at every measurement, the
    // network as it is then routed (DTR's current routers) with its adapters and experts off, so
    // the rise is what adaptation did to general text, not what skipping compute costs (that
    // cost is DTR's own trade, measured and reported apart).
    const std::string reference = r.get_string("akp.budget_reference");
    if (reference == "routed" && !frozen_base)
      fail("akp.budget_reference", "\"routed\" switches adapters and experts off, so it needs a frozen base "
                                   "(train.mode frozen or lora), not full fine-tuning");
    const bool routed_reference = reference == "routed";
    if (reference == "start" || routed_reference) {
      s->base_general_loss = mean_loss(in.model, s->budget_batches, device);
    } else {
      Transformer teacher_model = s->teacher->model();
      BaseNetworkScope base(in.model);
      s->base_general_loss = mean_loss(s->teacher->shares_network() ? in.model : teacher_model, s->budget_batches, device);
    }
    std::printf("forgetting budget: reference general loss %.4f (%s), budget +%.1f%%, measured every %lld steps\n",
                s->base_general_loss, r.get_string("akp.budget_reference").c_str(), 100 * bo.budget, (long long)bo.every);
    AkpState* state = s;
    Transformer model = in.model;
    Trainer* tr = &trainer;
    auto apply = [state, tr] {
      const double scale = state->budget->scale();
      if (state->kd_weight > 0) tr->loss_term("kd").weight = state->kd_weight * scale;
      if (state->ewc_weight > 0) tr->loss_term("ewc").weight = state->ewc_weight * scale;
    };
    StepHook hook;
    hook.after = [state, model, apply, device, routed_reference](int64_t step) mutable {
      std::map<std::string, double> m;
      if (state->budget->due(step + 1)) {
        if (routed_reference) {
          BaseNetworkScope adapters_off(model, /*keep_block_wrappers=*/true);
          state->base_general_loss = mean_loss(model, state->budget_batches, device);
          m["akp/reference_loss"] = state->base_general_loss;
        }
        state->last_general_loss = mean_loss(model, state->budget_batches, device);
        state->budget->update(step + 1, state->last_general_loss, state->base_general_loss);
        state->last_rise = state->budget->trajectory().back().rise;
        apply();
        m["akp/general_loss"] = state->last_general_loss;
        m["akp/rise"] = state->last_rise;
      }
      m["akp/scale"] = state->budget->scale();
      if (state->kd_weight > 0) m["akp/lambda_kd"] = state->kd_weight * state->budget->scale();
      if (state->ewc_weight > 0) m["akp/lambda_ewc"] = state->ewc_weight * state->budget->scale();
      return m;
    };
    trainer.add_step_hook(hook);
    trainer.add_checkpoint_hook(
        {[state](const std::string& folder) {
           nlohmann::json j = {{"base_general_loss", state->base_general_loss}, {"budget", state->budget->state()}};
           write_text_file_atomic((std::filesystem::path(folder) / kAkpStateFile).string(), j.dump(2) + "\n");
         },
         [state, apply](const std::string& folder) {
           const std::string path = (std::filesystem::path(folder) / kAkpStateFile).string();
           if (!file_exists(path)) fail(folder, std::string(kAkpStateFile) + " is missing (the run uses akp.budget)");
           nlohmann::json j;
           try {
             j = nlohmann::json::parse(read_text_file(path));
           } catch (const nlohmann::json::exception& e) {
             fail(path, std::string("not valid JSON: ") + e.what());
           }
           if (!j.contains("base_general_loss") || !j.at("base_general_loss").is_number() || !j.contains("budget"))
             fail(path, "expected keys base_general_loss (number) and budget");
           state->base_general_loss = j.at("base_general_loss").get<double>();
           state->budget->load_state(j.at("budget"), path);
           apply();
         }});
  }
}

}  // namespace gemkit

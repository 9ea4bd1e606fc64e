#include "export/dense_model.h"

#include "core/error.h"
#include "routing/gem_modules.h"

namespace gemkit {

void merge_scar_expert(const std::string& checkpoint, Transformer& model, Scar& scar, const std::string& domain,
                       DenseModel& out) {
  if (domain.empty()) {
    std::string names;
    for (const auto& n : scar.expert_names()) names += (names.empty() ? "" : ", ") + n;
    fail(checkpoint, "routed checkpoint with SCAR experts: choose the domain to merge with --domain (one of " + names + ")");
  }
  if (scar.expert_index(domain) < 0) fail(checkpoint, "--domain: no SCAR expert named \"" + domain + "\"");
  if (domain != "general") {
    torch::NoGradGuard no_grad;
    std::map<std::string, torch::Tensor> params;
    for (const auto& item : model->named_parameters()) params[item.key()] = item.value();
    int64_t merged = 0;
    for (const auto& [name, delta] : scar.weight_deltas(domain)) {
      auto it = params.find(name);
      if (it == params.end()) fail(checkpoint, "SCAR expert delta for unknown weight " + name);
      it->second.add_(delta.to(it->second.dtype()));
      ++merged;
    }
    out.notes.push_back("merged SCAR expert \"" + domain + "\" into " + std::to_string(merged) +
                        " weights in float (W + alpha/r B A)");
  } else {
    out.notes.push_back("SCAR: the general expert (the base weights) exported; no expert merged");
  }
  out.provenance["merged_domain"] = domain;
}

DenseModel load_dense_model(const std::string& checkpoint, const std::string& domain) {
  DenseModel out{load_pretrained(checkpoint, torch::kCPU), {}, {}};
  out.provenance["source"] = checkpoint;
  std::unique_ptr<GemModules> gem = load_gem_modules(out.pre.model, checkpoint);
  if (!gem) {
    if (!domain.empty()) fail(checkpoint, "--domain " + domain + ": the checkpoint has no SCAR experts (no gem.json)");
    return out;
  }
  if (Scar* scar = gem->scar()) merge_scar_expert(checkpoint, out.pre.model, *scar, domain, out);
  if (gem->dtr()) {
    out.notes.push_back("DTR: routed blocks exported dense (every token runs every block); "
                        "compare `gemkit eval` of the checkpoint and of the export for the quality change");
    out.provenance["dtr"] = "dropped: blocks dense";
  }
  return out;  // gem's destructor puts the base blocks back and removes the expert hooks
}

}  // namespace gemkit

#include "export/peft_experts.h"

#include <filesystem>
#include <map>

#include "core/error.h"
#include "export/peft_export.h"
#include "model/checkpoint.h"
#include "routing/gem_modules.h"

namespace gemkit {

std::vector<std::string> export_scar_experts_as_peft(const std::string& checkpoint, const std::string& folder,
                                                     const std::string& base_model_name, bool overwrite) {
  Pretrained pre = load_pretrained(checkpoint, torch::kCPU);
  std::unique_ptr<GemModules> gem = load_gem_modules(pre.model, checkpoint);
  Scar* scar = gem ? gem->scar() : nullptr;
  if (!scar) fail(checkpoint, "has no SCAR experts (gem.json with scar); a LoRA run's PEFT adapter is RUN/adapter already");
  const std::map<std::string, torch::Tensor> params = scar->named_parameters();
  std::vector<std::string> written;
  for (const std::string& expert : scar->expert_names()) {
    if (expert == "general") continue;  // the base path: nothing to adapt
    const std::string prefix = "experts." + expert + ".";
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    std::vector<std::string> paths;
    for (const auto& [name, t] : params) {
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string rest = name.substr(prefix.size());  // <module path>.lora_A.weight
      tensors.push_back({"base_model.model." + rest, t});
      const std::string path = rest.substr(0, rest.rfind(".lora_"));
      if (paths.empty() || paths.back() != path) paths.push_back(path);
    }
    LoraOptions lo;
    lo.rank = scar->options().rank;
    lo.alpha = scar->options().alpha;
    lo.dropout = 0;
    lo.target_modules.clear();  // the explicit module paths: experts sit on routed blocks only
    PeftExportOptions po;
    po.base_model_name_or_path = base_model_name;
    po.overwrite = overwrite;
    const std::string out = (std::filesystem::path(folder) / expert).string();
    write_peft_folder(tensors, lo, paths, pre.config, out, po);
    written.push_back(out);
  }
  return written;
}

}  // namespace gemkit

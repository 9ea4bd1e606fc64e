// gemkit export gguf | compact | torchscript | hf | peft: a checkpoint (plain, LoRA-merged or routed GEM) as a GGUF
// file for llama.cpp (every tensor in the type the quantization policy gives it), as a dense
// Hugging Face folder, or its SCAR experts as PEFT adapters.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "export/compact_export.h"
#include "export/dense_model.h"
#include "export/gguf_export.h"
#include "export/peft_experts.h"
#include "export/torchscript_export.h"
#include "model/checkpoint.h"
#include "quant/qat_training.h"
#include "train/recipe.h"

namespace gemkit::cli {
namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string checkpoint, out, quant = "recipe", domain, name;
  std::vector<std::string> policy;
  bool force = false;
};

// --policy rules, else --quant: a type for every weight, "hybrid", or "recipe" (the policy the
// checkpoint was trained with when its recipe has quant.qat, else f32).
QuantPolicy choose_policy(const ExportArgs& a) {
  if (!a.policy.empty()) return QuantPolicy::parse(a.policy, "--policy");
  if (a.quant == "hybrid") return QuantPolicy::hybrid();
  if (a.quant == "recipe") {
    const std::string recipe_path = (fs::path(a.checkpoint) / "resolved_recipe.toml").string();
    if (file_exists(recipe_path)) {
      const Recipe r = Recipe::load(recipe_path);
      if (r.has("quant.qat") && r.get_bool("quant.qat")) return recipe_quant_policy(r, recipe_path);
    }
    return QuantPolicy();
  }
  return QuantPolicy::uniform(parse_quant_type(a.quant, "--quant (f32, f16, q8_0, q4_0, hybrid or recipe)"));
}

std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MB", double(bytes) / 1e6);
  return buf;
}

void run_export_gguf(const ExportArgs& a) {
  const QuantPolicy policy = choose_policy(a);
  DenseModel dense = load_dense_model(a.checkpoint, a.domain);
  for (const auto& n : dense.notes) std::printf("note: %s\n", n.c_str());
  GgufExportOptions o;
  o.policy = policy;
  o.name = a.name.empty() ? fs::path(a.checkpoint).filename().string() : a.name;
  o.tokenizer_folder = a.checkpoint;
  o.provenance = dense.provenance;
  o.provenance["exporter"] = "gemkit export gguf";
  o.overwrite = a.force;
  fs::path out(a.out);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  const GgufExportReport rep = export_gguf(dense.pre.model, o, a.out);
  std::map<QuantType, std::pair<int, uint64_t>> by_type;
  for (const auto& t : rep.tensors) {
    by_type[t.type].first += 1;
    by_type[t.type].second += t.bytes;
  }
  std::printf("policy: %s\n", policy.describe().c_str());
  std::printf("| type | tensors | bytes |\n|---|---:|---:|\n");
  for (const auto& [type, v] : by_type) std::printf("| %s | %d | %s |\n", quant_type_name(type), v.first, mb(v.second).c_str());
  std::printf("wrote %s: %s (%.1f%% of the f32 weights' %s)\n", a.out.c_str(), mb(rep.file_bytes).c_str(),
              100.0 * double(rep.file_bytes) / double(rep.f32_bytes), mb(rep.f32_bytes).c_str());
}

void run_export_compact(const ExportArgs& a) {
  const QuantPolicy policy = choose_policy(a);
  fs::path out(a.out);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  const GgufExportReport rep = export_compact(a.checkpoint, a.domain, policy, a.out, a.force);
  int routers = 0;
  for (const auto& t : rep.tensors) routers += t.gguf_name.find("dtr_router.weight") != std::string::npos;
  std::printf("policy: %s\n", policy.describe().c_str());
  std::printf("wrote %s: %s, %d token router(s) kept (run it with gemkit-run)\n", a.out.c_str(), mb(rep.file_bytes).c_str(), routers);
}

void run_export_hf(const ExportArgs& a) {
  DenseModel dense = load_dense_model(a.checkpoint, a.domain);
  for (const auto& n : dense.notes) std::printf("note: %s\n", n.c_str());
  SaveOptions so;
  so.tokenizer_source = a.checkpoint;
  so.overwrite = a.force;
  save_pretrained(dense.pre.model, dense.pre.dtypes, a.out, so);
  std::printf("wrote %s (Hugging Face folder: config.json, model.safetensors, tokenizer)\n", a.out.c_str());
}

void run_export_torchscript(const ExportArgs& a) {
  DenseModel dense = load_dense_model(a.checkpoint, a.domain);
  for (const auto& n : dense.notes) std::printf("note: %s\n", n.c_str());
  fs::path out(a.out);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  export_torchscript(dense.pre.model, a.out, a.force);
  std::printf("wrote %s (TorchScript: torch.jit.load(path)(input_ids) -> logits)\n", a.out.c_str());
}

void run_export_peft(const ExportArgs& a) {
  const std::string base = a.name.empty() ? "checkpoints/gemkit-base" : a.name;
  for (const auto& f : export_scar_experts_as_peft(a.checkpoint, a.out, base, a.force)) std::printf("wrote %s\n", f.c_str());
}

}  // namespace

void add_export_commands(CLI::App& app) {
  CLI::App* exp = app.add_subcommand("export", "write a checkpoint for edge runtimes and other tools (gguf, compact, torchscript, hf, peft)");
  exp->require_subcommand(1);
  auto a = std::make_shared<ExportArgs>();
  CLI::App* gguf = exp->add_subcommand("gguf", "GGUF v3 (llama architecture) for llama.cpp; SCAR expert merged, DTR dense");
  gguf->add_option("checkpoint", a->checkpoint, "checkpoint folder (a run's step folder, merged LoRA folder or base model)")->required();
  gguf->add_option("--out,-o", a->out, "output .gguf file")->required();
  gguf->add_option("--quant,-q", a->quant, "f32, f16, q8_0, q4_0, hybrid (attention/embeddings q8_0, MLP q4_0), or recipe "
                                          "(the checkpoint's QAT policy; f32 without QAT)");
  gguf->add_option("--policy", a->policy, "\"NAME_GLOB=TYPE\" rules, first match wins (overrides --quant)");
  gguf->add_option("--domain", a->domain, "routed checkpoint: the SCAR expert to merge (\"general\": none)");
  gguf->add_option("--name", a->name, "general.name (default: the folder name)");
  gguf->add_flag("--force", a->force, "replace an existing output file");
  gguf->callback([a] { run_export_gguf(*a); });

  auto k = std::make_shared<ExportArgs>();
  CLI::App* compact = exp->add_subcommand("compact", "gemkit's compact format for gemkit-run: quantized base weights + token routers");
  compact->add_option("checkpoint", k->checkpoint, "checkpoint folder (routed or plain)")->required();
  compact->add_option("--out,-o", k->out, "output .gguf file")->required();
  compact->add_option("--quant,-q", k->quant, "f32, f16, q8_0, q4_0, hybrid, or recipe (as for gguf)");
  compact->add_option("--policy", k->policy, "\"NAME_GLOB=TYPE\" rules, first match wins (overrides --quant)");
  compact->add_option("--domain", k->domain, "SCAR checkpoint: the expert to merge (\"general\": none)");
  compact->add_flag("--force", k->force, "replace an existing output file");
  compact->callback([k] { run_export_compact(*k); });

  auto h = std::make_shared<ExportArgs>();
  CLI::App* hf = exp->add_subcommand("hf", "dense Hugging Face folder (SCAR expert merged, DTR dropped), float weights");
  hf->add_option("checkpoint", h->checkpoint, "checkpoint folder")->required();
  hf->add_option("--out,-o", h->out, "output folder")->required();
  hf->add_option("--domain", h->domain, "routed checkpoint: the SCAR expert to merge (\"general\": none)");
  hf->add_flag("--force", h->force, "replace a checkpoint already in the folder");
  hf->callback([h] { run_export_hf(*h); });

  auto t = std::make_shared<ExportArgs>();
  CLI::App* ts = exp->add_subcommand("torchscript", "TorchScript module (source + parameters) for torch::jit::load / torch.jit.load");
  ts->add_option("checkpoint", t->checkpoint, "checkpoint folder")->required();
  ts->add_option("--out,-o", t->out, "output .pt file")->required();
  ts->add_option("--domain", t->domain, "routed checkpoint: the SCAR expert to merge (\"general\": none)");
  ts->add_flag("--force", t->force, "replace an existing output file");
  ts->callback([t] { run_export_torchscript(*t); });

  auto p = std::make_shared<ExportArgs>();
  CLI::App* peft = exp->add_subcommand("peft", "each SCAR expert of a routed checkpoint as a PEFT LoRA adapter folder");
  peft->add_option("checkpoint", p->checkpoint, "routed checkpoint folder (gem.json with SCAR)")->required();
  peft->add_option("--out,-o", p->out, "output folder; one sub-folder per domain expert")->required();
  peft->add_option("--base-model", p->name, "base_model_name_or_path written in adapter_config.json");
  peft->add_flag("--force", p->force, "replace adapters already there");
  peft->callback([p] { run_export_peft(*p); });
}

}  // namespace gemkit::cli

// gemkit export gguf | compact | torchscript | hf | peft: a checkpoint (plain, LoRA-merged or routed GEM) as a GGUF
// file for llama.cpp (every tensor in the type the quantization policy gives it), as a dense
// Hugging Face folder, or its SCAR experts as PEFT adapters.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
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
#include "import/model_registry.h"
#include "methods/qat.h"
#include "model/checkpoint.h"
#include "train/recipe.h"

namespace gemkit::cli {
namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string checkpoint, out, quant = "recipe", domain, name, expert_quant = "q8_0";
  std::vector<std::string> policy;
  std::optional<double> scar_general_bias;
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
  CompactExportOptions o;
  o.domain = a.domain;
  o.policy = policy;
  o.expert_type = parse_quant_type(a.expert_quant, "--expert-quant (f32, f16 or q8_0)");
  o.scar_general_bias = a.scar_general_bias;
  o.overwrite = a.force;
  const GgufExportReport rep = export_compact(a.checkpoint, o, a.out);
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

namespace {

// One export subcommand with the options every one has: the checkpoint, --out and --force.
CLI::App* export_subcommand(CLI::App* exp, const char* name, const char* what, const std::shared_ptr<ExportArgs>& a,
                            const char* checkpoint, const char* out, void (*run)(const ExportArgs&)) {
  CLI::App* cmd = exp->add_subcommand(name, what);
  cmd->add_option("checkpoint", a->checkpoint, checkpoint)->required();
  cmd->add_option("--out,-o", a->out, out)->required();
  cmd->add_flag("--force", a->force, "replace what is already there");
  cmd->callback([a, run] {
    a->checkpoint = resolve_model_path(a->checkpoint, default_cache_dir());  // models:NAME
    run(*a);
  });
  return cmd;
}

void add_quant_options(CLI::App* cmd, ExportArgs& a) {
  cmd->add_option("--quant,-q", a.quant, "f32, f16, q8_0, q4_0, hybrid (attention/embeddings q8_0, MLP q4_0), or recipe "
                                         "(the checkpoint's QAT policy; f32 without QAT)");
  cmd->add_option("--policy", a.policy, "\"NAME_GLOB=TYPE\" rules, first match wins (overrides --quant)");
}

void add_domain_option(CLI::App* cmd, ExportArgs& a) {
  cmd->add_option("--domain", a.domain, "routed checkpoint: the SCAR expert to merge (\"general\": none)");
}

}  // namespace

void add_export_commands(CLI::App& app) {
  CLI::App* exp = app.add_subcommand("export", "write a checkpoint for edge runtimes and other tools (gguf, compact, torchscript, hf, peft)");
  exp->require_subcommand(1);
  auto gguf_args = std::make_shared<ExportArgs>(), compact_args = std::make_shared<ExportArgs>(),
       hf_args = std::make_shared<ExportArgs>(), ts_args = std::make_shared<ExportArgs>(),
       peft_args = std::make_shared<ExportArgs>();

  CLI::App* gguf = export_subcommand(exp, "gguf", "GGUF v3 (llama architecture) for llama.cpp; SCAR expert merged, DTR dense",
                                     gguf_args, "checkpoint folder (a run's step folder, merged LoRA folder or base model)",
                                     "output .gguf file", run_export_gguf);
  add_quant_options(gguf, *gguf_args);
  add_domain_option(gguf, *gguf_args);
  gguf->add_option("--name", gguf_args->name, "general.name (default: the folder name)");

  CLI::App* compact = export_subcommand(exp, "compact", "gemkit's compact format for gemkit-run: quantized base weights + token routers and SCAR experts",
                                        compact_args, "checkpoint folder (routed or plain)", "output .gguf file", run_export_compact);
  add_quant_options(compact, *compact_args);
  compact->add_option("--expert-quant", compact_args->expert_quant,
                      "SCAR experts' adapters: q8_0 (default: the tensors whose rows fit 32-blocks, f16 the others), f16 or f32");
  compact->add_option("--scar-general-bias", compact_args->scar_general_bias,
                      "SCAR: nats added to the general expert's router logit in the file (default: the checkpoint's; "
                      "choose it with gemkit eval --scar-general-bias on validation)");
  compact->add_option("--domain", compact_args->domain, "SCAR checkpoint: merge this expert instead of keeping the routed experts (\"general\": none)");

  add_domain_option(export_subcommand(exp, "hf", "dense Hugging Face folder (SCAR expert merged, DTR dropped), float weights",
                                      hf_args, "checkpoint folder", "output folder", run_export_hf),
                    *hf_args);
  add_domain_option(export_subcommand(exp, "torchscript", "TorchScript module (source + parameters) for torch::jit::load / torch.jit.load",
                                      ts_args, "checkpoint folder", "output .pt file", run_export_torchscript),
                    *ts_args);
  CLI::App* peft = export_subcommand(exp, "peft", "each SCAR expert of a routed checkpoint as a PEFT LoRA adapter folder", peft_args,
                                     "routed checkpoint folder (gem.json with SCAR)", "output folder; one sub-folder per domain expert",
                                     run_export_peft);
  peft->add_option("--base-model", peft_args->name, "base_model_name_or_path written in adapter_config.json");
}

}  // namespace gemkit::cli

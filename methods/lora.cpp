#include "methods/lora.h"

#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/file_io.h"
#include "export/peft_export.h"
#include "formats/safetensors.h"
#include "model/checkpoint.h"
#include "model/state_dict.h"
#include "preservation/weight_penalty.h"

namespace gemkit {
namespace fs = std::filesystem;

LoraOptions lora_options_from_recipe(const Recipe& r) {
  LoraOptions o;
  o.rank = r.get_int("lora.rank");
  o.alpha = r.get_float("lora.alpha");
  o.rslora = r.get_bool("lora.rslora");
  o.dropout = r.get_float("lora.dropout");
  o.target_modules = r.get_strings("lora.target_modules");
  o.seed = uint64_t(r.get_int("lora.seed"));
  o.freeze_base = true;
  return o;
}

namespace {

void save_generator_states(const LoraAdapters& adapters, const std::string& path) {
  SafetensorsWriter writer;
  for (const auto& [name, state] : adapters.generator_states()) {
    torch::Tensor c = state.contiguous();
    writer.add(name, DType::U8, c.sizes().vec(), c.data_ptr(), size_t(c.nbytes()), std::make_shared<torch::Tensor>(c));
  }
  writer.write(path);
}

void restore_generator_states(LoraAdapters& adapters, const std::string& path) {
  if (!file_exists(path)) fail(path, "missing: the checkpoint has no LoRA dropout generator states");
  SafetensorsSet file = SafetensorsSet::open(path);
  std::map<std::string, torch::Tensor> states;
  for (const std::string& name : adapters.module_paths()) {
    const TensorView* v = file.find(name);
    if (!v) fail(path, "no dropout generator state for " + name);
    states[name] = to_tensor(*v).clone();
  }
  adapters.set_generator_states(states, path);
}

}  // namespace

void LoraMethod::attach(Trainer& trainer, MethodContext& context) {
  adapters_ = LoraAdapters::attach(context.model, lora_options_from_recipe(context.recipe));
  trainer.add_parameters(adapters_.named_parameters());
  CheckpointHook hook;
  hook.save = [this, model = context.model, base_model = context.base_model](const std::string& folder) {
    PeftExportOptions peft;
    peft.base_model_name_or_path = base_model;
    export_peft_adapter(adapters_, model, (fs::path(folder) / "adapter").string(), peft);
    save_generator_states(adapters_, (fs::path(folder) / kLoraRngFile).string());
  };
  hook.restore = [this](const std::string& folder) {
    restore_generator_states(adapters_, (fs::path(folder) / kLoraRngFile).string());
  };
  trainer.add_checkpoint_hook(std::move(hook));
}

void LoraMethod::finish(const MethodContext& context) {
  const bool merge = context.recipe.get_bool("train.lora_merge_on_save");
  PeftExportOptions peft;
  peft.base_model_name_or_path = context.base_model;
  peft.overwrite = true;
  export_peft_adapter(adapters_, context.model, (fs::path(context.run_dir) / "adapter").string(), peft);
  if (merge) {
    Transformer model = context.model;
    adapters_.merge();
    SaveOptions save;
    save.tokenizer_source = context.tokenizer_source;
    save.overwrite = true;
    save_pretrained(model, TensorDtypes{}, (fs::path(context.run_dir) / "merged").string(), save);
    adapters_.unmerge();
  }
  std::printf("adapter: %s/adapter%s\n", context.run_dir.c_str(),
              merge ? (" (merged checkpoint: " + context.run_dir + "/merged)").c_str() : "");
}

int64_t LoraMethod::added_parameters() const {
  int64_t n = 0;
  for (const torch::Tensor& p : adapters_.parameters()) n += p.numel();
  return n;
}

NamedParams LoraMethod::weight_deltas() const {
  if (adapters_.module_paths().empty()) return {};
  return lora_weight_deltas(adapters_);
}

}  // namespace gemkit

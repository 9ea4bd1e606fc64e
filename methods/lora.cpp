#include "methods/lora.h"

#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/file_io.h"
#include "model/checkpoint.h"
#include "formats/safetensors.h"
#include "model/state_dict.h"
#include "export/peft_export.h"

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

void add_lora_checkpointing(Trainer& trainer, LoraAdapters& adapters, const Transformer& model,
                            const std::string& base_model) {
  CheckpointHook hook;
  hook.save = [&adapters, model, base_model](const std::string& folder) {
    PeftExportOptions peft;
    peft.base_model_name_or_path = base_model;
    export_peft_adapter(adapters, model, (fs::path(folder) / "adapter").string(), peft);
    save_generator_states(adapters, (fs::path(folder) / kLoraRngFile).string());
  };
  hook.restore = [&adapters](const std::string& folder) {
    restore_generator_states(adapters, (fs::path(folder) / kLoraRngFile).string());
  };
  trainer.add_checkpoint_hook(std::move(hook));
}

void write_final_lora(LoraAdapters& adapters, Transformer& model, const std::string& run_dir,
                      const std::string& base_model, const std::string& tokenizer_source, bool merge) {
  PeftExportOptions peft;
  peft.base_model_name_or_path = base_model;
  peft.overwrite = true;
  export_peft_adapter(adapters, model, (fs::path(run_dir) / "adapter").string(), peft);
  if (!merge) return;
  adapters.merge();
  SaveOptions save;
  save.tokenizer_source = tokenizer_source;
  save.overwrite = true;
  save_pretrained(model, TensorDtypes{}, (fs::path(run_dir) / "merged").string(), save);
  adapters.unmerge();
}

}  // namespace gemkit

#include "export/peft_export.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/safetensors.h"
#include "model/state_dict.h"

namespace gemkit {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string join(const std::string& folder, const char* name) { return (fs::path(folder) / name).string(); }

bool is_plain_name(const std::string& pattern) { return pattern != "all-linear" && pattern.rfind("re:", 0) != 0; }

json task_type_for(const ModelConfig& config) {
  switch (config.head) {
    case Head::CausalLM: return "CAUSAL_LM";
    case Head::SequenceClassification: return "SEQ_CLS";
    default: return nullptr;  // PEFT has no task type for masked LM or a bare encoder
  }
}

}  // namespace

void write_peft_folder(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const LoraOptions& lo,
                       const std::vector<std::string>& module_paths, const ModelConfig& model_config,
                       const std::string& folder, const PeftExportOptions& options) {
  if (tensors.empty()) fail(folder, "no LoRA adapters to export");
  std::error_code ec;
  if (fs::exists(folder, ec) && !fs::is_directory(folder, ec))
    fail(folder, "expected a folder for the PEFT adapter, found a file");
  const std::string config_path = join(folder, kPeftConfigName);
  const std::string weights_path = join(folder, kPeftWeightsName);
  if (!options.overwrite && (file_exists(config_path) || file_exists(weights_path)))
    fail(folder, "already holds a PEFT adapter (pass overwrite to replace it)");
  fs::create_directories(folder, ec);
  if (ec) fail(folder, "cannot create the adapter folder: " + ec.message());

  json targets = json::array();
  bool plain = !lo.target_modules.empty();
  for (const auto& p : lo.target_modules) plain = plain && is_plain_name(p);
  for (const auto& p : plain ? lo.target_modules : module_paths) targets.push_back(p);

  json config = {
      {"peft_type", "LORA"},
      {"task_type", options.task_type.empty() ? task_type_for(model_config) : json(options.task_type)},
      {"base_model_name_or_path", options.base_model_name_or_path.empty()
                                      ? json(nullptr)
                                      : json(options.base_model_name_or_path)},
      {"r", lo.rank},
      {"lora_alpha", lo.alpha},
      {"lora_dropout", lo.dropout},
      {"target_modules", targets},
      {"use_rslora", lo.rslora},
      {"use_dora", false},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"modules_to_save", nullptr},
      {"layers_to_transform", nullptr},
      {"rank_pattern", json::object()},
      {"alpha_pattern", json::object()},
      {"revision", nullptr},
  };

  SafetensorsWriter writer;
  for (const auto& [name, tensor] : tensors) {
    auto stored = std::make_shared<torch::Tensor>(tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous());
    writer.add(name, DType::F32, stored->sizes().vec(), stored->data_ptr(), stored->nbytes(), stored);
  }
  writer.set_metadata({{"format", "pt"}});
  writer.write(weights_path);
  write_text_file_atomic(config_path, config.dump(2) + "\n");
}

void export_peft_adapter(const LoraAdapters& adapters, const Transformer& model, const std::string& folder,
                         const PeftExportOptions& options) {
  if (adapters.merged())
    fail(folder, "cannot export merged LoRA adapters (their delta is in the base weights); unmerge() first");
  if (adapters.module_paths().empty()) fail(folder, "no LoRA adapters to export");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, tensor] : adapters.named_parameters()) tensors.push_back({name, tensor});
  write_peft_folder(tensors, adapters.options(), adapters.module_paths(), model->config(), folder, options);
}

LoraOptions read_peft_config(const std::string& folder) {
  const std::string path = join(folder, kPeftConfigName);
  if (!file_exists(path)) fail(folder, std::string("not a PEFT adapter folder: ") + kPeftConfigName + " not found");
  json config;
  try {
    config = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
  if (!config.is_object()) fail(path, "expected a JSON object");
  auto key = [&](const char* name) -> const json* {
    auto it = config.find(name);
    return it == config.end() || it->is_null() ? nullptr : &*it;
  };
  auto unsupported_if = [&](const char* name, bool bad, const std::string& why) {
    if (bad) fail(path, std::string(name) + ": " + why);
  };

  const json* type = key("peft_type");
  if (!type || !type->is_string() || type->get<std::string>() != "LORA")
    fail(path, "peft_type: expected \"LORA\", got " + (type ? type->dump() : std::string("nothing")));

  LoraOptions o;
  const json* r = key("r");
  if (!r || !r->is_number_integer() || r->get<int64_t>() < 1) fail(path, "r: expected a positive integer");
  o.rank = r->get<int64_t>();
  const json* alpha = key("lora_alpha");
  if (alpha && !alpha->is_number()) fail(path, "lora_alpha: expected a number");
  o.alpha = alpha ? alpha->get<double>() : 8.0;  // PEFT's default
  const json* dropout = key("lora_dropout");
  if (dropout && !dropout->is_number()) fail(path, "lora_dropout: expected a number");
  o.dropout = dropout ? dropout->get<double>() : 0.0;
  const json* rs = key("use_rslora");
  if (rs && !rs->is_boolean()) fail(path, "use_rslora: expected true or false");
  o.rslora = rs && rs->get<bool>();

  const json* targets = key("target_modules");
  if (!targets) fail(path, "target_modules: missing");
  o.target_modules.clear();
  if (targets->is_string()) {
    // PEFT: a string is a regex that must match the whole module name (or "all-linear").
    const std::string t = targets->get<std::string>();
    o.target_modules.push_back(t == "all-linear" ? t : "re:" + t);
  } else if (targets->is_array() && !targets->empty()) {
    for (const auto& t : *targets) {
      if (!t.is_string()) fail(path, "target_modules: expected a list of module names");
      o.target_modules.push_back(t.get<std::string>());
    }
  } else {
    fail(path, "target_modules: expected a module name regex or a non-empty list of module names");
  }

  const json* bias = key("bias");
  unsupported_if("bias", bias && (!bias->is_string() || bias->get<std::string>() != "none"),
                 "only \"none\" is supported (gemkit's LoRA trains no biases)");
  const json* fifo = key("fan_in_fan_out");
  unsupported_if("fan_in_fan_out", fifo && fifo->is_boolean() && fifo->get<bool>(),
                 "true is for GPT-2 style Conv1D layers, which gemkit does not have");
  const json* dora = key("use_dora");
  unsupported_if("use_dora", dora && dora->is_boolean() && dora->get<bool>(), "DoRA adapters are not supported");
  for (const char* name : {"rank_pattern", "alpha_pattern"}) {
    const json* v = key(name);
    unsupported_if(name, v && !(v->is_object() && v->empty()), "per-module ranks/alphas are not supported");
  }
  for (const char* name : {"layers_to_transform", "modules_to_save", "layers_pattern"}) {
    const json* v = key(name);
    unsupported_if(name, v && !(v->is_array() && v->empty()), "not supported (expected null)");
  }
  return o;
}

LoraAdapters load_peft_adapter(Transformer& model, const std::string& folder, bool freeze_base) {
  LoraOptions options = read_peft_config(folder);
  options.freeze_base = false;  // decided after a successful load: a failed one leaves the model as it was
  const std::string weights_path = join(folder, kPeftWeightsName);
  if (!file_exists(weights_path)) fail(folder, std::string(kPeftWeightsName) + " not found");
  SafetensorsFile file(weights_path);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& view : file.tensors()) tensors[view.name] = to_tensor(view);

  LoraAdapters adapters;
  try {
    adapters = LoraAdapters::attach(model, options);
  } catch (const Error& e) {
    fail(join(folder, kPeftConfigName), e.what());
  }
  try {
    adapters.load_named_parameters(tensors, weights_path);
  } catch (...) {
    adapters.detach();
    throw;
  }
  if (freeze_base) {
    for (auto& p : model->parameters()) p.set_requires_grad(false);
  }
  return adapters;
}

}  // namespace gemkit

#include "model/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>

#include "core/error.h"
#include "core/file_io.h"
#include "model/gguf_model.h"
#include "tokenizers/tokenizer.h"

namespace gemkit {

namespace fs = std::filesystem;

const std::vector<std::string> kTokenizerFiles = {
    kTokenizerJsonFile,   kSentencePieceModelFile, kWordPieceVocabFile,
    kTokenizerConfigFile, kSpecialTokensMapFile,   "generation_config.json",
};

namespace {

std::string join(const std::string& folder, const std::string& name) { return (fs::path(folder) / name).string(); }

// transformers' torch_dtype names.
const char* torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    default: return "float32";
  }
}

// The float dtype most of the module's tensors will be written in.
DType dominant_float_dtype(const torch::nn::Module& module, const TensorDtypes& dtypes, DType fallback) {
  std::map<DType, int64_t> elements;
  for (const auto& [name, tensor] : module_state(module)) {
    if (!torch::isFloatingType(tensor.scalar_type())) continue;
    auto it = dtypes.find(name);
    elements[it == dtypes.end() ? fallback : it->second] += tensor.numel();
  }
  DType best = fallback;
  int64_t best_count = -1;
  for (const auto& [dtype, count] : elements)
    if (count > best_count) best = dtype, best_count = count;
  return best;
}

void copy_file_atomic(const std::string& from, const std::string& to) {
  const MappedFile source(from);
  write_file_atomic(to, [&](std::FILE* f) { write_all(f, source.data(), source.size(), to); });
}

bool is_weight_file(const std::string& name) {
  static const std::regex pattern(R"(model(-\d+-of-\d+)?\.safetensors(\.index\.json)?)");
  return std::regex_match(name, pattern);
}

void prepare_folder(const std::string& folder, bool overwrite) {
  std::error_code ec;
  if (fs::exists(folder, ec)) {
    if (!fs::is_directory(folder, ec)) fail(folder, "expected a folder for the checkpoint, found a file");
    if (!fs::is_empty(folder, ec) && !overwrite)
      fail(folder, "expected an empty or new folder, found existing files (pass overwrite to replace the checkpoint)");
    return;
  }
  fs::create_directories(folder, ec);
  if (ec) fail(folder, "cannot create the checkpoint folder: " + ec.message());
}

}  // namespace

TensorDtypes load_weights(torch::nn::Module& module, const std::string& folder,
                          const std::set<std::string>& ignorable) {
  if (!is_directory(folder)) fail(folder, "expected a checkpoint folder, not found");
  return load_state_dict(module, SafetensorsSet::open(folder), ignorable);
}

void save_pretrained(const torch::nn::Module& module, const ModelConfig& config, const TensorDtypes& dtypes,
                     const std::string& folder, const SaveOptions& options) {
  const bool has_tokenizer_source = !options.tokenizer_source.empty();
  if (has_tokenizer_source) {
    if (!is_directory(options.tokenizer_source))
      fail(options.tokenizer_source, "expected a folder with tokenizer files, not found");
    bool has_tokenizer = false;
    for (const char* name : kTokenizerVocabularyFiles)
      has_tokenizer |= file_exists(join(options.tokenizer_source, name));
    if (!has_tokenizer)
      fail(options.tokenizer_source, "expected tokenizer.json, tokenizer.model or vocab.txt, found none");
  }
  prepare_folder(folder, options.overwrite);

  SafetensorsWriter writer;
  add_state_dict(writer, module, dtypes, options.fallback_dtype);
  writer.set_metadata({{"format", "pt"}});
  const std::vector<std::string> written = writer.write_sharded(folder, options.max_shard_bytes);

  // A re-save with fewer shards must not leave an old index or shard that a loader would
  // pick up instead of (or next to) the new weights.
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (is_weight_file(name) && std::find(written.begin(), written.end(), name) == written.end())
      fs::remove(entry.path());
  }

  std::error_code ec;
  if (has_tokenizer_source && !fs::equivalent(options.tokenizer_source, folder, ec)) {
    for (const std::string& name : kTokenizerFiles) {
      const std::string from = join(options.tokenizer_source, name);
      if (file_exists(from)) copy_file_atomic(from, join(folder, name));
    }
  }

  ModelConfig saved = config;
  saved.torch_dtype = torch_dtype_name(dominant_float_dtype(module, dtypes, options.fallback_dtype));
  write_text_file_atomic(join(folder, "config.json"), saved.to_json_text());
}

Pretrained load_pretrained(const std::string& folder, const torch::Device& device) {
  if (!is_directory(folder) && folder.size() > 5 && folder.compare(folder.size() - 5, 5, ".gguf") == 0)
    return load_gguf_model(folder, device);
  if (!is_directory(folder)) fail(folder, "expected a checkpoint folder, not found");
  ModelConfig config = ModelConfig::load(join(folder, "config.json"));
  Transformer model(config);
  TensorDtypes dtypes = load_weights(*model, folder, model->ignorable_checkpoint_tensors());
  model->to(device);
  return {std::move(config), std::move(model), std::move(dtypes)};
}

}  // namespace gemkit

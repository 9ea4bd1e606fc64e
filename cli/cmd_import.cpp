// gemkit import gguf: a llama.cpp GGUF file (llama or qwen2 architecture) as a Hugging Face
// checkpoint folder (import/gguf_import.h).
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "import/gguf_import.h"

namespace gemkit::cli {

void add_import_commands(CLI::App& app) {
  CLI::App* imp = app.add_subcommand("import", "bring a checkpoint of another format into a Hugging Face folder");
  imp->require_subcommand(1);
  struct Args {
    std::string file, out;
    GgufImportOptions options;
  };
  auto a = std::make_shared<Args>();
  CLI::App* gguf = imp->add_subcommand(
      "gguf", "a llama.cpp GGUF (llama, qwen2; F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q5_K/Q6_K) as a "
              "Hugging Face folder: config.json, model.safetensors, tokenizer files, provenance");
  gguf->add_option("file", a->file, "the .gguf file")->required();
  gguf->add_option("-o,--out", a->out, "output folder")->required();
  gguf->add_option("--dtype", a->options.dtype, "how the dequantized weights are stored: f32, bf16 or f16")
      ->capture_default_str();
  gguf->add_flag("--force", a->options.force, "replace the output folder if it exists");
  gguf->callback([a] {
    const GgufImportReport r = import_gguf(a->file, a->out, a->options);
    std::string types;
    for (const auto& [type, count] : r.tensor_types) types += (types.empty() ? "" : ", ") + type + " x" + std::to_string(count);
    std::printf("imported %s (%s, %s): %lld tensors, %.1fM parameters (%s) -> %s as %s\nsource sha256 %s\n",
                a->file.c_str(), r.architecture.c_str(), r.name.empty() ? "unnamed" : r.name.c_str(),
                static_cast<long long>(r.n_tensors), r.n_parameters / 1e6, types.c_str(), a->out.c_str(),
                a->options.dtype.c_str(), r.sha256.c_str());
  });
}

}  // namespace gemkit::cli

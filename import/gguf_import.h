// `gemkit import gguf`: a llama.cpp GGUF file of the llama or qwen2 architecture becomes a
// Hugging Face checkpoint folder that gemkit and transformers load:
//   config.json            LlamaForCausalLM / Qwen2ForCausalLM from the <arch>.* keys
//   model.safetensors      every tensor dequantized (formats/ggml_dequant.h) and stored as
//                          f32, bf16 or f16; llama.cpp's q/k row permutation undone (llama only:
//                          qwen2 files keep Hugging Face's rotate-halves order)
//   tokenizer.json, tokenizer_config.json   from tokenizer.ggml.* (import/tokenizer_files.h)
//   generation_config.json bos / eos ids
//   gemkit_import.json     provenance: source file name, size, sha256, its tensor types
// The folder is written whole or not at all (core/file_io.h write_directory_atomic).
// Torch-free.
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace gemkit {

struct GgufImportOptions {
  std::string dtype = "f32";  // f32 | bf16 | f16: how the dequantized tensors are stored
  bool force = false;         // replace an existing output folder
};

struct GgufImportReport {
  std::string architecture;              // llama | qwen2
  std::string name;                      // general.name
  std::string sha256;                    // of the source file
  int64_t n_tensors = 0, n_parameters = 0;
  std::map<std::string, int64_t> tensor_types;  // ggml type name -> tensor count in the source
};

// Throws gemkit::Error naming the file and the key or tensor for anything it cannot represent
// (another architecture, a tensor type, a pre-tokenizer, RoPE frequency factors, a tensor the
// architecture does not have, shapes that disagree with the keys).
GgufImportReport import_gguf(const std::string& gguf_path, const std::string& out_dir,
                             const GgufImportOptions& options);

// The same into an existing empty folder `dir`, without publishing it (for callers that write
// more into the folder and publish it whole, as `gemkit models fetch`).
GgufImportReport import_gguf_into(const std::string& gguf_path, const std::string& dir,
                                  const std::string& dtype);

}  // namespace gemkit

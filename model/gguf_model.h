// A llama-architecture GGUF file (what `gemkit export gguf` writes, or any llama GGUF of the
// types formats/ggml_dequant.h reads) as a LibTorch model: the config from the llama.* keys, every tensor
// dequantized to f32 (the exact values llama.cpp multiplies with), q and k rows put back in
// Hugging Face order. load_pretrained() takes this path for a *.gguf file, so `gemkit eval`
// and `gemkit generate` measure an exported file directly.
#pragma once
#include <torch/torch.h>

#include <string>

#include "model/checkpoint.h"

namespace gemkit {

// Throws gemkit::Error naming the file and the key or tensor for anything it cannot represent
// (another architecture, a tensor type ggml_dequant cannot read, missing or extra tensors,
// shapes that disagree with the keys).
Pretrained load_gguf_model(const std::string& path, const torch::Device& device = torch::kCPU);

// Hugging Face (rotate halves) -> llama.cpp (interleaved pairs) row order of a q or k weight
// [heads * head_dim, in], and back (docs/design/formats.md).
torch::Tensor permute_rope_rows(const torch::Tensor& w, int64_t heads);
torch::Tensor unpermute_rope_rows(const torch::Tensor& w, int64_t heads);

}  // namespace gemkit

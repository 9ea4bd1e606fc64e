// Named tensors in one safetensors file, with string metadata: the Fisher cache and the EWC
// anchor are stored this way. Callers validate names and shapes against their model.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace gemkit {

// Writes every tensor (copied to the CPU, contiguous, in its own dtype) atomically.
void save_named_tensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                        const std::map<std::string, std::string>& metadata);
// Every tensor of the file, on the CPU. `metadata` (when given) receives __metadata__. A missing
// or malformed file is a gemkit::Error naming it.
std::map<std::string, torch::Tensor> load_named_tensors(const std::string& path,
                                                        std::map<std::string, std::string>* metadata = nullptr);

}  // namespace gemkit

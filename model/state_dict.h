// The bridge between safetensors (torch-free, formats/safetensors.h) and torch modules.
//
// gemkit computes in the parameters' dtype (fp32) whatever the checkpoint stores. Loading
// records each tensor's stored dtype so saving writes it back in that dtype: F16 and BF16
// values survive fp32 exactly, so load-then-save reproduces the tensor bytes.
#pragma once
#include <torch/torch.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "formats/safetensors.h"

namespace gemkit {

// Parameters or tensors by name, in a fixed order (optimizer groups, penalties, exports).
using NamedParams = std::vector<std::pair<std::string, torch::Tensor>>;

// Tensor name -> dtype it was stored in.
using TensorDtypes = std::map<std::string, DType>;

torch::ScalarType to_torch_dtype(DType dtype);
// `where` names the tensor in the error for dtypes safetensors cannot hold.
DType to_safetensors_dtype(torch::ScalarType dtype, const std::string& where);

// A CPU tensor owning a copy of the view's bytes, in the view's dtype.
torch::Tensor to_tensor(const TensorView& view);

// Every parameter and buffer of `module`, by its dotted name (the state-dict names).
std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module);

// Copies `weights` into the module's parameters and buffers, converting to their dtype.
// Strict: a tensor the module expects but the checkpoint lacks, a checkpoint tensor the
// module does not have (unless listed in `ignorable`), a shape mismatch or a dtype of the
// wrong kind (integer data for a float parameter) is a gemkit::Error naming the file, the
// tensor and what was expected. Everything is checked before anything is copied, so a
// failed load leaves the module untouched. Returns the stored dtype of every loaded tensor.
TensorDtypes load_state_dict(torch::nn::Module& module, const SafetensorsSet& weights,
                             const std::set<std::string>& ignorable = {});

// Adds the module's parameters and buffers to `writer` in module order, each converted to
// its recorded dtype, or to `fallback` (float tensors) / its own dtype (others) when none is
// recorded. The writer keeps the converted tensors alive.
void add_state_dict(SafetensorsWriter& writer, const torch::nn::Module& module, const TensorDtypes& dtypes,
                    DType fallback = DType::F32);

}  // namespace gemkit

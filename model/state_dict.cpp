#include "model/state_dict.h"

#include <cstring>

#include "core/error.h"

namespace gemkit {

torch::ScalarType to_torch_dtype(DType dtype) {
  switch (dtype) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
  }
  throw Error("invalid gemkit::DType value " + std::to_string(static_cast<int>(dtype)));
}

DType to_safetensors_dtype(torch::ScalarType dtype, const std::string& where) {
  switch (dtype) {
    case torch::kFloat64: return DType::F64;
    case torch::kFloat32: return DType::F32;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    case torch::kInt16: return DType::I16;
    case torch::kInt8: return DType::I8;
    case torch::kUInt8: return DType::U8;
    case torch::kBool: return DType::BOOL;
    default: fail(where, std::string("expected a dtype safetensors can store, got ") + c10::toString(dtype));
  }
}

torch::Tensor to_tensor(const TensorView& view) {
  torch::Tensor t = torch::empty(view.shape, torch::TensorOptions().dtype(to_torch_dtype(view.dtype)));
  // memcpy rather than from_blob: the mapped bytes may be unaligned for the dtype.
  if (view.nbytes) std::memcpy(t.data_ptr(), view.data, view.nbytes);
  return t;
}

std::map<std::string, torch::Tensor> module_state(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) state.emplace(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) state.emplace(b.key(), b.value());
  return state;
}

namespace {

// Floating data loads into floating parameters, integer into integer, bool into bool:
// anything else would silently turn weights into garbage.
int dtype_kind(DType dtype) {
  if (dtype == DType::BOOL) return 2;
  return dtype_is_floating(dtype) ? 0 : 1;
}

int dtype_kind(torch::ScalarType dtype) {
  if (dtype == torch::kBool) return 2;
  return torch::isFloatingType(dtype) ? 0 : 1;
}

const char* kind_name(int kind) { return kind == 0 ? "a floating-point" : kind == 1 ? "an integer" : "a bool"; }

std::string sizes_text(const torch::Tensor& t) { return shape_text(t.sizes().vec()); }

}  // namespace

TensorDtypes load_state_dict(torch::nn::Module& module, const SafetensorsSet& weights,
                             const std::set<std::string>& ignorable) {
  const auto state = module_state(module);
  const std::string& source = weights.source();

  // Validate everything first; report the first problem and how many more there are.
  std::vector<std::string> problems;
  for (const auto& [name, target] : state) {
    const TensorView* view = weights.find(name);
    if (!view) {
      problems.push_back(source + ": tensor " + name + ": expected in the checkpoint (shape " + sizes_text(target) +
                         "), not found");
      continue;
    }
    if (view->shape != target.sizes().vec())
      problems.push_back(view->file + ": tensor " + name + ": expected shape " + sizes_text(target) + ", got " +
                         shape_text(view->shape));
    else if (dtype_kind(view->dtype) != dtype_kind(target.scalar_type()))
      problems.push_back(view->file + ": tensor " + name + ": expected " + kind_name(dtype_kind(target.scalar_type())) +
                         " dtype, got " + dtype_name(view->dtype));
  }
  for (const auto& [name, view] : weights.tensors())
    if (!state.count(name) && !ignorable.count(name))
      problems.push_back(view->file + ": tensor " + name +
                         ": unexpected (expected only the model's parameters and buffers)");
  if (!problems.empty()) {
    std::string message = problems.front();
    if (problems.size() > 1) message += " (and " + std::to_string(problems.size() - 1) + " more problems)";
    throw Error(message);
  }

  TensorDtypes dtypes;
  torch::NoGradGuard no_grad;
  for (const auto& [name, target] : state) {
    const TensorView& view = *weights.find(name);
    torch::Tensor value = to_tensor(view);
    target.copy_(value);  // converts dtype and device
    dtypes[name] = view.dtype;
  }
  return dtypes;
}

void add_state_dict(SafetensorsWriter& writer, const torch::nn::Module& module, const TensorDtypes& dtypes,
                    DType fallback) {
  auto add = [&](const std::string& name, const torch::Tensor& tensor) {
    auto recorded = dtypes.find(name);
    DType dtype = to_safetensors_dtype(tensor.scalar_type(), name);
    if (recorded != dtypes.end())
      dtype = recorded->second;
    else if (torch::isFloatingType(tensor.scalar_type()))
      dtype = fallback;
    auto stored = std::make_shared<torch::Tensor>(
        tensor.detach().to(torch::kCPU, to_torch_dtype(dtype)).contiguous());
    writer.add(name, dtype, stored->sizes().vec(), stored->data_ptr(), stored->nbytes(), stored);
  };
  // Module order (not name order) so that sharding keeps a layer's tensors together.
  for (const auto& p : module.named_parameters(/*recurse=*/true)) add(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) add(b.key(), b.value());
}

}  // namespace gemkit

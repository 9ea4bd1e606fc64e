#include "preservation/tensor_file.h"

#include <memory>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/safetensors.h"
#include "model/state_dict.h"

namespace gemkit {

void save_named_tensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter writer;
  for (const auto& [name, t] : tensors) {
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    writer.add(name, to_safetensors_dtype(c.scalar_type(), name), c.sizes().vec(), c.data_ptr(),
               size_t(c.nbytes()), std::make_shared<torch::Tensor>(c));
  }
  writer.set_metadata(metadata);
  writer.write(path);
}

std::map<std::string, torch::Tensor> load_named_tensors(const std::string& path,
                                                        std::map<std::string, std::string>* metadata) {
  if (!file_exists(path)) fail(path, "no such file");
  SafetensorsFile file(path);
  std::map<std::string, torch::Tensor> tensors;
  for (const TensorView& view : file.tensors()) tensors[view.name] = to_tensor(view);
  if (metadata) *metadata = file.metadata();
  return tensors;
}

}  // namespace gemkit

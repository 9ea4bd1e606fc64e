// What the small programs behind the reference checks share (model_outputs, roundtrip_logits):
// reading their JSON inputs and writing their results as safetensors. Every error is a
// gemkit::Error naming the file and field.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "formats/safetensors.h"

namespace gemkit::tool {

using json = nlohmann::json;

// The JSON document in `path`.
inline json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open");
  json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
  return j;
}

// A JSON list of rows of integers -> int64 [B, T]; `where` is "file: field" for errors.
inline torch::Tensor int_matrix(const json& value, const std::string& where) {
  if (!value.is_array() || value.empty() || !value[0].is_array())
    fail(where, "expected a non-empty list of rows of integers");
  const int64_t B = static_cast<int64_t>(value.size()), T = static_cast<int64_t>(value[0].size());
  if (T == 0) fail(where, "rows must not be empty");
  auto t = torch::empty({B, T}, torch::kInt64);
  auto acc = t.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const json& row = value[static_cast<size_t>(b)];
    if (!row.is_array() || static_cast<int64_t>(row.size()) != T)
      fail(where, "row " + std::to_string(b) + " has " + std::to_string(row.size()) +
                      " entries, row 0 has " + std::to_string(T) + " (rows must have equal length)");
    for (int64_t j = 0; j < T; ++j) {
      const json& x = row[static_cast<size_t>(j)];
      if (!x.is_number_integer())
        fail(where, "row " + std::to_string(b) + " entry " + std::to_string(j) + " is not an integer");
      acc[b][j] = x.get<int64_t>();
    }
  }
  return t;
}

// `t` as float32 (float64 when asked), on the CPU, kept alive by the writer.
inline void add_tensor(SafetensorsWriter& writer, const std::string& name, const torch::Tensor& t, bool float64 = false) {
  const auto dtype = float64 ? torch::kFloat64 : torch::kFloat32;
  auto stored = std::make_shared<torch::Tensor>(t.detach().to(dtype).contiguous().cpu());
  writer.add(name, float64 ? DType::F64 : DType::F32, stored->sizes().vec(), stored->data_ptr(), stored->nbytes(),
             stored);
}

}  // namespace gemkit::tool

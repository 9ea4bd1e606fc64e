// roundtrip_logits: gemkit's logits for given token rows from a checkpoint folder, optionally
// with a PEFT LoRA adapter folder attached (gemkit's LoRA model: export/peft_export.h
// load_peft_adapter, the adapters as forward hooks, not merged), written as a safetensors file
// for tests/reference/check_smollm2_roundtrip.py to hold against transformers / peft.
//
//   roundtrip_logits --model DIR [--adapter ADAPTER_DIR] --inputs INPUTS.json --out OUT.safetensors
//
// INPUTS.json: {"input_ids": [[int, ...], ...]}, rows of equal length, no padding.
// OUT: "logits" float32 [B, T, V], computed in eval mode without gradients.
// Exit code 1 with a message on any error.
#include <torch/torch.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "export/peft_export.h"
#include "formats/safetensors.h"
#include "model/checkpoint.h"
#include "tool_io.h"

using namespace gemkit;
using namespace gemkit::tool;

namespace {

struct Args {
  std::string model, adapter, inputs, out;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("roundtrip_logits " + arg, "needs a value");
      return argv[++i];
    };
    if (arg == "--model") a.model = value();
    else if (arg == "--adapter") a.adapter = value();
    else if (arg == "--inputs") a.inputs = value();
    else if (arg == "--out") a.out = value();
    else fail("roundtrip_logits", "unknown argument '" + arg + "' (expected --model, --adapter, --inputs, --out)");
  }
  if (a.model.empty() || a.inputs.empty() || a.out.empty())
    fail("roundtrip_logits", "usage: roundtrip_logits --model DIR [--adapter DIR] --inputs INPUTS.json --out OUT.safetensors");
  return a;
}

torch::Tensor read_ids(const std::string& path) {
  const json j = read_json_file(path);
  if (!j.is_object() || !j.contains("input_ids")) fail(path + ": input_ids", "missing");
  return int_matrix(j["input_ids"], path + ": input_ids");
}

int run(const Args& args) {
  const torch::Tensor ids = read_ids(args.inputs);
  Pretrained p = load_pretrained(args.model);
  std::unique_ptr<LoraAdapters> adapters;
  if (!args.adapter.empty()) {
    adapters = std::make_unique<LoraAdapters>(load_peft_adapter(p.model, args.adapter));
    std::cerr << "roundtrip_logits: LoRA adapters on " << adapters->module_paths().size() << " layers, rank "
              << adapters->options().rank << ", scale " << adapters->scale() << "\n";
  }
  torch::NoGradGuard no_grad;
  p.model->eval();
  const torch::Tensor logits = p.model->forward(ids).logits;
  SafetensorsWriter writer;
  add_tensor(writer, "logits", logits);
  writer.write(args.out);
  std::cerr << "roundtrip_logits: wrote " << args.out << " " << logits.sizes() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "roundtrip_logits: error: " << e.what() << "\n";
    return 1;
  }
}

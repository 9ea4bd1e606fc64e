// model_outputs: what gemkit computes for a checkpoint folder on given inputs, written as a
// safetensors file, so that a Python check can hold it against the real peers (transformers).
//
//   model_outputs --model DIR --inputs INPUTS.json --out OUT.safetensors [--grads] [--float64]
//
// DIR is loaded with gemkit's own loader (load_pretrained, model/checkpoint.h): a Hugging Face
// folder, or a .gguf file. INPUTS.json is an object:
//   "input_ids":      [[int, ...], ...]  rows of equal length (required)
//   "attention_mask": same shape, 1 real / 0 padding (optional; default all real)
//   "token_type_ids": same shape (optional, BERT)
//   "labels":         causal LM: same shape as input_ids, -100 = ignored (default: input_ids
//                     with padding set to -100, which is what transformers gets when a caller
//                     passes labels=input_ids masked); classification: one class per row.
// OUT gets, all float32:
//   "logits"   the head's logits (causal LM [B,T,V], classification [B,C]), when the head has any
//   "hidden"   the last hidden states [B,T,H] (after the decoder's final norm)
//   "loss"     [1], the head's mean loss (causal LM: shifted, as transformers computes it),
//              when the model has a head
//   "grad.<name>" with --grads: d loss / d parameter for every parameter, under its state-dict
//              name (the Hugging Face tensor name, model/transformer.h). A tied output matrix is
//              one parameter (model.embed_tokens.weight), so its gradient holds both uses.
// --float64 (a diagnostic): the model runs in float64 and OUT holds float64 tensors, to tell
// float32 rounding from a difference in the math (gemkit's cross-entropy stays float32,
// model/loss.h).
// Exit code 1 with a message naming the file and field on any error.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/checkpoint.h"
#include "model/loss.h"
#include "model/state_dict.h"
#include "tool_io.h"

using namespace gemkit;
using namespace gemkit::tool;

namespace {

struct Args {
  std::string model, inputs, out;
  bool grads = false;
  bool float64 = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) fail(std::string("model_outputs ") + name, "needs a value");
      return argv[++i];
    };
    if (arg == "--model") a.model = value("--model");
    else if (arg == "--inputs") a.inputs = value("--inputs");
    else if (arg == "--out") a.out = value("--out");
    else if (arg == "--grads") a.grads = true;
    else if (arg == "--float64") a.float64 = true;
    else fail("model_outputs", "unknown argument '" + arg + "' (expected --model, --inputs, --out, --grads, --float64)");
  }
  if (a.model.empty() || a.inputs.empty() || a.out.empty())
    fail("model_outputs", "usage: model_outputs --model DIR --inputs INPUTS.json --out OUT.safetensors [--grads]");
  return a;
}

torch::Tensor int_vector(const json& value, const std::string& where) {
  if (!value.is_array() || value.empty()) fail(where, "expected a non-empty list of integers");
  std::vector<int64_t> v;
  for (const json& x : value) {
    if (!x.is_number_integer()) fail(where, "expected integers only");
    v.push_back(x.get<int64_t>());
  }
  return torch::tensor(v, torch::kInt64);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Args& args) {
  auto t0 = std::chrono::steady_clock::now();
  const json j = read_json_file(args.inputs);
  if (!j.is_object() || !j.contains("input_ids")) fail(args.inputs + ": input_ids", "missing");
  const torch::Tensor ids = int_matrix(j["input_ids"], args.inputs + ": input_ids");
  ForwardOptions options;
  if (j.contains("attention_mask")) {
    options.attention_mask = int_matrix(j["attention_mask"], args.inputs + ": attention_mask");
    if (options.attention_mask.sizes() != ids.sizes())
      fail(args.inputs + ": attention_mask", "must have the shape of input_ids");
  }
  if (j.contains("token_type_ids")) {
    options.token_type_ids = int_matrix(j["token_type_ids"], args.inputs + ": token_type_ids");
    if (options.token_type_ids.sizes() != ids.sizes())
      fail(args.inputs + ": token_type_ids", "must have the shape of input_ids");
  }

  Pretrained p = load_pretrained(args.model);
  Transformer& model = p.model;
  if (args.float64) model->to(torch::kFloat64);
  const Head head = p.config.head;
  std::cerr << "model_outputs: loaded " << args.model << " (" << p.config.architecture << ") in "
            << seconds_since(t0) << " s\n";

  torch::Tensor labels;
  if (head == Head::CausalLM || head == Head::MaskedLM) {
    if (j.contains("labels")) {
      labels = int_matrix(j["labels"], args.inputs + ": labels");
      if (labels.sizes() != ids.sizes()) fail(args.inputs + ": labels", "must have the shape of input_ids");
    } else if (head == Head::CausalLM) {
      labels = options.attention_mask.defined() ? ids.masked_fill(options.attention_mask == 0, kIgnoreIndex)
                                                : ids.clone();
    }
  } else if (head == Head::SequenceClassification && j.contains("labels")) {
    labels = int_vector(j["labels"], args.inputs + ": labels");
    if (labels.size(0) != ids.size(0)) fail(args.inputs + ": labels", "needs one class per row");
  }
  if (args.grads && !labels.defined())
    fail("model_outputs --grads", "needs a loss: a model with a head and labels (" + args.inputs + ": labels)");

  auto t1 = std::chrono::steady_clock::now();
  torch::AutoGradMode grad_mode(args.grads);
  ModelOutput out = model->forward(ids, options);
  SafetensorsWriter writer;
  if (out.logits.defined()) add_tensor(writer, "logits", out.logits, args.float64);
  add_tensor(writer, "hidden", out.hidden, args.float64);
  if (labels.defined()) {
    torch::Tensor loss = model->loss(out, labels);
    add_tensor(writer, "loss", loss.reshape({1}), args.float64);
    std::cerr << "model_outputs: loss " << loss.item<double>() << "\n";
    if (args.grads) {
      loss.backward();
      for (const auto& item : model->named_parameters()) {
        if (!item.value().grad().defined())
          fail("model_outputs --grads", "parameter " + item.key() + " got no gradient");
        add_tensor(writer, "grad." + item.key(), item.value().grad(), args.float64);
      }
    }
  }
  std::cerr << "model_outputs: forward" << (args.grads ? "+backward" : "") << " in " << seconds_since(t1)
            << " s\n";
  writer.write(args.out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "model_outputs: error: " << e.what() << "\n";
    return 1;
  }
}

// What dense exporters (GGUF for llama.cpp, TorchScript, Hugging Face) write from a checkpoint
// (docs/design/gem-method.md section 8): a routed GEM checkpoint has one chosen domain's SCAR expert
// merged into the base weights in float (W + alpha/r B A, before any quantization) and its
// token-router blocks run dense. Plain checkpoints load unchanged.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "model/checkpoint.h"

namespace gemkit {

struct DenseModel {
  Pretrained pre;
  std::vector<std::string> notes;                 // what was merged or dropped, for the user
  std::map<std::string, std::string> provenance;  // source, merged_domain, dtr
};

class Scar;

// Adds `domain`'s expert (scale * B A) to the weights it adapts, in float; notes and provenance
// go to `out`. "general" merges nothing. Throws naming the checkpoint for an empty or unknown
// domain.
void merge_scar_expert(const std::string& checkpoint, Transformer& model, Scar& scar, const std::string& domain,
                       DenseModel& out);

// `domain`: the SCAR expert to merge ("general" or "" merges nothing). Throws gemkit::Error
// naming the checkpoint for an unknown domain, or when a SCAR checkpoint gets no domain.
DenseModel load_dense_model(const std::string& checkpoint, const std::string& domain);

}  // namespace gemkit

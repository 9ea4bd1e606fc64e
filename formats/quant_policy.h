// Which storage type each tensor gets: an ordered list of name-pattern rules over the Hugging
// Face parameter names (model.layers.3.mlp.up_proj.weight). The first matching rule wins; QAT
// fake-quantizes with it and the exporters store with it, so training and the file agree.
//
// Patterns are globs: '*' matches any run of characters (dots included). Recipe form:
//   quant.policy = ["*.self_attn.*=q8_0", "*.mlp.*=q4_0", "model.embed_tokens.weight=q8_0"]
// Tensors no rule matches, and every 1-D tensor (norms, biases), stay f32. Routers and expert
// keys are not HF parameters of the base and stay f32 too.
//
// A 2-D tensor whose rows do not fit a block type (input size not a multiple of 32, e.g. the
// base model's 688-wide MLP down projection) falls back to f16, as llama.cpp's quantizer does
// for tensors a block type cannot hold; type_for() returns the fallback, so QAT and export
// agree on it too.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "formats/block_quant.h"

namespace gemkit {

struct QuantRule {
  std::string pattern;
  QuantType type;
};

class QuantPolicy {
 public:
  QuantPolicy() = default;
  explicit QuantPolicy(std::vector<QuantRule> rules) : rules_(std::move(rules)) {}

  // docs/design/gem-method.md section 5's hybrid: attention and embeddings (and an untied output head)
  // Q8_0, MLP Q4_0, everything else f32.
  static QuantPolicy hybrid();
  // Every 2-D tensor `type` (e.g. "all q8_0"), 1-D f32.
  static QuantPolicy uniform(QuantType type);
  // "PATTERN=TYPE" strings; `where` (e.g. "RECIPE: quant.policy") names the source in errors.
  static QuantPolicy parse(const std::vector<std::string>& rules, const std::string& where);

  // The type for a parameter of this name and shape ([out, in] for a weight).
  QuantType type_for(const std::string& name, const std::vector<int64_t>& shape) const;
  const std::vector<QuantRule>& rules() const { return rules_; }
  std::string describe() const;  // "pattern=type, ..." for logs and provenance

 private:
  std::vector<QuantRule> rules_;
};

bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace gemkit

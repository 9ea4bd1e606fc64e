// Quantization-aware training (docs/design/gem-method.md section 5): fake-quantization hooks on the
// model's linear layers and token embedding, typed by a QuantPolicy, so that the forward pass
// computes with exactly the weights the exported file will hold (quant/fake_quant.h) and the
// gradient passes straight through to the float weights.
//
//   Qat qat(model, {QuantPolicy::hybrid(), /*activations=*/false});
//   qat.set_enabled(step >= start);   // delayed start: float training first
//
// Optional activation fake-quant: the input of each quantized linear layer (and of a tied
// output head) goes through Q8_0 per 32-block along the feature dimension, what llama.cpp's CPU
// path does before multiplying a Q8_0 / Q4_0 weight.
//
// With adapters (LoRA, SCAR experts) the hooks quantize the base weight; an export that merges
// an adapter quantizes W + delta once, so there the file and training differ by the adapter's
// share of the rounding (reported by the exporter, see docs/quantization.md).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/quant_policy.h"
#include "model/transformer.h"

namespace gemkit {

struct QatOptions {
  QuantPolicy policy = QuantPolicy::hybrid();
  bool activations = false;  // Q8_0 fake-quant of quantized layers' inputs
};

class Qat {
 public:
  // Attaches one hook per linear layer whose weight the policy quantizes (first in the hook
  // order, so adapters see the quantized input) and one on the embedding table. Starts enabled.
  Qat(Transformer model, QatOptions options);
  ~Qat();  // removes the hooks
  Qat(const Qat&) = delete;
  Qat& operator=(const Qat&) = delete;

  void set_enabled(bool enabled);
  bool enabled() const;
  // Parameter name -> type, for every weight the hooks quantize (f16 and block types).
  const std::map<std::string, QuantType>& types() const { return types_; }
  const QatOptions& options() const { return options_; }

 private:
  struct Hook;
  Transformer model_;
  QatOptions options_;
  std::shared_ptr<bool> enabled_;
  std::map<std::string, QuantType> types_;
  std::vector<std::pair<Linear, std::shared_ptr<LinearHook>>> linear_hooks_;
  std::shared_ptr<LinearHook> embedding_hook_;
};

// Q8_0 fake-quant with a straight-through gradient over the last dimension (activations).
// Rows whose length is not a multiple of 32 are returned unchanged.
torch::Tensor fake_quantize_activations(const torch::Tensor& x);

}  // namespace gemkit

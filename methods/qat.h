// Recipe keys quant.* in `gemkit train`: quantization-aware training with a delayed start and
// the L_Q distillation term (docs/design/gem-method.md section 5).
//
//   [quant]
//   qat = true
//   policy = ["*.self_attn.*=q8_0", "model.embed_tokens.weight=q8_0", "*.mlp.*=q4_0"]  # default: hybrid
//   start_step = 100        # float training before, fake-quantized after
//   activations = false     # Q8_0 fake-quant of quantized layers' inputs
//   distill_weight = 1.0    # lambda_q: KL(float logits || fake-quantized logits); 0: off
//
// L_Q = T^2 KL(softmax(z_float / T) || softmax(z_quant / T)) over positions with a target; the
// float logits come from a no-grad pass of the same model with the fake quantization switched
// off, so L_Q pulls the quantized network towards its own float version. The policy is written
// to the run's resolved recipe, so `gemkit export` stores exactly what training simulated.
#pragma once
#include <memory>
#include <string>

#include "methods/method.h"
#include "quant/qat.h"

namespace gemkit {

// The recipe's policy: quant.policy when set, else the hybrid default. `where` names the recipe.
QuantPolicy recipe_quant_policy(const Recipe& r, const std::string& where);

// Attaches when quant.qat is true: hooks, the start-step switch, the L_Q term "qat_kd", and
// metrics "qat/enabled".
class QatMethod : public Method {
 public:
  const char* name() const override { return "qat"; }
  void attach(Trainer& trainer, MethodContext& context) override;

 private:
  std::unique_ptr<Qat> qat_;
};

}  // namespace gemkit

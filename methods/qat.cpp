#include "methods/qat.h"

#include <cstdio>

#include "preservation/distillation.h"

namespace gemkit {

QuantPolicy recipe_quant_policy(const Recipe& r, const std::string& where) {
  if (!r.has("quant.policy")) return QuantPolicy::hybrid();
  return QuantPolicy::parse(r.get_strings("quant.policy"), where + ": quant.policy");
}

void QatMethod::attach(Trainer& trainer, MethodContext& context) {
  const Recipe& r = context.recipe;
  QatOptions options;
  options.policy = recipe_quant_policy(r, "recipe");
  options.activations = r.get_bool("quant.activations");
  qat_ = std::make_unique<Qat>(context.model, options);
  Qat* q = qat_.get();
  const int64_t start = r.get_int("quant.start_step");
  std::printf("qat: %zu tensors fake-quantized (%s), from step %lld%s\n", q->types().size(),
              options.policy.describe().c_str(), (long long)start, options.activations ? ", activations q8_0" : "");
  StepHook hook;
  hook.before = [q, start](int64_t step) { q->set_enabled(step >= start); };
  hook.after = [q](int64_t) { return std::map<std::string, double>{{"qat/enabled", q->enabled() ? 1.0 : 0.0}}; };
  trainer.add_step_hook(hook);

  const double distill = r.get_float("quant.distill_weight");
  if (distill > 0) {
    const double temperature = r.get_float("quant.temperature");
    trainer.add_loss_term({"qat_kd", distill, [q, temperature](const StepContext& c) {
      if (!q->enabled()) return torch::Tensor();
      const BatchTensors& t = c.tensors;
      torch::Tensor float_logits;
      {
        torch::NoGradGuard no_grad;
        q->set_enabled(false);
        ForwardOptions fo;
        fo.attention_mask = t.attention_mask;
        fo.segment_ids = t.segment_ids;
        float_logits = c.model->forward(t.input_ids, fo).logits;
        q->set_enabled(true);
      }
      // Positions that predict a target: label at i+1 is not ignored (the causal shift).
      auto w = (t.labels != -100).to(torch::kFloat).roll(-1, 1);
      w.select(1, w.size(1) - 1).zero_();
      return distillation_loss(c.output.logits, float_logits, w, temperature);
    }});
  }
}

}  // namespace gemkit

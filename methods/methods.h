// The methods a recipe enables, in the order they attach to the trainer (methods/method.h).
#pragma once
#include <memory>
#include <vector>

#include "methods/method.h"

namespace gemkit {

// LoRA (train.mode = "lora"), GEM (dtr.enabled or scar.enabled), AKP (an akp.* weight > 0),
// QAT (quant.qat), in that order: AKP needs the adapters of the methods before it, and QAT's
// fake quantization wraps whatever the linears compute by then.
std::vector<std::unique_ptr<Method>> enabled_methods(const Recipe& recipe);

}  // namespace gemkit

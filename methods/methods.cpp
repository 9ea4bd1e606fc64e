#include "methods/methods.h"

#include "methods/akp.h"
#include "methods/gem.h"
#include "methods/lora.h"
#include "methods/qat.h"

namespace gemkit {

std::vector<std::unique_ptr<Method>> enabled_methods(const Recipe& r) {
  std::vector<std::unique_ptr<Method>> methods;
  if (parse_train_mode(r.get_string("train.mode"), "train.mode") == TrainMode::Lora)
    methods.push_back(std::make_unique<LoraMethod>());
  if (gem_config_from_recipe(r).any()) methods.push_back(std::make_unique<GemMethod>());
  if (akp_enabled(r)) methods.push_back(std::make_unique<AkpMethod>());
  if (r.get_bool("quant.qat")) methods.push_back(std::make_unique<QatMethod>());
  return methods;
}

}  // namespace gemkit

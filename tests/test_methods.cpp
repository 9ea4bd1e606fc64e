// The training methods (methods/): which ones a recipe enables and in which order they attach,
// and the recipe defaults of their keys, which come from the modules' options structs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "methods/methods.h"
#include "model/lora.h"
#include "quant/qat.h"
#include "routing/scar.h"
#include "routing/token_router.h"
#include "train/recipe.h"

using namespace gemkit;

namespace {

Recipe resolved(const std::string& toml) {
  Recipe r = Recipe::from_toml_text(toml, "test recipe");
  r.resolve();
  return r;
}

std::vector<std::string> names(const Recipe& r) {
  std::vector<std::string> out;
  for (const auto& m : enabled_methods(r)) out.push_back(m->name());
  return out;
}

}  // namespace

TEST(Methods, ARecipeEnablesItsMethodsInAttachOrder) {
  EXPECT_EQ(names(resolved("")), std::vector<std::string>{});
  EXPECT_EQ(names(resolved("[train]\nmode = \"lora\"\n")), std::vector<std::string>{"lora"});
  EXPECT_EQ(names(resolved("[dtr]\nenabled = true\n")), std::vector<std::string>{"gem"});
  EXPECT_EQ(names(resolved("[akp]\nl2sp_weight = 0.1\n")), std::vector<std::string>{"akp"});
  // The forgetting budget scales the AKP terms: without a term there is nothing to attach.
  EXPECT_EQ(names(resolved("[akp]\nbudget = 0.02\n")), std::vector<std::string>{});
  EXPECT_EQ(names(resolved("[quant]\nqat = true\n")), std::vector<std::string>{"qat"});
  // All four, written in another order: AKP after the adapters it protects, QAT last.
  const Recipe all = resolved(
      "[quant]\nqat = true\n[akp]\nkd_weight = 1.0\n[scar]\nenabled = true\nexperts = [\"law\"]\n"
      "[train]\nmode = \"lora\"\n");
  EXPECT_EQ(names(all), (std::vector<std::string>{"lora", "gem", "akp", "qat"}));
}

TEST(Methods, RecipeDefaultsAreTheOptionsStructDefaults) {
  const Recipe r = resolved("");
  const LoraOptions lora;
  EXPECT_EQ(r.get_int("lora.rank"), lora.rank);
  EXPECT_EQ(r.get_float("lora.alpha"), lora.alpha);
  EXPECT_EQ(r.get_bool("lora.rslora"), lora.rslora);
  EXPECT_EQ(r.get_float("lora.dropout"), lora.dropout);
  EXPECT_EQ(r.get_strings("lora.target_modules"), lora.target_modules);
  EXPECT_EQ(uint64_t(r.get_int("lora.seed")), lora.seed);
  const TokenRouterOptions dtr;
  EXPECT_EQ(r.get_float("dtr.capacity"), dtr.capacity);
  EXPECT_EQ(r.get_float("dtr.threshold"), dtr.threshold);
  EXPECT_EQ(r.get_float("dtr.initial_bias"), dtr.initial_bias);
  EXPECT_EQ(r.get_bool("dtr.attention_only"), dtr.attention_only);
  EXPECT_EQ(r.get_int("dtr.anneal_steps"), dtr.anneal_steps);
  EXPECT_EQ(uint64_t(r.get_int("dtr.seed")), dtr.seed);
  const ScarOptions scar;
  EXPECT_EQ(r.get_bool("scar.general_expert"), scar.general_expert);
  EXPECT_EQ(r.get_strings("scar.target_modules"), scar.target_modules);
  EXPECT_EQ(r.get_int("scar.rank"), scar.rank);
  EXPECT_EQ(r.get_float("scar.alpha"), scar.alpha);
  EXPECT_EQ(r.get_int("scar.router_dim"), scar.router.router_dim);
  EXPECT_EQ(r.get_float("scar.temperature"), scar.router.temperature);
  EXPECT_EQ(r.get_float("scar.mass"), scar.router.mass);
  EXPECT_EQ(r.get_int("scar.max_experts"), scar.router.max_experts);
  EXPECT_EQ(uint64_t(r.get_int("scar.seed")), scar.seed);
  EXPECT_EQ(r.get_bool("quant.activations"), QatOptions{}.activations);
}

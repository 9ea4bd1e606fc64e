// GEM routing in `gemkit train`: the recipe's dtr.* and scar.* keys, and what the trainer gets
// when they are enabled.
//
//   GemConfig config = gem_config_from_recipe(recipe);
//   GemModules gem(model, config);
//   add_gem_training(trainer, gem, recipe, source_domains(shards));
//
// The trainer then trains the modules' tensors (extra.safetensors: exact resume), adds their
// losses as weighted terms (metrics "loss/dtr_aux", "loss/scar_balance", "loss/scar_z",
// "loss/scar_supervision"), anneals the DTR capacity every step, logs the routing figures of
// every step (GemModules::metrics, plus "scar/domain_accuracy"), and writes gem.json into every
// checkpoint so that the checkpoint can be evaluated and run as a routed model.
#pragma once
#include <string>
#include <vector>

#include "data/batch.h"
#include "routing/gem_modules.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace gemkit {

GemConfig gem_config_from_recipe(const Recipe& recipe);

// The domain names of each training source (shard), by the shard's domain ids: the loader's
// rows carry (source id, domain id) and this turns them into names.
using SourceDomains = std::vector<std::vector<std::string>>;
SourceDomains source_domains(const std::vector<std::string>& shards);
// The domain name of each row of `batch` ("" when unknown).
std::vector<std::string> row_domains(const TokenBatch& batch, const SourceDomains& domains);

void add_gem_training(Trainer& trainer, GemModules& gem, const Recipe& recipe, const SourceDomains& domains);

}  // namespace gemkit

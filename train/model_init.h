// The architecture of a randomly initialised model from a recipe's model.init.* keys, shared by
// `gemkit model init` and `gemkit train` (pretraining when model.path is not given).
#pragma once
#include "formats/model_config.h"
#include "tokenizers/tokenizer.h"
#include "train/recipe.h"

namespace gemkit {

// config.json for model.init.*: vocabulary size defaults to the tokenizer's, special ids come
// from it. Throws gemkit::Error naming the key (or the config field) at fault.
ModelConfig model_init_config(const Recipe& recipe, const Tokenizer& tokenizer);

}  // namespace gemkit

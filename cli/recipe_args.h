// How a subcommand gets its recipe: --recipe FILE, then KEY=VALUE / ~KEY arguments, then
// the command's own flags (each flag is shorthand for one recipe key), then the defaults.
// Later sources win; every value is checked against the recipe schema, so a flag with a bad
// value fails with the same message as the recipe key it stands for.
#pragma once
#include <CLI/CLI.hpp>

#include <list>
#include <string>
#include <vector>

#include "train/recipe.h"

namespace gemkit::cli {

class RecipeArgs {
 public:
  // Adds --recipe and the positional KEY=VALUE / ~KEY overrides to `cmd`.
  explicit RecipeArgs(CLI::App* cmd);
  // Adds a flag (e.g. "--temperature") that sets recipe key `key` when given.
  void flag(const std::string& name, const std::string& key, const std::string& help);
  // The recipe from all sources, with defaults filled in.
  Recipe resolve() const;

 private:
  struct Flag {
    std::string name, key, value;
    CLI::Option* option = nullptr;
  };
  CLI::App* cmd_;
  std::string recipe_path_;
  std::vector<std::string> overrides_;
  std::list<Flag> flags_;  // a list: options keep pointers to the values
};

// model.path "models:NAME" (a pinned real model, `gemkit models fetch NAME`) becomes that
// model's cache folder; any other value is left alone. RecipeArgs::resolve() calls it; commands
// that read their recipe themselves (train) call it after Recipe::resolve().
void resolve_model_reference(Recipe& recipe);

}  // namespace gemkit::cli

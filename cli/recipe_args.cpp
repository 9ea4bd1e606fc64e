#include "cli/recipe_args.h"

#include "import/model_registry.h"

namespace gemkit::cli {

RecipeArgs::RecipeArgs(CLI::App* cmd) : cmd_(cmd) {
  cmd->add_option("--recipe,-r", recipe_path_, "recipe TOML file (see `gemkit recipes ls`)");
  cmd->add_option("overrides", overrides_,
                  "recipe overrides: key.path=value, or ~key.path to remove a key");
}

void RecipeArgs::flag(const std::string& name, const std::string& key, const std::string& help) {
  const RecipeKey* k = recipe_find_key(key);
  flags_.push_back({name.substr(0, name.find(',')), key, "", nullptr});  // "--model" in errors
  Flag& f = flags_.back();
  f.option = cmd_->add_option(name, f.value, help + " (recipe key " + key + ")");
  if (!k) return;  // a programming error: resolve() reports it with a suggestion
  if (k->value) f.option->default_str(*k->value);
  static const char* const kTypeNames[] = {"TEXT", "INT", "FLOAT", "BOOL", "LIST"};  // RecipeType order
  f.option->type_name(kTypeNames[int(k->type)]);
}

Recipe RecipeArgs::resolve() const {
  Recipe recipe = recipe_path_.empty() ? Recipe() : Recipe::load(recipe_path_);
  for (const std::string& o : overrides_) recipe.apply_override(o);
  for (const Flag& f : flags_)
    if (f.option->count() > 0) recipe.set(f.key, f.value, f.name);
  recipe.resolve();
  resolve_model_reference(recipe);
  return recipe;
}

void resolve_model_reference(Recipe& recipe) {
  if (recipe.has("model.path"))
    recipe.set("model.path", resolve_model_path(recipe.get_string("model.path"), default_cache_dir()), "model.path");
}

}  // namespace gemkit::cli

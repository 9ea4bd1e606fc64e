// gemkit recipes ls | show | validate: browse and check recipe files.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "train/recipe.h"

namespace gemkit::cli {
namespace {

namespace fs = std::filesystem;

// Every *.toml under `dir`, sorted.
std::vector<std::string> find_recipes(const std::string& dir) {
  if (!is_directory(dir)) fail(dir, "not a folder (run from the repository root, or pass DIR)");
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".toml") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// The text of the file's first comment line, without "# ".
std::string first_comment(const std::string& path) {
  std::string text = read_text_file(path);
  size_t pos = text.find('#');
  if (pos == std::string::npos) return "";
  size_t end = text.find('\n', pos);
  std::string line = text.substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1);
  size_t b = line.find_first_not_of(' ');
  return b == std::string::npos ? "" : line.substr(b);
}

void ls(const std::string& dir) {
  std::vector<std::string> files = find_recipes(dir);
  size_t width = 0;
  for (const auto& f : files) width = std::max(width, f.size());
  for (const auto& f : files) std::printf("%-*s  %s\n", int(width), f.c_str(), first_comment(f).c_str());
}

void show(const std::string& path, const std::vector<std::string>& overrides) {
  Recipe r = Recipe::load(path);
  for (const auto& o : overrides) r.apply_override(o);
  r.resolve();
  std::printf("# %s, resolved (defaults and overrides applied)\n%s", path.c_str(), r.to_toml().c_str());
}

// Checks each file; prints "ok" lines on stdout and fails with every problem found.
void validate(std::vector<std::string> paths) {
  if (paths.empty()) paths = find_recipes("recipes");
  std::string problems;
  size_t bad = 0;
  for (const auto& p : paths) {
    try {
      Recipe r = Recipe::load(p);
      r.resolve();
      std::printf("ok    %s\n", p.c_str());
    } catch (const Error& e) {
      ++bad;
      std::printf("FAIL  %s\n", p.c_str());
      problems += std::string(e.what()) + "\n";
    }
  }
  if (bad) throw Error(problems + std::to_string(bad) + " of " + std::to_string(paths.size()) +
                       " recipe(s) have errors");
}

// The schema itself: every key with its type, default, range or choices, and doc line.
void keys() {
  for (const RecipeKey& k : recipe_schema()) {
    std::string range;
    char buf[96];
    if (!k.choices.empty()) {
      range = "one of " + k.choices;
    } else if (k.type == RecipeType::Int || k.type == RecipeType::Float) {
      if (k.max > 1e15) std::snprintf(buf, sizeof buf, ">= %g", k.min);
      else std::snprintf(buf, sizeof buf, "in [%g, %g]", k.min, k.max);
      range = buf;
    }
    std::printf("%s  (%s%s%s; default %s)\n    %s\n", k.path.c_str(), recipe_type_name(k.type),
                range.empty() ? "" : ", ", range.c_str(), k.value ? k.value->c_str() : "none",
                k.doc.c_str());
  }
}

}  // namespace

void add_recipes_commands(CLI::App& app) {
  CLI::App* recipes = app.add_subcommand("recipes", "list, show and check recipe files");
  recipes->require_subcommand(1);

  auto ls_dir = std::make_shared<std::string>("recipes");
  CLI::App* ls_cmd = recipes->add_subcommand("ls", "list recipes with their first comment line");
  ls_cmd->add_option("dir", *ls_dir, "folder to list")->capture_default_str();
  ls_cmd->callback([ls_dir] { ls(*ls_dir); });

  struct ShowArgs {
    std::string path;
    std::vector<std::string> overrides;
  };
  auto show_args = std::make_shared<ShowArgs>();
  CLI::App* show_cmd = recipes->add_subcommand("show", "print a recipe resolved (defaults and overrides)");
  show_cmd->add_option("recipe", show_args->path, "recipe TOML file")->required();
  show_cmd->add_option("overrides", show_args->overrides, "key.path=value or ~key.path");
  show_cmd->callback([show_args] { show(show_args->path, show_args->overrides); });

  auto validate_paths = std::make_shared<std::vector<std::string>>();
  CLI::App* validate_cmd = recipes->add_subcommand(
      "validate", "check recipes against the schema (default: every file under recipes/)");
  validate_cmd->add_option("recipes", *validate_paths, "recipe TOML files");
  validate_cmd->callback([validate_paths] { validate(*validate_paths); });

  CLI::App* keys_cmd = recipes->add_subcommand("keys", "list every valid recipe key (the schema)");
  keys_cmd->callback(keys);
}

}  // namespace gemkit::cli

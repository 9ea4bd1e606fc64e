// Recipes: TOML files with nested tables that configure a gemkit command, checked against one
// schema (recipe_schema() in recipe.cpp). Torch-free.
//
//   Recipe r = Recipe::load("recipes/generate/sample.toml");  // parse + validate
//   r.apply_override("generation.temperature=0.5");           // command-line override
//   r.apply_override("~generation.top_k");                    // removal (back to the default)
//   r.resolve();                                               // fill in defaults
//   double t = r.get_float("generation.temperature");
//   r.save("out/resolved_recipe.toml");
//
// Every error names the file (or "command line"), the key, and for unknown keys the nearest
// valid key: "recipes/x.toml: generation.temprature: unknown key; did you mean
// generation.temperature?". Relative paths inside a recipe are relative to the current
// directory (commands are run from the repository root).
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace gemkit {

enum class RecipeType { String, Int, Float, Bool, StringList };

// One valid key. Adding a key to the schema is one line in recipe.cpp.
struct RecipeKey {
  std::string path;                  // "generation.temperature": tables joined by '.'
  RecipeType type;
  std::optional<std::string> value;  // default, written as on the command line; nullopt: none
  double min = -std::numeric_limits<double>::infinity();  // Int/Float: inclusive range
  double max = std::numeric_limits<double>::infinity();
  std::string choices;               // String: "bpe|unigram"; empty: any text
  std::string doc;                   // one line
};

const std::vector<RecipeKey>& recipe_schema();
const RecipeKey* recipe_find_key(const std::string& path);  // nullptr: not in the schema
const char* recipe_type_name(RecipeType t);

using RecipeValue = std::variant<std::string, int64_t, double, bool, std::vector<std::string>>;

class Recipe {
 public:
  Recipe() = default;
  // Parses and validates; throws gemkit::Error listing every problem, one per line.
  static Recipe load(const std::string& path);
  static Recipe from_toml_text(const std::string& text, const std::string& where);

  // "key.path=value" (value parsed with the key's type; lists are comma separated) or
  // "~key.path" (removes the key, so the default applies again).
  void apply_override(const std::string& arg, const std::string& where = "command line");
  void set(const std::string& path, const std::string& value_text,
           const std::string& where = "command line");
  // Fills every key that has a default and is not set.
  void resolve();

  bool has(const std::string& path) const { return values_.count(path) != 0; }
  // Getters throw naming the key when it is not set (no default, not given).
  const std::string& get_string(const std::string& path) const;
  int64_t get_int(const std::string& path) const;
  double get_float(const std::string& path) const;
  bool get_bool(const std::string& path) const;
  const std::vector<std::string>& get_strings(const std::string& path) const;

  // TOML in schema order, one table per section, each key followed by its doc comment.
  std::string to_toml() const;
  void save(const std::string& path) const;  // atomic write

  const std::map<std::string, RecipeValue>& values() const { return values_; }
  const std::string& source() const { return source_; }  // file it was loaded from, or ""

 private:
  std::map<std::string, RecipeValue> values_;
  std::string source_;
};

// Parses `text` as a value of key's type, checking range and choices. `where` prefixes errors.
RecipeValue recipe_parse_value(const RecipeKey& key, const std::string& text,
                               const std::string& where);

// A value as the resolved TOML writes it (0.5, "text", ["a", "b"]): the shortest decimal that
// reads back to the same double, with ".0" on whole numbers.
std::string recipe_format_value(const RecipeValue& value);
// "did you mean X?" help: the schema key nearest to `path` by edit distance.
std::string recipe_nearest_key(const std::string& path);

}  // namespace gemkit

// libFuzzer target: a recipe (Recipe::from_toml_text: TOML syntax, then every key checked
// against the schema's type, range and choices) and command-line overrides. The input is the
// TOML text, then a line "#--overrides", then one override per line ("key.path=value" or
// "~key.path"). An accepted recipe resolves, writes back as TOML and reads again to the same
// recipe.
#include <string_view>

#include "core/error.h"
#include "tests/fuzz/fuzz_target.h"
#include "train/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find("#--overrides\n");
  Recipe recipe;
  try {
    recipe = Recipe::from_toml_text(std::string(input.substr(0, split)), "recipe.toml");
    if (split != std::string_view::npos) {
      std::string_view rest = input.substr(split + 13);
      while (!rest.empty()) {
        const size_t end = rest.find('\n');
        recipe.apply_override(std::string(rest.substr(0, end)));
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      }
    }
    recipe.resolve();
  } catch (const Error&) {
    return 0;
  }
  // Outside the try: an accepted recipe that does not survive a write and read is a finding.
  const std::string text = recipe.to_toml();
  Recipe again = Recipe::from_toml_text(text, "written recipe");
  again.resolve();
  fuzz::require(again.to_toml() == text, "an accepted recipe survives a write and read");
  return 0;
}

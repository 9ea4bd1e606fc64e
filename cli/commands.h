// The subcommand groups of the `gemkit` executable; main.cpp wires them into one CLI::App.
// Each add_* registers its subcommands with callbacks that throw gemkit::Error on failure.
#pragma once
#include <CLI/CLI.hpp>

namespace gemkit::cli {

void add_recipes_commands(CLI::App& app);    // cmd_recipes.cpp: recipes ls | show | validate
void add_tokenizer_commands(CLI::App& app);  // cmd_tokenizer.cpp: tokenizer train | encode
void add_model_commands(CLI::App& app);      // cmd_model.cpp: model info | init
void add_generate_command(CLI::App& app);    // cmd_generate.cpp: generate
void add_eval_command(CLI::App& app);        // cmd_eval.cpp: eval
void add_plot_command(CLI::App& app);        // cmd_plot.cpp: plot
void add_data_commands(CLI::App& app);       // cmd_data.cpp: data suite build | validate, data prepare
void add_compare_command(CLI::App& app);     // cmd_compare.cpp: compare eval reports
void add_train_command(CLI::App& app);       // cmd_train.cpp: train
void add_ablate_command(CLI::App& app);      // cmd_ablate.cpp: ablate (methods x grid x seeds, report)
void add_export_commands(CLI::App& app);     // cmd_export.cpp: export gguf
void add_import_commands(CLI::App& app);     // cmd_import.cpp: import gguf
void add_models_commands(CLI::App& app);     // cmd_models.cpp: models ls | fetch
void add_merge_commands(CLI::App& app);      // cmd_merge.cpp: merge wise | task-arithmetic | ties

}  // namespace gemkit::cli

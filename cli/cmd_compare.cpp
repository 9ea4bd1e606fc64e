// gemkit compare: evaluation reports of a base model and of models adapted to one domain, side by
// side with domain gain, general drift, forgetting reduction, DSI and GG (eval/compare.h).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "eval/compare.h"

namespace gemkit::cli {
namespace {

struct CompareArgs {
  std::vector<std::string> reports, labels;
  std::string target, out;
};

void compare(const CompareArgs& a) {
  if (!a.labels.empty() && a.labels.size() != a.reports.size())
    fail("--labels", "expected one label per report (" + std::to_string(a.reports.size()) + "), got " +
                         std::to_string(a.labels.size()));
  std::vector<LabelledReport> reports;
  for (size_t i = 0; i < a.reports.size(); ++i) {
    LabelledReport r;
    r.label = a.labels.empty() ? std::filesystem::path(a.reports[i]).stem().string() : a.labels[i];
    try {
      r.report = nlohmann::json::parse(read_text_file(a.reports[i]));
    } catch (const nlohmann::json::exception& e) {
      fail(a.reports[i], std::string("invalid JSON: ") + e.what());
    }
    reports.push_back(std::move(r));
  }
  const Comparison c = compare_reports(reports, a.target);
  std::printf("%s", c.markdown.c_str());
  if (!a.out.empty()) {
    write_text_file_atomic(a.out, c.json.dump(2) + "\n");
    const std::string md = std::filesystem::path(a.out).replace_extension(".md").string();
    write_text_file_atomic(md, c.markdown);
    std::printf("\nwrote %s and %s\n", a.out.c_str(), md.c_str());
  }
}

}  // namespace

void add_compare_command(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = app.add_subcommand(
      "compare", "compare `gemkit eval` reports: the base model first, then models adapted to --target");
  cmd->add_option("reports", args->reports, "eval JSON reports: BASE ADAPTED [ADAPTED ...]")->required()->expected(2, -1);
  cmd->add_option("--target", args->target, "the domain the models were adapted to")->required();
  cmd->add_option("--labels", args->labels, "a label per report (comma separated; default: file names)")
      ->delimiter(',');
  cmd->add_option("--out", args->out, "also write the comparison as JSON (and markdown beside it)");
  cmd->callback([args] { compare(*args); });
}

}  // namespace gemkit::cli

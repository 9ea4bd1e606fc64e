// gemkit compare: evaluation reports of a base model and of models adapted to one domain, side by
// side with domain gain, general drift, forgetting reduction, DSI and GG (eval/compare.h), or as a
// transfer matrix (eval/transfer.h), sequential domains (eval/sequential.h) or single models serving
// every domain against per-domain oracles (eval/multi_domain.h); written by report/.
#include <algorithm>
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
#include "eval/multi_domain.h"
#include "eval/sequential.h"
#include "eval/transfer.h"
#include "report/compare_report.h"
#include "report/multi_domain_report.h"
#include "report/sequential_report.h"
#include "report/transfer_report.h"

namespace gemkit::cli {
namespace {

using eval::SequentialReport;
using eval::TransferMatrix;
using eval::TransferSource;

struct CompareArgs {
  std::vector<std::string> reports, labels, sequential, transfer, multi_domain;
  std::string target, out;
  bool best = false;
};

// The reports after the base, each paired with the domain it was adapted to (in order).
std::vector<TransferSource> sources(const std::vector<LabelledReport>& reports, const std::vector<std::string>& domains,
                                    const char* flag) {
  if (domains.size() != reports.size() - 1)
    fail(flag, "expected one domain per adapted report (" + std::to_string(reports.size() - 1) + "), got " +
                   std::to_string(domains.size()));
  std::vector<TransferSource> out;
  for (size_t i = 0; i < domains.size(); ++i) out.push_back({domains[i], reports[i + 1]});
  return out;
}

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
  if (int(!a.target.empty()) + int(!a.sequential.empty()) + int(!a.transfer.empty()) + int(!a.multi_domain.empty()) != 1)
    fail("gemkit compare", "give exactly one of --target, --sequential, --transfer or --multi-domain");
  nlohmann::json json;
  std::string markdown, svg;  // svg: a plot written beside --out (sequential and multi-domain)
  std::string tradeoff_svg;   // multi-domain: the trade-off plane, beside --out as *.tradeoff.svg
  if (!a.target.empty()) {
    const Comparison c = compare_reports(reports, a.target);
    json = c.json;
    markdown = c.markdown;
  } else if (!a.sequential.empty()) {
    const SequentialReport r = eval::sequential_report(reports[0], sources(reports, a.sequential, "--sequential"));
    json = eval::to_json(r);
    markdown = eval::to_markdown(r);
    svg = eval::nll_fall_heatmap_svg(r);
  } else if (!a.multi_domain.empty()) {
    const size_t K = a.multi_domain.size();
    if (reports.size() < K + 2)
      fail("--multi-domain", "expected the base, one oracle report per domain (" + std::to_string(K) +
                                 ") and at least one model to judge; got " + std::to_string(reports.size()) + " reports");
    const std::vector<LabelledReport> oracles(reports.begin() + 1, reports.begin() + 1 + long(K));
    const std::vector<LabelledReport> models(reports.begin() + 1 + long(K), reports.end());
    const eval::MultiDomainReport r = eval::multi_domain_report(reports[0], a.multi_domain, oracles, models);
    json = eval::to_json(r);
    markdown = eval::to_markdown(r);
    svg = eval::oracle_share_heatmap_svg(r);
    tradeoff_svg = eval::multi_domain_tradeoff_svg(r);
    if (a.best) {  // choosing among candidates (a merge coefficient) on validation
      const auto top = std::max_element(r.models.begin(), r.models.end(), [](const auto& x, const auto& y) {
        return x.mean_oracle_share.value < y.mean_oracle_share.value;
      });
      markdown += "\nbest: " + top->label + "\n";
    }
  } else {
    const TransferMatrix m = eval::transfer_matrix(reports[0], sources(reports, a.transfer, "--transfer"));
    json = eval::to_json(m);
    markdown = eval::to_markdown(m);
  }
  std::printf("%s", markdown.c_str());
  if (!a.out.empty()) {
    write_text_file_atomic(a.out, json.dump(2) + "\n");
    const std::string md = std::filesystem::path(a.out).replace_extension(".md").string();
    write_text_file_atomic(md, markdown);
    std::printf("\nwrote %s and %s\n", a.out.c_str(), md.c_str());
    if (!svg.empty()) {
      const std::string plot = std::filesystem::path(a.out).replace_extension(".svg").string();
      write_text_file_atomic(plot, svg);
      std::printf("wrote %s\n", plot.c_str());
    }
    if (!tradeoff_svg.empty()) {
      const std::string plot = std::filesystem::path(a.out).replace_extension(".tradeoff.svg").string();
      write_text_file_atomic(plot, tradeoff_svg);
      std::printf("wrote %s\n", plot.c_str());
    }
  }
}

}  // namespace

void add_compare_command(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = app.add_subcommand(
      "compare", "compare `gemkit eval` reports: the base model first, then adapted models: to one --target "
                 "domain, to one domain each (--transfer: matrix and CDTR), or in turn (--sequential: ACC/BWT/FWT)");
  cmd->add_option("reports", args->reports, "eval JSON reports: BASE ADAPTED [ADAPTED ...]")->required()->expected(2, -1);
  cmd->add_option("--target", args->target, "the domain every adapted model was adapted to");
  cmd->add_option("--transfer", args->transfer, "the domain of each adapted report, in order (transfer matrix, CDTR)")
      ->delimiter(',');
  cmd->add_option("--sequential", args->sequential,
                  "the domains of the stages, in order: report i is the model after stage i (ACC, BWT, FWT, forgetting)")
      ->delimiter(',');
  cmd->add_option("--multi-domain", args->multi_domain,
                  "the domains D1,..,DK: the reports are the base, the model fine-tuned on each Di alone (the oracles, in "
                  "order), then models serving every domain (share of the oracles' NLL falls, probe rise, and the trade-off "
                  "plane with its Pareto frontier: labels \"METHOD @ SETTING\" form one method's sweep)")
      ->delimiter(',');
  cmd->add_flag("--best", args->best,
               "with --multi-domain: print \"best: LABEL\", the judged model with the highest mean share of the oracles' "
               "NLL falls (to choose among candidates on validation)");
  cmd->add_option("--labels", args->labels, "a label per report (comma separated; default: file names)")
      ->delimiter(',');
  cmd->add_option("--out", args->out, "also write the comparison as JSON (and markdown beside it)");
  cmd->callback([args] { compare(*args); });
}

}  // namespace gemkit::cli

#include "report/sequential_report.h"

#include <string>

#include "report/interval_format.h"
#include "report/svg_plot.h"

namespace gemkit::eval {
namespace {

using json = nlohmann::json;

json part_json(const SequentialPart& p, const SequentialReport& r) {
  json j;
  j["matrix"] = json::array();
  for (const auto& row : p.matrix) {
    json cells = json::array();
    for (const Interval& c : row) cells.push_back(interval_json(c));
    j["matrix"].push_back(cells);
  }
  j["ACC"] = interval_json(p.acc);
  j["BWT"] = interval_json(p.bwt);
  j["FWT"] = interval_json(p.fwt);
  j["forgetting"] = interval_json(p.forgetting);
  j["forgetting_per_domain"] = json::object();
  for (size_t k = 0; k < p.forgetting_per_domain.size(); ++k)
    j["forgetting_per_domain"][r.domains[k]] = interval_json(p.forgetting_per_domain[k]);
  return j;
}

std::string part_markdown(const std::string& title, const SequentialPart& p, const SequentialReport& r) {
  std::string md = title + "\n\n| after stage |";
  for (const std::string& d : r.domains) md += " " + d + " |";
  md += "\n|---|";
  for (size_t k = 0; k < r.domains.size(); ++k) md += "---|";
  md += "\n";
  for (size_t i = 0; i < p.matrix.size(); ++i) {
    md += "| " + std::to_string(i) + ": " + r.rows[i] + " |";
    for (const Interval& c : p.matrix[i]) md += " " + interval_text(c) + " |";
    md += "\n";
  }
  md += "\n| ACC | BWT | FWT | forgetting |\n|---|---|---|---|\n| " + interval_text(p.acc) + " | " +
        interval_text(p.bwt, "%+.3f") + " | " + interval_text(p.fwt, "%+.3f") + " | " + interval_text(p.forgetting) +
        " |\n";
  if (!p.forgetting_per_domain.empty()) {
    md += "\nForgetting per domain:";
    for (size_t k = 0; k < p.forgetting_per_domain.size(); ++k)
      md += std::string(k ? "," : "") + " " + r.domains[k] + " " + interval_text(p.forgetting_per_domain[k]);
    md += "\n";
  }
  return md + "\n";
}

}  // namespace

json to_json(const SequentialReport& r) {
  json j;
  j["domains"] = r.domains;
  j["rows"] = r.rows;
  j["nll_fall"] = part_json(r.nll_fall, r);
  j["score"] = part_json(r.score, r);
  j["ppl_gain"] = part_json(r.ppl_gain, r);
  j["item_intervals"] = r.item_intervals;
  if (!r.item_intervals) j["item_intervals_note"] = r.item_intervals_note;
  return j;
}

std::string to_markdown(const SequentialReport& r) {
  return part_markdown("Sequential domains: fall of each domain's mean token NLL from the base (nats) after each stage "
                       "(row 0: the base)", r.nll_fall, r) +
         part_markdown("Task scores S(m_i, d_j) after each stage", r.score, r) +
         part_markdown("Relative perplexity gain over the base after each stage", r.ppl_gain, r) +
         "ACC: mean of the last row; BWT: mean of final minus just-learned figures of the earlier domains; FWT: mean "
         "score on each domain just before its stage minus the base's; forgetting: best earlier stage minus final. " +
         (r.item_intervals ? "Intervals: item-level bootstrap 95%." : r.item_intervals_note + ".") + "\n";
}

std::string nll_fall_heatmap_svg(const SequentialReport& r) {
  Heatmap h;
  h.title = "NLL fall from the base (nats) on each domain after each stage";
  h.columns = r.domains;
  for (size_t i = 0; i < r.nll_fall.matrix.size(); ++i) {
    h.rows.push_back(std::to_string(i) + ": " + r.rows[i]);
    h.values.emplace_back();
    for (const Interval& c : r.nll_fall.matrix[i]) h.values.back().push_back(c.value);
  }
  h.note = "ACC " + number_text(r.nll_fall.acc.value, "%.3f") + ", BWT " + number_text(r.nll_fall.bwt.value, "%+.3f") +
           ", FWT " + number_text(r.nll_fall.fwt.value, "%+.3f") + " nats";
  return render_heatmap_svg(h);
}

}  // namespace gemkit::eval

#include "report/multi_domain_report.h"

#include <cmath>

#include "report/interval_format.h"
#include "report/svg_plot.h"

namespace gemkit::eval {
namespace {

using json = nlohmann::json;

json row_json(const MultiDomainRow& row, const MultiDomainReport& r) {
  json j;
  j["label"] = row.label;
  j["fall"] = json::object();
  j["oracle_share"] = json::object();
  for (size_t k = 0; k < r.domains.size(); ++k) {
    j["fall"][r.domains[k]] = interval_json(row.fall[k]);
    j["oracle_share"][r.domains[k]] = interval_json(row.oracle_share[k]);
  }
  j["mean_fall"] = interval_json(row.mean_fall);
  j["mean_oracle_share"] = interval_json(row.mean_oracle_share);
  j["min_oracle_share"] = interval_json(row.min_oracle_share);
  j["probe_rise"] = interval_json(row.probe_rise);
  j["probe_ppl_change"] = interval_json(row.probe_ppl_change);
  j["general_rise"] = interval_json(row.general_rise);
  if (row.routed()) {
    const auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
    j["routed_to_own_expert"] = json::object();
    for (size_t k = 0; k < r.domains.size(); ++k) j["routed_to_own_expert"][r.domains[k]] = num(row.routed_to_own[k]);
    j["probe_routed_to_general"] = num(row.probe_to_general);
  }
  return j;
}

// A share as a percentage without a sign: "93% [88%, 97%]".
std::string percent_text(const Interval& i) {
  const Interval p{100 * i.value, 100 * i.low, 100 * i.high};
  std::string s = number_text(p.value, "%.0f%%");
  if (std::isfinite(p.low) || std::isfinite(p.high)) s += " [" + number_text(p.low, "%.0f%%") + ", " + number_text(p.high, "%.0f%%") + "]";
  return s;
}

std::string header(const MultiDomainReport& r, const std::string& first, const std::vector<std::string>& last) {
  std::string md = "| " + first + " |";
  for (const std::string& d : r.domains) md += " " + d + " |";
  for (const std::string& l : last) md += " " + l + " |";
  md += "\n|---|";
  for (size_t k = 0; k < r.domains.size() + last.size(); ++k) md += "---:|";
  return md + "\n";
}

}  // namespace

json to_json(const MultiDomainReport& r) {
  json j;
  j["domains"] = r.domains;
  j["oracles"] = json::array();
  for (const MultiDomainRow& row : r.oracle) j["oracles"].push_back(row_json(row, r));
  j["models"] = json::array();
  for (const MultiDomainRow& row : r.models) j["models"].push_back(row_json(row, r));
  j["unjudged_domains"] = r.unjudged;
  j["min_oracle_fall"] = kMinOracleFall;
  j["item_intervals"] = r.item_intervals;
  if (!r.item_intervals) j["item_intervals_note"] = r.item_intervals_note;
  return j;
}

std::string to_markdown(const MultiDomainReport& r) {
  std::string md = "Fall of each domain's mean token NLL from the base (nats, higher is better); probe and general: "
                   "rise (nats, lower is better)\n\n" +
                   header(r, "model", {"mean fall", "probe rise", "probe PPL change", "general rise (replayed)"});
  // The oracle row: each domain's own fine-tuning on that domain (one model per column).
  md += "| oracle (one model per domain) |";
  double sum = 0;
  for (size_t k = 0; k < r.domains.size(); ++k) {
    md += " " + interval_text(r.oracle[k].fall[k]) + " |";
    sum += r.oracle[k].fall[k].value;
  }
  md += " " + interval_text(Interval{sum / double(r.domains.size()), NAN, NAN}) + " | n/a | n/a | n/a |\n";
  for (const MultiDomainRow& row : r.models) {
    md += "| " + row.label + " |";
    for (const Interval& f : row.fall) md += " " + interval_text(f) + " |";
    md += " " + interval_text(row.mean_fall) + " | " + interval_text(row.probe_rise, "%+.4f") + " | " +
          interval_text(row.probe_ppl_change, "%.2f", true) + " | " + interval_text(row.general_rise, "%+.4f") + " |\n";
  }
  md += "\nShare of the oracle's fall on each domain (the oracle: that domain's own fine-tuned model; n/a where the "
        "oracle lowered the NLL by less than " + number_text(kMinOracleFall, "%.2f") + " nats; mean and lowest over the "
        "other domains)\n\n" +
        header(r, "model", {"mean", "lowest"});
  for (const MultiDomainRow& row : r.models) {
    md += "| " + row.label + " |";
    for (const Interval& s : row.oracle_share) md += " " + percent_text(s) + " |";
    md += " " + percent_text(row.mean_oracle_share) + " | " + percent_text(row.min_oracle_share) + " |\n";
  }
  bool any_routed = false;
  for (const MultiDomainRow& row : r.models) any_routed = any_routed || row.routed();
  if (any_routed) {
    md += "\nRouting: share of each domain's routing decisions (tokens x routed blocks) whose first choice is that "
          "domain's expert; on the general probe, the general expert\n\n" +
          header(r, "model", {"general probe -> general"});
    const auto share = [](double v) { return number_text(100 * v, "%.1f%%"); };
    for (const MultiDomainRow& row : r.models) {
      if (!row.routed()) continue;
      md += "| " + row.label + " |";
      for (double v : row.routed_to_own) md += " " + share(v) + " |";
      md += " " + share(row.probe_to_general) + " |\n";
    }
  }
  md += "\nEach domain scored on its held-out text (the split the reports were evaluated on); the probe is general English that no method trains on. " +
        (r.item_intervals ? std::string("Intervals: item-level bootstrap 95%, paired across every model.")
                          : r.item_intervals_note + ".") +
        " The oracle's mean fall is the mean of its diagonal figures (no interval).\n";
  return md;
}

std::string oracle_share_heatmap_svg(const MultiDomainReport& r) {
  Heatmap h;
  h.title = "Share of each domain's own fine-tuning's NLL fall (the oracle) that one model keeps";
  h.columns = r.domains;
  h.percent = true;
  for (const MultiDomainRow& row : r.models) {
    h.rows.push_back(row.label);
    h.values.emplace_back();
    for (const Interval& s : row.oracle_share) h.values.back().push_back(s.value);
  }
  h.note = "n/a: the oracle did not lower that domain's NLL";
  return render_heatmap_svg(h);
}

}  // namespace gemkit::eval

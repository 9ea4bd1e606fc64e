#include "report/multi_domain_report.h"

#include <algorithm>
#include <cmath>
#include <map>

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
  const std::vector<MultiDomainTradeoff> tradeoffs = multi_domain_tradeoffs(r);
  for (size_t i = 0; i < r.models.size(); ++i) {
    json row = row_json(r.models[i], r);
    const auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
    const FrontierPosition& p = tradeoffs[i].position;
    row["tradeoff"] = {{"method", tradeoffs[i].method},
                       {"others_frontier_probe_rise", num(p.frontier_rise)},
                       {"rise_ratio", num(p.rise_ratio)},
                       {"beyond_others_frontier", p.beyond}};
    j["models"].push_back(row);
  }
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
  // The trade-off plane: how much of every domain a model gains against what it forgets off target.
  const std::vector<MultiDomainTradeoff> tradeoffs = multi_domain_tradeoffs(r);
  md += "\nTrade-off: mean NLL fall over the domains against the general probe's NLL rise, each model against the "
        "Pareto frontier of the other methods' models (labels \"METHOD @ SETTING\" form one method's sweep; the base "
        "at (0, 0) is on every frontier; beyond: below the others' frontier at the same fall, or past their largest "
        "fall undominated)\n\n| model | method | mean fall | probe rise | others' frontier at that fall | rise / frontier | beyond |\n"
        "|---|---|---:|---:|---:|---:|---|\n";
  for (size_t i = 0; i < r.models.size(); ++i) {
    const MultiDomainRow& row = r.models[i];
    const FrontierPosition& p = tradeoffs[i].position;
    md += "| " + row.label + " | " + tradeoffs[i].method + " | " + number_text(row.mean_fall.value, "%.3f") + " | " +
          number_text(row.probe_rise.value, "%+.4f") + " | " + number_text(p.frontier_rise, "%+.4f") + " | " +
          number_text(p.rise_ratio, "%.2f") + " | " + (p.beyond ? "yes" : "no") + " |\n";
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

std::string method_of_label(const std::string& label) {
  const size_t at = label.find(" @ ");
  return at == std::string::npos ? label : label.substr(0, at);
}

std::vector<MultiDomainTradeoff> multi_domain_tradeoffs(const MultiDomainReport& r) {
  std::vector<MultiDomainTradeoff> out;
  for (const MultiDomainRow& row : r.models) {
    const std::string method = method_of_label(row.label);
    std::vector<TradeoffPoint> others;
    for (const MultiDomainRow& other : r.models)
      if (method_of_label(other.label) != method) others.push_back({other.mean_fall.value, other.probe_rise.value});
    out.push_back({method, frontier_position({row.mean_fall.value, row.probe_rise.value}, others)});
  }
  return out;
}

std::string multi_domain_tradeoff_svg(const MultiDomainReport& r) {
  PlotPanel panel;
  panel.title = "One model for every domain: general-probe NLL rise against mean NLL fall over the domains (95% intervals)";
  panel.x_label = "mean NLL fall over the domains (nats)";
  panel.y_label = "general probe NLL rise (nats)";
  std::vector<std::string> methods;
  std::map<std::string, std::vector<TradeoffPoint>> curves;
  std::vector<TradeoffPoint> all;
  for (const MultiDomainRow& row : r.models) {
    const std::string method = method_of_label(row.label);
    if (std::find(methods.begin(), methods.end(), method) == methods.end()) methods.push_back(method);
    const int colour = int(std::find(methods.begin(), methods.end(), method) - methods.begin());
    PlotSeries s;
    s.name = row.label;
    s.markers = true;
    s.colour = colour % 7;
    s.x = {row.mean_fall.value};
    s.y = {row.probe_rise.value};
    s.x_low = {row.mean_fall.low};
    s.x_high = {row.mean_fall.high};
    s.y_low = {row.probe_rise.low};
    s.y_high = {row.probe_rise.high};
    panel.series.push_back(s);
    curves[method].push_back({row.mean_fall.value, row.probe_rise.value});
    all.push_back({row.mean_fall.value, row.probe_rise.value});
  }
  for (auto& [method, points] : curves) {
    if (points.size() < 2) continue;
    std::sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.gain < b.gain; });
    PlotSeries line;
    line.name = method + " (sweep)";
    line.colour = int(std::find(methods.begin(), methods.end(), method) - methods.begin()) % 7;
    for (const TradeoffPoint& p : points) line.x.push_back(p.gain), line.y.push_back(p.rise);
    panel.series.push_back(line);
  }
  all.push_back({0.0, 0.0});
  PlotSeries front;
  front.name = "Pareto frontier (all, base at 0)";
  for (size_t i : pareto_front(all)) front.x.push_back(all[i].gain), front.y.push_back(all[i].rise);
  panel.series.push_back(front);
  PlotOptions po;
  po.panel_height = 460;
  return render_svg({panel}, po);
}

}  // namespace gemkit::eval

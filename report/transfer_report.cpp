#include "report/transfer_report.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "report/interval_format.h"

namespace gemkit::eval {
namespace {

using json = nlohmann::json;

std::string fmt(double v, const char* f) { return number_text(v, f); }

}  // namespace

json to_json(const TransferMatrix& m) {
  json j;
  j["domains"] = m.domains;
  j["rows"] = json::array();
  for (size_t i = 0; i < m.rows.size(); ++i) {
    json row;
    row["label"] = m.rows[i];
    row["source"] = m.sources[i];
    for (size_t k = 0; k < m.domains.size(); ++k) {
      row["score_delta"][m.domains[k]] = interval_json(m.score_delta[i][k]);
      row["ppl_change"][m.domains[k]] = interval_json(m.ppl_change[i][k]);
    }
    row["cdtr"] = m.cdtr_why[i].empty() ? interval_json(m.cdtr[i]) : json(nullptr);
    if (!m.cdtr_why[i].empty()) row["cdtr_undefined"] = m.cdtr_why[i];
    row["cdtr_ppl"] = m.cdtr_ppl_why[i].empty() ? interval_json(m.cdtr_ppl[i]) : json(nullptr);
    if (!m.cdtr_ppl_why[i].empty()) row["cdtr_ppl_undefined"] = m.cdtr_ppl_why[i];
    j["rows"].push_back(row);
  }
  j["item_intervals"] = m.item_intervals;
  if (!m.item_intervals) j["item_intervals_note"] = m.item_intervals_note;
  j["min_on_target_gain"] = kCdtrMinGain;
  return j;
}

std::string to_markdown(const TransferMatrix& m) {
  std::string md;
  const auto table = [&](const std::string& title, const std::vector<std::vector<Interval>>& cells, bool percent) {
    md += title + "\n\n| model (source) |";
    for (const std::string& d : m.domains) md += " " + d + " |";
    md += "\n|---|";
    for (size_t k = 0; k < m.domains.size(); ++k) md += "---|";
    md += "\n";
    for (size_t i = 0; i < m.rows.size(); ++i) {
      md += "| " + m.rows[i] + " (" + m.sources[i] + ") |";
      for (size_t k = 0; k < m.domains.size(); ++k) {
        const std::string v = interval_text(cells[i][k], percent ? "%.1f" : "%+.3f", percent);
        md += " " + (m.domains[k] == m.sources[i] ? "**" + v + "**" : v) + " |";
      }
      md += "\n";
    }
    md += "\n";
  };
  table("Transfer matrix dS(m_s,t) = S(m_s,t) - S(m0,t) (rows: adapted models; bold: the source domain)",
        m.score_delta, false);
  table("Perplexity form: PPL(m_s,t) / PPL(m0,t) - 1", m.ppl_change, true);
  md += "| model (source) | CDTR | CDTR (perplexity) |\n|---|---|---|\n";
  for (size_t i = 0; i < m.rows.size(); ++i)
    md += "| " + m.rows[i] + " (" + m.sources[i] + ") | " +
          (m.cdtr_why[i].empty() ? interval_text(m.cdtr[i], "%.3f") : "undefined: " + m.cdtr_why[i]) + " | " +
          (m.cdtr_ppl_why[i].empty() ? interval_text(m.cdtr_ppl[i], "%.3f") : "undefined: " + m.cdtr_ppl_why[i]) +
          " |\n";
  md += "\nCDTR(s) = mean over t != s of dS(m_s,t) / dS(m_s,s), undefined when dS(m_s,s) < " + fmt(kCdtrMinGain, "%.2f") +
        "; the perplexity form uses the relative perplexity gains. " +
        (m.item_intervals ? "Intervals: item-level bootstrap 95%." : m.item_intervals_note + ".") + "\n";
  return md;
}

}  // namespace gemkit::eval

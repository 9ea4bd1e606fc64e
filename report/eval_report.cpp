#include "report/eval_report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/file_io.h"

namespace gemkit::eval {
namespace {

std::string fmt(double v, int digits = 4) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Perplexities can be in the thousands; keep 4 significant digits there.
std::string fmt_figure(const std::string& name, double v) {
  return name == "perplexity" && std::fabs(v) >= 100 ? fmt(v, 1) : fmt(v, 4);
}

nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string baseline_text(const Result& r) {
  if (r.baselines.is_null() || !r.baselines.is_object()) return "";
  std::string out;
  for (const char* name : {"majority", "random"}) {
    if (!r.baselines.contains(name)) continue;
    const auto& b = r.baselines[name];
    if (b.is_object() && b.contains(r.primary) && b[r.primary].is_number())
      out += (out.empty() ? "" : ", ") + std::string(name) + " " + fmt(b[r.primary].get<double>(), 3);
  }
  return out;
}

}  // namespace

nlohmann::json to_json(const Report& report) {
  nlohmann::json j;
  j["gemkit_eval"] = 1;
  j["model"] = report.model;
  j["tokenizer"] = report.tokenizer;
  j["settings"] = report.settings;
  j["results"] = nlohmann::json::array();
  for (const Result& r : report.results) {
    nlohmann::json o;
    o["kind"] = r.kind;
    o["key"] = r.key;
    o["domain"] = r.domain;
    o["method"] = r.method;
    o["items"] = r.items;
    if (!r.skipped.empty()) o["skipped"] = r.skipped;
    o["primary"] = r.primary;
    o["figures"] = nlohmann::json::object();
    for (const Figure& f : r.figures)
      o["figures"][f.name] = {{"value", json_number(f.ci.value)}, {"low", json_number(f.ci.low)},
                              {"high", json_number(f.ci.high)}};
    o["stats"] = nlohmann::json::object();
    for (const auto& [k, v] : r.stats) o["stats"][k] = json_number(v);
    o["baselines"] = r.baselines;
    if (!r.per_item.is_null()) o["per_item"] = r.per_item;
    j["results"].push_back(o);
  }
  j["domain_scores"] = nlohmann::json::object();
  for (const auto& [d, v] : domain_scores(report)) j["domain_scores"][d] = {{"score", v.score}, {"tasks", v.tasks}};
  j["elapsed_s"] = report.elapsed_s;
  return j;
}

std::string to_markdown(const Report& report) {
  std::string md;
  md += "| kind | task / domain | method | figure | value | 95% CI | items | baselines |\n";
  md += "|---|---|---|---|---|---|---|---|\n";
  for (const Result& r : report.results) {
    if (!r.skipped.empty()) {
      md += "| " + r.kind + " | " + r.key + " | - | - | skipped | " + r.skipped + " | " + std::to_string(r.items) + " | |\n";
      continue;
    }
    bool first = true;
    for (const Figure& f : r.figures) {
      md += "| " + (first ? r.kind : std::string()) + " | " + (first ? r.key : std::string()) + " | " +
            (first ? r.method : std::string()) + " | " + f.name + (f.name == r.primary ? " *" : "") + " | " +
            fmt_figure(f.name, f.ci.value) + " | [" + fmt_figure(f.name, f.ci.low) + ", " +
            fmt_figure(f.name, f.ci.high) + "] | " + (first ? std::to_string(r.items) : std::string()) + " | " +
            (first ? baseline_text(r) : std::string()) + " |\n";
      first = false;
    }
  }
  const auto scores = domain_scores(report);
  if (!scores.empty()) {
    md += "\n| domain | S(m, d) | tasks |\n|---|---|---|\n";
    for (const auto& [d, v] : scores) md += "| " + d + " | " + fmt(v.score) + " | " + std::to_string(v.tasks) + " |\n";
  }
  md += "\n`*` the task's metric (enters S(m, d)). Intervals: percentile bootstrap over test items "
        "(documents for perplexity).\n";
  return md;
}

std::string markdown_path(const std::string& json_path) {
  std::filesystem::path p(json_path);
  p.replace_extension(".md");
  return p.string();
}

void write_report(const Report& report, const std::string& json_path) {
  const std::filesystem::path parent = std::filesystem::path(json_path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  write_text_file_atomic(json_path, to_json(report).dump(2) + "\n");
  write_text_file_atomic(markdown_path(json_path), to_markdown(report));
}

}  // namespace gemkit::eval

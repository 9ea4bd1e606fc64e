#include "eval/item_bootstrap.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "core/error.h"
#include "eval/metrics.h"

namespace gemkit::eval {
namespace {

using json = nlohmann::json;

// One result's per-item values.
struct Items {
  std::string kind, domain, primary;
  std::vector<double> nll, tokens;  // perplexity
  std::vector<int32_t> gold, pred;  // tasks
  int32_t num_classes = 0;

  size_t size() const { return kind == "perplexity" ? nll.size() : gold.size(); }

  double figure(const std::vector<size_t>& idx) const {
    if (kind == "perplexity") {
      double nll_sum = 0, token_sum = 0;
      for (size_t i : idx) nll_sum += nll[i], token_sum += tokens[i];
      return std::exp(nll_sum / token_sum);
    }
    return primary == "macro_f1" ? macro_f1(gold, pred, num_classes, idx) : accuracy(gold, pred, idx);
  }
};

template <typename T>
std::vector<T> array_of(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_array()) fail(where + "." + key, "expected an array of numbers");
  std::vector<T> out;
  for (const json& v : j[key]) {
    if (!v.is_number()) fail(where + "." + key, std::string("expected numbers, got ") + v.type_name());
    out.push_back(v.get<T>());
  }
  return out;
}

// The per-item results of one report by result key; `missing` names the first evaluated
// result without them (then the map is incomplete).
std::map<std::string, Items> read_items(const LabelledReport& r, std::string& missing) {
  std::map<std::string, Items> out;
  const json& results = r.report.at("results");  // domain_figures() checked the layout
  for (size_t k = 0; k < results.size(); ++k) {
    const json& res = results[k];
    if (res.contains("skipped")) continue;
    const std::string where = "report " + r.label + ": results[" + std::to_string(k) + "].per_item";
    const std::string key = res.value("key", res.value("domain", ""));
    if (!res.contains("per_item")) {
      if (missing.empty()) missing = "report " + r.label + " keeps no per-item results (result \"" + key + "\")";
      continue;
    }
    const json& p = res["per_item"];
    if (!p.is_object()) fail(where, "expected an object");
    Items it;
    it.kind = res.value("kind", "");
    it.domain = res.value("domain", "");
    it.primary = res.value("primary", "");
    if (it.kind == "perplexity") {
      it.nll = array_of<double>(p, "nll", where);
      it.tokens = array_of<double>(p, "tokens", where);
      if (it.nll.size() != it.tokens.size()) fail(where, "\"nll\" and \"tokens\" differ in length");
    } else {
      it.gold = array_of<int32_t>(p, "gold", where);
      it.pred = array_of<int32_t>(p, "pred", where);
      if (it.gold.size() != it.pred.size()) fail(where, "\"gold\" and \"pred\" differ in length");
      if (it.primary == "macro_f1") {
        if (!p.contains("num_classes") || !p["num_classes"].is_number_integer() || p["num_classes"] < 1)
          fail(where + ".num_classes", "expected a positive integer");
        it.num_classes = p["num_classes"].get<int32_t>();
      } else if (it.primary != "accuracy") {
        fail(res.contains("primary") ? where : where + ".primary",
             "per-item results need primary \"accuracy\" or \"macro_f1\", got \"" + it.primary + "\"");
      }
    }
    if (it.size() == 0) fail(where, "no items");
    out[key] = std::move(it);
  }
  return out;
}

// The report's figures on one resample (`idx` per result key).
DomainFigures figures_of(const std::map<std::string, Items>& items, const std::map<std::string, std::vector<size_t>>& idx) {
  DomainFigures f;
  std::map<std::string, std::pair<double, int>> tasks;  // domain -> (sum, count)
  for (const auto& [key, it] : items) {
    const double v = it.figure(idx.at(key));
    if (it.kind == "perplexity") {
      f.perplexity[it.domain] = v;
    } else if (it.domain != "cross") {  // the domain-identification task is not a domain
      tasks[it.domain].first += v;
      tasks[it.domain].second += 1;
    }
  }
  for (const auto& [d, s] : tasks) f.score[d] = s.first / s.second;
  return f;
}

}  // namespace

ItemBootstrap::ItemBootstrap(const std::vector<LabelledReport>& reports, const BootstrapOptions& options)
    : confidence_(options.confidence) {
  for (const LabelledReport& r : reports) full_.push_back(domain_figures(r));
  if (reports.empty()) {
    reason_ = "no reports";
    return;
  }
  std::vector<std::map<std::string, Items>> items;
  for (const LabelledReport& r : reports) {
    items.push_back(read_items(r, reason_));
    if (!reason_.empty()) return;
  }
  // The same items in every report: same results, sizes and gold labels.
  for (size_t m = 1; m < items.size(); ++m) {
    for (const auto& [key, it] : items[0]) {
      const auto other = items[m].find(key);
      if (other == items[m].end() || other->second.size() != it.size() || other->second.gold != it.gold) {
        reason_ = "reports " + reports[0].label + " and " + reports[m].label + " differ in the items of \"" + key + "\"";
        return;
      }
    }
    if (items[m].size() != items[0].size()) {
      reason_ = "reports " + reports[0].label + " and " + reports[m].label + " have different results";
      return;
    }
  }
  // Stratified draws; mt19937_64 and our own index mapping, as eval/bootstrap.cpp, so that the
  // draws are the same with every standard library.
  std::mt19937_64 rng(options.seed);
  std::map<std::string, std::vector<size_t>> idx;
  for (int64_t b = 0; b < options.resamples; ++b) {
    for (const auto& [key, it] : items[0]) {
      std::vector<size_t>& v = idx[key];
      v.resize(it.size());
      for (size_t& i : v) i = size_t(rng() % it.size());
    }
    std::vector<DomainFigures> draw;
    for (const auto& report_items : items) draw.push_back(figures_of(report_items, idx));
    draws_.push_back(std::move(draw));
  }
}

Interval ItemBootstrap::interval(const std::function<double(const std::vector<DomainFigures>&)>& metric) const {
  Interval out;
  out.value = metric(full_);
  out.low = out.high = NAN;
  if (!available()) return out;
  std::vector<double> stats;
  for (const auto& draw : draws_) {
    const double s = metric(draw);
    if (!std::isfinite(s)) return out;  // undefined on a resample: no interval (never drop it)
    stats.push_back(s);
  }
  std::sort(stats.begin(), stats.end());
  const double alpha = 1 - confidence_;
  out.low = quantile(stats, alpha / 2);
  out.high = quantile(stats, 1 - alpha / 2);
  return out;
}

}  // namespace gemkit::eval

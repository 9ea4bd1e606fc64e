// eval/compare: the section-6 metrics from hand-built reports with hand-computed answers.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "eval/compare.h"
#include "report/compare_report.h"

using namespace gemkit;
using json = nlohmann::json;

namespace {

json report(double ppl_law, double ppl_general, double s_law, double s_general, double s_stem) {
  json r;
  r["results"] = json::array(
      {{{"kind", "perplexity"}, {"domain", "law"}, {"figures", {{"perplexity", {{"value", ppl_law}}}}}},
       {{"kind", "perplexity"}, {"domain", "general"}, {"figures", {{"perplexity", {{"value", ppl_general}}}}}},
       {{"kind", "classification"}, {"key", "law/clause_topic"}, {"domain", "law"}, {"method", "label_words"},
        {"primary", "macro_f1"},
        {"figures", {{"macro_f1", {{"value", s_law}, {"low", s_law - 0.1}, {"high", s_law + 0.1}}}}}}});
  r["domain_scores"] = {{"law", {{"score", s_law}}},
                        {"general", {{"score", s_general}}},
                        {"stem", {{"score", s_stem}}},
                        {"cross", {{"score", 0.99}}}};  // not a domain: must not enter S(m,~t)
  return r;
}

}  // namespace

TEST(EvalCompare, SectionSixMetrics) {
  const Comparison c = compare_reports({{"base", report(100, 50, 0.5, 0.4, 0.6)},
                                        {"ft", report(80, 60, 0.7, 0.3, 0.5)},
                                        {"gem", report(85, 52, 0.6, 0.4, 0.6)}},
                                       "law");
  const json& ft = c.json["summary"]["ft"];
  EXPECT_NEAR(ft["domain_gain"].get<double>(), 0.20, 1e-12);    // (100 - 80) / 100
  EXPECT_NEAR(ft["general_drift"].get<double>(), 0.20, 1e-12);  // 60 / 50 - 1
  EXPECT_NEAR(ft["S_other"].get<double>(), 0.40, 1e-12);        // mean(0.3, 0.5); cross left out
  EXPECT_NEAR(ft["DSI"].get<double>(), 0.7 / 0.4, 1e-12);
  EXPECT_NEAR(ft["GG"].get<double>(), (0.5 - 0.4) / 0.5, 1e-12);  // S(m0,~t) = mean(0.4, 0.6)
  const json& gem = c.json["summary"]["gem"];
  EXPECT_NEAR(gem["domain_gain"].get<double>(), 0.15, 1e-12);
  EXPECT_NEAR(gem["general_drift"].get<double>(), 0.04, 1e-12);
  // No domain off target but the replayed general corpus: R_off, so the reduction, is undefined.
  EXPECT_TRUE(gem["forgetting_reduction_vs_ft"].is_null());
  EXPECT_TRUE(ft["forgetting_reduction_vs_ft"].is_null());  // only runs after the reference have one
  EXPECT_NE(c.markdown.find("| **law** | 100.00 | 80.00 | -20.0% | 85.00 | -15.0% |"), std::string::npos)
      << c.markdown;
}

// The loss forms (gem-method.md section 6) on reports with an off-target domain and the probe:
// L = log PPL, G = L(m0,t) - L(m,t), R_off = mean rise over stem and the probe (not the replayed
// general corpus), gain kept G / G_ft, forgetting reduction 1 - R_off / R_off(ft).
TEST(EvalCompare, LossFormsOffTargetAndProbe) {
  const auto with = [](double law, double general, double stem, double probe) {
    json r = report(law, general, 0.5, 0.4, 0.6);
    r["results"].push_back({{"kind", "perplexity"}, {"domain", "stem"}, {"figures", {{"perplexity", {{"value", stem}}}}}});
    r["results"].push_back(
        {{"kind", "perplexity"}, {"domain", "general_probe"}, {"figures", {{"perplexity", {{"value", probe}}}}}});
    return r;
  };
  const Comparison c = compare_reports(
      {{"base", with(100, 50, 40, 30)}, {"ft", with(80, 60, 48, 36)}, {"gem", with(85, 40, 42, 30.9)}}, "law");
  const json& ft = c.json["summary"]["ft"];
  EXPECT_NEAR(ft["nll_gain"].get<double>(), std::log(100.0 / 80), 1e-12);
  EXPECT_NEAR(ft["off_target_rise"].get<double>(), std::log(1.2), 1e-12);  // stem and probe both x1.2
  EXPECT_NEAR(ft["probe_rise"].get<double>(), std::log(1.2), 1e-12);
  EXPECT_NEAR(ft["general_rise"].get<double>(), std::log(1.2), 1e-12);
  const json& gem = c.json["summary"]["gem"];
  const double gem_off = (std::log(42.0 / 40) + std::log(30.9 / 30)) / 2;  // the general fall is not counted
  EXPECT_NEAR(gem["off_target_rise"].get<double>(), gem_off, 1e-12);
  EXPECT_NEAR(gem["general_rise"].get<double>(), std::log(40.0 / 50), 1e-12);
  EXPECT_NEAR(gem["gain_kept_vs_ft"].get<double>(), std::log(100.0 / 85) / std::log(100.0 / 80), 1e-12);
  EXPECT_NEAR(gem["forgetting_reduction_vs_ft"].get<double>(), 1 - gem_off / std::log(1.2), 1e-12);
  EXPECT_EQ(c.json["summary"]["base"]["off_target_rise"].get<double>(), 0.0);
  EXPECT_NE(c.markdown.find("| base | +0.0000 | +0.0000 |"), std::string::npos) << c.markdown;  // not -0.0000
  EXPECT_NE(c.markdown.find("| gem | +0.1625 | +0.0392 | +0.0296 | -0.2231 | +72.8% | +78.5% |"), std::string::npos)
      << c.markdown;

  // Undefined, never silently partial: a model without the stem perplexity has no R_off; a
  // reference that did not forget (or gain) leaves the ratios n/a.
  json no_stem = with(85, 40, 42, 30.9);
  no_stem["results"].erase(3);
  const Comparison partial = compare_reports({{"base", with(100, 50, 40, 30)}, {"ft", with(80, 60, 48, 36)},
                                              {"gem", no_stem}}, "law");
  EXPECT_TRUE(partial.json["summary"]["gem"]["off_target_rise"].is_null());
  EXPECT_TRUE(partial.json["summary"]["gem"]["forgetting_reduction_vs_ft"].is_null());
  const Comparison no_forgetting = compare_reports(
      {{"base", with(100, 50, 40, 30)}, {"ft", with(80, 60, 38, 30)}, {"gem", with(85, 40, 42, 30.9)}}, "law");
  EXPECT_TRUE(no_forgetting.json["summary"]["gem"]["forgetting_reduction_vs_ft"].is_null());
  EXPECT_NE(no_forgetting.markdown.find("| +72.8% | n/a |"), std::string::npos) << no_forgetting.markdown;
  const Comparison no_gain = compare_reports(
      {{"base", with(100, 50, 40, 30)}, {"ft", with(100, 60, 48, 36)}, {"gem", with(85, 40, 42, 30.9)}}, "law");
  EXPECT_TRUE(no_gain.json["summary"]["gem"]["gain_kept_vs_ft"].is_null());
  // A base report of tasks alone (asked through a chat template, say) has no gain against
  // itself to show: n/a, not +0.0000.
  json tasks_only = with(100, 50, 40, 30);
  tasks_only["results"] = json::array({tasks_only["results"][2]});
  const Comparison no_base_loss = compare_reports({{"base", tasks_only}, {"ft", with(80, 60, 48, 36)}}, "law");
  EXPECT_TRUE(no_base_loss.json["summary"]["base"]["nll_gain"].is_null());
  EXPECT_TRUE(no_base_loss.json["summary"]["base"]["off_target_rise"].is_null());
  EXPECT_NE(no_base_loss.markdown.find("| base | n/a | n/a |"), std::string::npos) << no_base_loss.markdown;
}

TEST(EvalCompare, ErrorsNameTheProblem) {
  try {
    compare_reports({{"base", report(1, 1, 0, 0, 0)}, {"x", report(1, 1, 0, 0, 0)}}, "finance");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"finance\""), std::string::npos) << e.what();
  }
  try {
    compare_reports({{"base", json::object()}, {"x", report(1, 1, 0, 0, 0)}}, "law");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("report base"), std::string::npos) << e.what();
  }
  EXPECT_THROW(compare_reports({{"base", report(1, 1, 0, 0, 0)}}, "law"), Error);
  json no_primary = report(1, 1, 0, 0, 0);
  no_primary["results"][2]["figures"].erase("macro_f1");
  try {
    compare_reports({{"base", report(1, 1, 0, 0, 0)}, {"x", no_primary}}, "law");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("report x: results[2].figures.macro_f1"), std::string::npos) << e.what();
  }
}

// The task table: every task of any report, the target's first, each report's score and interval
// side by side (n/a where a report lacks the task), as an instruct model's tasks asked as running
// text and through its chat template are compared.
TEST(EvalCompare, TaskScoresSideBySide) {
  json chat = report(90, 50, 0.8, 0.4, 0.6);
  chat["results"][2]["method"] = "label_words_chat";
  chat["results"].push_back({{"kind", "multiple_choice"}, {"key", "commonsense/quiz_mc"}, {"domain", "commonsense"},
                             {"method", "loglik_chat"}, {"primary", "accuracy"},
                             {"figures", {{"accuracy", {{"value", 0.36}, {"low", 0.16}, {"high", 0.56}}}}}});
  chat["results"].push_back({{"kind", "multiple_choice"}, {"key", "stem/skipped_mc"}, {"domain", "stem"},
                             {"skipped", "needs a causal LM"}});
  const Comparison c = compare_reports({{"text", report(100, 50, 0.5, 0.4, 0.6)}, {"chat", chat}}, "law");
  EXPECT_NEAR(c.json["tasks"]["law/clause_topic"]["chat"]["value"].get<double>(), 0.8, 1e-12);
  EXPECT_EQ(c.json["tasks"]["law/clause_topic"]["chat"]["method"], "label_words_chat");
  EXPECT_FALSE(c.json["tasks"]["commonsense/quiz_mc"].contains("text"));
  EXPECT_FALSE(c.json["tasks"].contains("stem/skipped_mc"));
  const std::string table = c.markdown.substr(c.markdown.find("| task |"));
  EXPECT_NE(table.find("| task | text | chat | metric |\n|---|---|---|---|\n"
                       "| **law/clause_topic** | 0.500 [0.40, 0.60] | 0.800 [0.70, 0.90] | macro_f1 |\n"
                       "| commonsense/quiz_mc | n/a | 0.360 [0.16, 0.56] | accuracy |\n"),
            std::string::npos)
      << table;
}

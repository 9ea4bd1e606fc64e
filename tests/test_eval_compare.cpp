// eval/compare: the section-6 metrics from hand-built reports with hand-computed answers.
#include <gtest/gtest.h>

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
       {{"kind", "classification"}, {"domain", "law"}, {"figures", {{"macro_f1", {{"value", s_law}}}}}}});
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
  EXPECT_NEAR(gem["forgetting_reduction_vs_ft"].get<double>(), 1 - 0.04 / 0.20, 1e-12);
  EXPECT_TRUE(ft["forgetting_reduction_vs_ft"].is_null());  // only runs after the reference have one
  EXPECT_NE(c.markdown.find("| **law** | 100.00 | 80.00 | -20.0% | 85.00 | -15.0% |"), std::string::npos)
      << c.markdown;
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
}

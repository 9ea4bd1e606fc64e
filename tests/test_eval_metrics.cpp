// eval/transfer, eval/sequential and eval/item_bootstrap: the cross-domain transfer matrix with
// CDTR, the continual-learning metrics of sequential domains and item-level bootstrap
// intervals, from hand-built reports. Every number below is computed by hand in the comments;
// the values are dyadic fractions, so the checks are exact.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "eval/item_bootstrap.h"
#include "eval/multi_domain.h"
#include "eval/sequential.h"
#include "eval/transfer.h"
#include "report/pareto.h"
#include "report/multi_domain_report.h"
#include "report/sequential_report.h"
#include "report/transfer_report.h"
#include "tests/test_util.h"

using namespace gemkit;
using namespace gemkit::eval;
using json = nlohmann::json;
using gemkit::test::expect_error;

namespace {

// A `gemkit eval` report with the given perplexities and S(m,d) (domain_scores).
json report(const std::map<std::string, double>& ppl, const std::map<std::string, double>& scores) {
  json r;
  r["results"] = json::array();
  for (const auto& [d, v] : ppl)
    r["results"].push_back({{"kind", "perplexity"}, {"key", d}, {"domain", d}, {"primary", "perplexity"},
                            {"figures", {{"perplexity", {{"value", v}, {"low", v}, {"high", v}}}}}});
  r["domain_scores"] = json::object();
  for (const auto& [d, v] : scores) r["domain_scores"][d] = {{"score", v}, {"tasks", 1}};
  r["domain_scores"]["cross"] = {{"score", 0.875}, {"tasks", 1}};  // not a domain: never enters
  return r;
}

double value(const json& j) { return j.at("value").get<double>(); }

}  // namespace

// base m0:   S law 0.25, finance 0.25, general 0.5, stem 0.125; PPL law 100, finance 80, general 50
// m_law:     S law 0.75, finance 0.375, general 0.375, stem 0.3125; PPL law 75, finance 70, general 62.5
//   dS(m_law, .) = law +0.5, finance +0.125, general -0.125, stem +0.1875
//   CDTR(law) = mean(0.125/0.5, -0.125/0.5, 0.1875/0.5) = mean(0.25, -0.25, 0.375) = 0.125
//   PPL change = law 75/100-1 = -0.25, finance 70/80-1 = -0.125, general 62.5/50-1 = +0.25
//   CDTR_ppl(law): gains law 0.25, finance 0.125, general -0.25 -> mean(0.5, -1) = -0.25
// m_fin:     S finance 0.2578125 (dS = 0.0078125 < 0.01) -> CDTR undefined
//            PPL finance 60 (gain 0.25), law 110 (gain -0.1), general 50 (gain 0) -> CDTR_ppl mean(-0.4, 0)
// m_stem:    no task score for stem -> CDTR undefined ("no task score")
TEST(EvalTransfer, MatrixAndCdtrByHand) {
  const LabelledReport base{"base", report({{"law", 100}, {"finance", 80}, {"general", 50}},
                                           {{"law", 0.25}, {"finance", 0.25}, {"general", 0.5}, {"stem", 0.125}})};
  const LabelledReport m_law{"m_law", report({{"law", 75}, {"finance", 70}, {"general", 62.5}},
                                             {{"law", 0.75}, {"finance", 0.375}, {"general", 0.375}, {"stem", 0.3125}})};
  const LabelledReport m_fin{"m_fin", report({{"law", 110}, {"finance", 60}, {"general", 50}},
                                             {{"law", 0.25}, {"finance", 0.2578125}, {"general", 0.5}, {"stem", 0.125}})};
  const LabelledReport m_stem{"m_stem", report({{"law", 100}, {"finance", 80}, {"general", 50}},
                                               {{"law", 0.25}, {"finance", 0.25}, {"general", 0.5}})};
  const TransferMatrix m = transfer_matrix(base, {{"law", m_law}, {"finance", m_fin}, {"stem", m_stem}});
  ASSERT_EQ(m.domains, (std::vector<std::string>{"finance", "general", "law", "stem"}));  // "cross" left out
  EXPECT_FALSE(m.item_intervals);
  EXPECT_NE(m.item_intervals_note.find("keeps no per-item results"), std::string::npos) << m.item_intervals_note;

  // Row m_law: dS and the perplexity change per domain (finance, general, law, stem).
  const double ds[] = {0.125, -0.125, 0.5, 0.1875}, dp[] = {-0.125, 0.25, -0.25};
  for (size_t k = 0; k < 4; ++k) EXPECT_EQ(m.score_delta[0][k].value, ds[k]) << m.domains[k];
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(m.ppl_change[0][k].value, dp[k]) << m.domains[k];
  EXPECT_TRUE(std::isnan(m.ppl_change[0][3].value));  // no stem perplexity
  EXPECT_TRUE(std::isnan(m.score_delta[0][0].low));   // no item-level bounds
  EXPECT_EQ(m.cdtr[0].value, 0.125);
  EXPECT_TRUE(m.cdtr_why[0].empty());
  EXPECT_EQ(m.cdtr_ppl[0].value, -0.25);

  // m_fin: on-target gain 0.0078125 is below 0.01.
  EXPECT_TRUE(std::isnan(m.cdtr[1].value));
  EXPECT_NE(m.cdtr_why[1].find("on-target gain 0.0078 is below 0.01"), std::string::npos) << m.cdtr_why[1];
  EXPECT_NEAR(m.cdtr_ppl[1].value, -0.2, 1e-12);  // mean(-0.1/0.25, 0/0.25)
  // m_stem: stem has no score in m_stem; its perplexity is missing everywhere.
  EXPECT_NE(m.cdtr_why[2].find("no task score for the source domain stem"), std::string::npos) << m.cdtr_why[2];
  EXPECT_NE(m.cdtr_ppl_why[2].find("no perplexity for the source domain stem"), std::string::npos);

  const json j = to_json(m);
  EXPECT_EQ(value(j["rows"][0]["cdtr"]), 0.125);
  EXPECT_TRUE(j["rows"][0]["cdtr"]["low"].is_null());
  EXPECT_TRUE(j["rows"][1]["cdtr"].is_null());
  EXPECT_NE(j["rows"][1]["cdtr_undefined"].get<std::string>().find("below 0.01"), std::string::npos);
  EXPECT_EQ(value(j["rows"][0]["score_delta"]["stem"]), 0.1875);
  EXPECT_FALSE(j["item_intervals"].get<bool>());
  const std::string md = to_markdown(m);
  EXPECT_NE(md.find("| m_law (law) | +0.125 | -0.125 | **+0.500** | +0.188 |"), std::string::npos) << md;
  EXPECT_NE(md.find("undefined: on-target gain"), std::string::npos) << md;
}

// Stages law -> finance -> stem. R (rows: after stage i, row 0 the base; columns law, finance, stem):
//   0 base     0.25   0.25   0.25
//   1 law      0.75   0.375  0.25
//   2 finance  0.5    0.875  0.375
//   3 stem     0.625  0.5    0.75
// ACC = (0.625 + 0.5 + 0.75) / 3 = 0.625
// BWT = ((R3law - R1law) + (R3fin - R2fin)) / 2 = ((0.625 - 0.75) + (0.5 - 0.875)) / 2 = -0.25
// FWT = ((R1fin - R0fin) + (R2stem - R0stem)) / 2 = ((0.375 - 0.25) + (0.375 - 0.25)) / 2 = 0.125
// forgetting law = max(0.75, 0.5) - 0.625 = 0.125; finance = max(0.375, 0.875) - 0.5 = 0.375; mean 0.25
// Perplexity (law, finance, stem): base 100 100 100, law 50 100 100, finance 75 50 100, stem 75 75 50
//   -> gains (1 - PPL/100): row 1 0.5 0 0; row 2 0.25 0.5 0; row 3 0.25 0.25 0.5
//   ACC = 1/3 (0.25 + 0.25 + 0.5) = 1/3; BWT = ((0.25 - 0.5) + (0.25 - 0.5)) / 2 = -0.25; FWT = 0
//   forgetting law = 0.5 - 0.25, finance = 0.5 - 0.25 -> 0.25
TEST(EvalSequential, ThreeStagesByHand) {
  const std::vector<std::vector<double>> R = {
      {0.25, 0.25, 0.25}, {0.75, 0.375, 0.25}, {0.5, 0.875, 0.375}, {0.625, 0.5, 0.75}};
  const SequentialMetrics m = sequential_metrics(R);
  EXPECT_EQ(m.acc, 0.625);
  EXPECT_EQ(m.bwt, -0.25);
  EXPECT_EQ(m.fwt, 0.125);
  EXPECT_EQ(m.forgetting, 0.25);
  EXPECT_EQ(m.forgetting_per_domain, (std::vector<double>{0.125, 0.375}));

  const auto stage = [&](const std::string& label, size_t i, const std::map<std::string, double>& ppl) {
    return LabelledReport{label, report(ppl, {{"law", R[i][0]}, {"finance", R[i][1]}, {"stem", R[i][2]}})};
  };
  const LabelledReport base = stage("base", 0, {{"law", 100}, {"finance", 100}, {"stem", 100}});
  const SequentialReport r = sequential_report(
      base, {{"law", stage("after_law", 1, {{"law", 50}, {"finance", 100}, {"stem", 100}})},
             {"finance", stage("after_finance", 2, {{"law", 75}, {"finance", 50}, {"stem", 100}})},
             {"stem", stage("after_stem", 3, {{"law", 75}, {"finance", 75}, {"stem", 50}})}});
  EXPECT_EQ(r.domains, (std::vector<std::string>{"law", "finance", "stem"}));
  EXPECT_EQ(r.rows, (std::vector<std::string>{"base", "after_law", "after_finance", "after_stem"}));
  for (size_t i = 0; i < 4; ++i)
    for (size_t j = 0; j < 3; ++j) EXPECT_EQ(r.score.matrix[i][j].value, R[i][j]) << i << "," << j;
  EXPECT_EQ(r.score.acc.value, 0.625);
  EXPECT_EQ(r.score.bwt.value, -0.25);
  EXPECT_EQ(r.score.fwt.value, 0.125);
  EXPECT_EQ(r.score.forgetting.value, 0.25);
  EXPECT_EQ(r.ppl_gain.matrix[2][1].value, 0.5);
  EXPECT_EQ(r.ppl_gain.matrix[0][0].value, 0.0);
  EXPECT_DOUBLE_EQ(r.ppl_gain.acc.value, 1.0 / 3);
  EXPECT_EQ(r.ppl_gain.bwt.value, -0.25);
  EXPECT_EQ(r.ppl_gain.fwt.value, 0.0);
  EXPECT_EQ(r.ppl_gain.forgetting.value, 0.25);
  // NLL falls (nats): row 1 ln 2, 0, 0; row 2 ln 4/3, ln 2, 0; row 3 ln 4/3, ln 4/3, ln 2.
  //   ACC = (2 ln 4/3 + ln 2) / 3; BWT = ln 4/3 - ln 2 = ln 2/3; FWT = 0; forgetting = ln 3/2
  EXPECT_NEAR(r.nll_fall.matrix[1][0].value, std::log(2.0), 1e-15);
  EXPECT_EQ(r.nll_fall.matrix[0][2].value, 0.0);
  EXPECT_NEAR(r.nll_fall.acc.value, (2 * std::log(4.0 / 3) + std::log(2.0)) / 3, 1e-15);
  EXPECT_NEAR(r.nll_fall.bwt.value, std::log(2.0 / 3), 1e-15);
  EXPECT_EQ(r.nll_fall.fwt.value, 0.0);
  EXPECT_NEAR(r.nll_fall.forgetting.value, std::log(1.5), 1e-15);

  const json j = to_json(r);
  EXPECT_EQ(value(j["score"]["ACC"]), 0.625);
  EXPECT_NEAR(value(j["nll_fall"]["BWT"]), std::log(2.0 / 3), 1e-15);
  const std::string svg = nll_fall_heatmap_svg(r);
  EXPECT_NE(svg.find("<svg"), std::string::npos) << svg.substr(0, 80);
  EXPECT_NE(svg.find("3: after_stem"), std::string::npos);
  EXPECT_NE(svg.find("BWT -0.405"), std::string::npos);
  EXPECT_EQ(value(j["score"]["forgetting_per_domain"]["finance"]), 0.375);
  EXPECT_FALSE(j["score"]["forgetting_per_domain"].contains("stem"));  // the last domain is never forgotten
  EXPECT_NE(to_markdown(r).find("| 0.625 | -0.250 | +0.125 | 0.250 |"), std::string::npos) << to_markdown(r);

  // One stage: ACC only.
  const SequentialMetrics one = sequential_metrics({{0.25}, {0.5}});
  EXPECT_EQ(one.acc, 0.5);
  EXPECT_TRUE(std::isnan(one.bwt) && std::isnan(one.fwt) && std::isnan(one.forgetting));
  expect_error([] { sequential_metrics({{0.25, 0.5}, {0.5}}); }, {"row 0 has 2 values", "expected one per stage (1)"});
}

// Per-item results: items are resampled, intervals bracket the value, draws are reproducible.
TEST(EvalItemBootstrap, IntervalsFromPerItemResults) {
  // Documents' NLL sums and token counts; classification gold/pred per item.
  const auto with_items = [](double nll_scale, std::vector<int> pred) {
    json r = report({}, {});
    r["results"] = json::array();
    json ppl = {{"kind", "perplexity"}, {"key", "law"}, {"domain", "law"}, {"primary", "perplexity"}};
    ppl["per_item"] = {{"nll", json::array()}, {"tokens", json::array()}};
    double nll = 0, tokens = 0;
    for (int d = 0; d < 8; ++d) {
      ppl["per_item"]["nll"].push_back(nll_scale * (10 + d));
      ppl["per_item"]["tokens"].push_back(5 + d);
      nll += nll_scale * (10 + d), tokens += 5 + d;
    }
    ppl["figures"]["perplexity"]["value"] = std::exp(nll / tokens);
    r["results"].push_back(ppl);
    const std::vector<int> gold = {0, 1, 0, 1, 0, 1, 0, 1};
    int correct = 0;
    for (size_t i = 0; i < gold.size(); ++i) correct += gold[i] == pred[i];
    r["results"].push_back({{"kind", "multiple_choice"}, {"key", "law/mc"}, {"domain", "law"}, {"method", "loglik"},
                            {"primary", "accuracy"},
                            {"figures", {{"accuracy", {{"value", correct / 8.0}, {"low", 0.0}, {"high", 1.0}}}}},
                            {"per_item", {{"gold", gold}, {"pred", pred}}}});
    r["domain_scores"] = {{"law", {{"score", correct / 8.0}, {"tasks", 1}}}};
    return r;
  };
  const LabelledReport base{"base", with_items(1.0, {1, 1, 1, 1, 0, 0, 0, 0})};    // accuracy 0.5
  const LabelledReport tuned{"tuned", with_items(0.5, {0, 1, 0, 1, 0, 1, 1, 0})};  // accuracy 0.75
  const ItemBootstrap boot({base, tuned}, {200, 7, 0.95});
  ASSERT_TRUE(boot.available()) << boot.reason();
  const Interval gain = boot.interval([](const std::vector<DomainFigures>& f) {
    return (f[0].perplexity.at("law") - f[1].perplexity.at("law")) / f[0].perplexity.at("law");
  });
  EXPECT_GT(gain.value, 0);
  EXPECT_LE(gain.low, gain.value);
  EXPECT_GE(gain.high, gain.value);
  const Interval ds = boot.interval([](const std::vector<DomainFigures>& f) { return f[1].score.at("law") - f[0].score.at("law"); });
  EXPECT_EQ(ds.value, 0.25);
  EXPECT_LT(ds.low, ds.high);
  const ItemBootstrap again({base, tuned}, {200, 7, 0.95});
  EXPECT_EQ(again.interval([](const std::vector<DomainFigures>& f) { return f[1].score.at("law"); }).low,
            boot.interval([](const std::vector<DomainFigures>& f) { return f[1].score.at("law"); }).low);

  // Through the transfer matrix: item-level intervals appear in its JSON.
  const json j = to_json(transfer_matrix(base, {{"law", tuned}}, {200, 7, 0.95}));
  EXPECT_TRUE(j["item_intervals"].get<bool>());
  EXPECT_TRUE(j["rows"][0]["score_delta"]["law"]["low"].is_number()) << j.dump(1);

  // Different items: no intervals, and why.
  LabelledReport other = tuned;
  other.report["results"][1]["per_item"]["gold"][0] = 1;
  const ItemBootstrap mismatch({base, other});
  EXPECT_FALSE(mismatch.available());
  EXPECT_NE(mismatch.reason().find("differ in the items of \"law/mc\""), std::string::npos) << mismatch.reason();
  // Malformed per-item results are errors.
  LabelledReport broken = tuned;
  broken.report["results"][0]["per_item"]["nll"] = "x";
  expect_error([&] { ItemBootstrap({base, broken}); }, {"report tuned", "results[0].per_item.nll", "expected an array"});
}

TEST(EvalMetrics, MalformedReportsAreClearErrors) {
  const LabelledReport good{"base", report({{"law", 10}}, {{"law", 0.5}})};
  const auto broken = [&](const std::function<void(json&)>& edit) {
    LabelledReport r{"m_law", good.report};
    edit(r.report);
    return r;
  };
  expect_error([&] { transfer_matrix(good, {{"law", broken([](json& r) { r.erase("results"); })}}); },
               {"report m_law", "\"results\": expected an array"});
  expect_error(
      [&] {
        transfer_matrix(good, {{"law", broken([](json& r) { r["results"][0]["figures"]["perplexity"]["value"] = "7"; })}});
      },
      {"report m_law: results[0].figures.perplexity.value", "expected a number, got string"});
  expect_error([&] { transfer_matrix(good, {{"law", broken([](json& r) { r["results"][0].erase("kind"); })}}); },
               {"report m_law: results[0]", "\"kind\""});
  expect_error(
      [&] { sequential_report(good, {{"law", broken([](json& r) { r["domain_scores"]["law"].erase("score"); })}}); },
      {"report m_law: domain_scores.law.score", "missing"});
  expect_error([&] { sequential_report(good, {{"law", broken([](json& r) { r["domain_scores"] = 3; })}}); },
               {"report m_law: domain_scores", "expected an object"});
  expect_error([&] { transfer_matrix(good, {}); }, {"at least one adapted model"});
}

// The trade-off plane by hand. Points (gain, rise): a (0.2, 0.10), b (0.4, 0.30), c (0.3, 0.35)
// dominated by b, d (0.1, 0.20) dominated by a, e with a NaN left out.
TEST(EvalPareto, FrontierAndPositionByHand) {
  const std::vector<TradeoffPoint> pts = {{0.2, 0.10}, {0.4, 0.30}, {0.3, 0.35}, {0.1, 0.20}, {NAN, 0.0}};
  EXPECT_EQ(pareto_front(pts), (std::vector<size_t>{0, 1}));
  const std::vector<TradeoffPoint> others = {pts[0], pts[1], pts[2], pts[3]};
  // The line through the base (0, 0), a and b.
  EXPECT_NEAR(frontier_rise(others, 0.1), 0.05, 1e-12);
  EXPECT_NEAR(frontier_rise(others, 0.3), 0.20, 1e-12);
  EXPECT_NEAR(frontier_rise(others, 0.4), 0.30, 1e-12);
  EXPECT_TRUE(std::isnan(frontier_rise(others, 0.41)));  // past the others' largest gain
  EXPECT_EQ(frontier_rise(others, -0.1), 0.0);             // the base reaches any lower gain

  const FrontierPosition below = frontier_position({0.3, 0.08}, others);
  EXPECT_NEAR(below.frontier_rise, 0.20, 1e-12);
  EXPECT_NEAR(below.rise_ratio, 0.4, 1e-12);
  EXPECT_TRUE(below.beyond);
  const FrontierPosition above = frontier_position({0.3, 0.25}, others);
  EXPECT_FALSE(above.beyond);
  EXPECT_NEAR(above.rise_ratio, 1.25, 1e-12);
  // Past the others' largest gain: beyond unless one of them dominates it (none can).
  const FrontierPosition far = frontier_position({0.5, 0.9}, others);
  EXPECT_TRUE(std::isnan(far.rise_ratio));
  EXPECT_TRUE(far.beyond);
  // A point some other point dominates is not beyond, even where the line is undefined.
  EXPECT_FALSE(frontier_position({0.4, 0.31}, others).beyond);
  EXPECT_FALSE(frontier_position({0.2, 0.10}, others).beyond);  // on the frontier: not below it
}

// An undefined figure on any resample makes the interval undefined: resamples are never dropped.
TEST(EvalBootstrap, UndefinedOnAResampleLeavesNoInterval) {
  const std::vector<double> x = {1, 2, 3, 4, 5, 6};
  BootstrapOptions o;
  o.resamples = 200;
  // Undefined when the resample lacks item 0 (about a third of the resamples).
  const Interval i = bootstrap(x.size(), [&](const std::vector<size_t>& idx) {
    double s = 0;
    bool has0 = false;
    for (size_t k : idx) s += x[k], has0 = has0 || k == 0;
    return has0 ? s : NAN;
  }, o);
  EXPECT_EQ(i.value, 21.0);
  EXPECT_TRUE(std::isnan(i.low));
  EXPECT_TRUE(std::isnan(i.high));
  const Interval defined = bootstrap(x.size(), [&](const std::vector<size_t>& idx) {
    double s = 0;
    for (size_t k : idx) s += x[k];
    return s;
  }, o);
  EXPECT_LT(defined.low, defined.high);
}

// One model for two domains against the per-domain oracles (eval/multi_domain.h):
// base:          PPL law 100, finance 100, general_probe 50, general 40
// oracle law:    law 50 (fall ln 2)          oracle finance: finance 25 (fall ln 4)
// joint:         law 100 / 2^0.9 (fall 0.9 ln 2, share 0.9), finance 50 (fall ln 2, share 0.5),
//                probe 50.5 (rise ln 1.01, +1% PPL), general 40 (rise 0)
//   mean fall = (0.9 ln 2 + ln 2) / 2 = 0.95 ln 2; lowest share 0.5
// flat:          no fall on law; finance 200 -> share -0.5; with a useless law oracle every
//                share of law is undefined (n/a), and so is the lowest share
TEST(EvalMultiDomain, OracleSharesAndProbeRiseByHand) {
  const auto m = [](const std::map<std::string, double>& ppl) { return report(ppl, {}); };
  const LabelledReport base{"base", m({{"law", 100}, {"finance", 100}, {"general_probe", 50}, {"general", 40}})};
  const LabelledReport o_law{"ft_law", m({{"law", 50}, {"finance", 110}, {"general_probe", 55}, {"general", 44}})};
  const LabelledReport o_fin{"ft_finance", m({{"law", 120}, {"finance", 25}, {"general_probe", 60}, {"general", 48}})};
  const LabelledReport joint{"joint", m({{"law", 100 / std::pow(2.0, 0.9)}, {"finance", 50}, {"general_probe", 50.5}, {"general", 40}})};
  const LabelledReport flat{"flat", m({{"law", 100}, {"finance", 200}, {"general_probe", 50}, {"general", 40}})};
  const MultiDomainReport r = multi_domain_report(base, {"law", "finance"}, {o_law, o_fin}, {joint, flat});
  ASSERT_EQ(r.models.size(), 2u);
  const MultiDomainRow& j = r.models[0];
  EXPECT_NEAR(j.fall[0].value, 0.9 * std::log(2.0), 1e-12);
  EXPECT_NEAR(j.oracle_share[0].value, 0.9, 1e-12);
  EXPECT_NEAR(j.oracle_share[1].value, 0.5, 1e-12);
  EXPECT_NEAR(j.mean_fall.value, 0.95 * std::log(2.0), 1e-12);
  EXPECT_NEAR(j.min_oracle_share.value, 0.5, 1e-12);
  EXPECT_NEAR(j.mean_oracle_share.value, 0.7, 1e-12);
  EXPECT_NEAR(j.probe_rise.value, std::log(1.01), 1e-12);
  EXPECT_NEAR(j.probe_ppl_change.value, 0.01, 1e-12);
  EXPECT_EQ(j.general_rise.value, 0.0);
  EXPECT_NEAR(r.models[1].oracle_share[1].value, -0.5, 1e-12);
  EXPECT_NEAR(r.oracle[1].fall[1].value, std::log(4.0), 1e-12);
  const std::string md = to_markdown(r);
  EXPECT_NE(md.find("| joint | 0.624 | 0.693 | 0.658 | +0.0100 | +1.00% | +0.0000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| joint | 90% | 50% | 70% | 50% |"), std::string::npos) << md;
  const json js = to_json(r);
  EXPECT_NEAR(value(js["models"][0]["oracle_share"]["law"]), 0.9, 1e-12);
  const std::string svg = oracle_share_heatmap_svg(r);
  EXPECT_NE(svg.find(">+90.0%<"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">-50.0%<"), std::string::npos) << svg;
  EXPECT_FALSE(js["models"][0].contains("routed_to_own_expert"));  // no routing in these reports
  // Trade-off: joint (0.658 fall, +0.0100 probe) against flat's frontier: flat lowers the mean
  // (fall (0 - log 2) / 2 < 0), so joint lies past the others' largest fall, undominated.
  EXPECT_TRUE(js["models"][0]["tradeoff"]["beyond_others_frontier"].get<bool>());
  EXPECT_FALSE(js["models"][1]["tradeoff"]["beyond_others_frontier"].get<bool>());
  EXPECT_NE(md.find("| joint | joint | 0.658 | +0.0100 |"), std::string::npos) << md;
  {
    // One method's sweep ("METHOD @ SETTING") is never its own frontier: "gem @ b=1" is judged
    // against "mix" alone. mix: fall 0.658 at probe rise +0.0100; gem @ b=1 at half the fall and
    // a quarter of the rise: the frontier (base to mix) gives +0.0050 there, ratio 0.5, beyond.
    const double half = 100 / std::pow(2.0, 0.45), probe_q = 50 * std::pow(1.01, 0.25);
    const LabelledReport mix{"mix", joint.report};
    const LabelledReport g1{"gem @ b=1", m({{"law", half}, {"finance", 100 / std::pow(2.0, 0.5)}, {"general_probe", probe_q}, {"general", 40}})};
    const LabelledReport g0{"gem @ b=0", joint.report};
    const MultiDomainReport t = multi_domain_report(base, {"law", "finance"}, {o_law, o_fin}, {mix, g0, g1});
    const std::vector<MultiDomainTradeoff> to = multi_domain_tradeoffs(t);
    EXPECT_EQ(to[2].method, "gem");
    EXPECT_NEAR(to[2].position.frontier_rise, std::log(1.01) / 2, 1e-9);
    EXPECT_NEAR(to[2].position.rise_ratio, 0.5, 1e-9);
    EXPECT_TRUE(to[2].position.beyond);
    EXPECT_FALSE(to[1].position.beyond);  // the same point as mix: not below it
    EXPECT_NE(multi_domain_tradeoff_svg(t).find("gem (sweep)"), std::string::npos);
  }
  EXPECT_EQ(md.find("Routing:"), std::string::npos);

  // A routed model: the first-choice loads of its perplexity results (as `gemkit eval` writes them).
  LabelledReport routed = joint;
  routed.label = "routed";
  for (auto& result : routed.report["results"]) {
    const std::string key = result["key"];
    if (key == "law") result["stats"] = {{"scar/load/law", 0.875}, {"scar/load/general", 0.125}};
    if (key == "general_probe") result["stats"] = {{"scar/load/general", 0.9375}, {"scar/load/law", 0.0625}};
  }
  const MultiDomainReport rr = multi_domain_report(base, {"law", "finance"}, {o_law, o_fin}, {joint, routed});
  EXPECT_FALSE(rr.models[0].routed());
  ASSERT_TRUE(rr.models[1].routed());
  EXPECT_EQ(rr.models[1].routed_to_own[0], 0.875);
  EXPECT_TRUE(std::isnan(rr.models[1].routed_to_own[1]));  // finance has no routing figures here
  EXPECT_EQ(rr.models[1].probe_to_general, 0.9375);
  EXPECT_NE(to_markdown(rr).find("| routed | 87.5% | n/a | 93.8% |"), std::string::npos) << to_markdown(rr);
  EXPECT_EQ(to_json(rr)["models"][1]["probe_routed_to_general"].get<double>(), 0.9375);

  // A law oracle that did not improve law: its shares are undefined, never divided by <= 0; the
  // mean and the lowest share are taken over the other domains.
  const LabelledReport useless{"ft_law", m({{"law", 100}, {"finance", 100}, {"general_probe", 50}, {"general", 40}})};
  const MultiDomainReport u = multi_domain_report(base, {"law", "finance"}, {useless, o_fin}, {joint});
  EXPECT_TRUE(std::isnan(u.models[0].oracle_share[0].value));
  EXPECT_NEAR(u.models[0].min_oracle_share.value, 0.5, 1e-12);
  EXPECT_NE(to_markdown(u).find("| joint | n/a | 50% | 50% | 50% |"), std::string::npos) << to_markdown(u);
  EXPECT_EQ(u.unjudged, std::vector<std::string>{"law"});
  // Nor by a fall below 0.01 nats: a near-zero divisor would make the share noise.
  const LabelledReport tiny{"ft_law", m({{"law", 100 * std::exp(-0.009)}, {"finance", 100}, {"general_probe", 50}, {"general", 40}})};
  EXPECT_TRUE(std::isnan(multi_domain_report(base, {"law", "finance"}, {tiny, o_fin}, {joint}).models[0].oracle_share[0].value));

  expect_error([&] { multi_domain_report(base, {"law", "finance"}, {o_law}, {joint}); },
               {"one oracle report per domain (2), got 1"});
  expect_error([&] { multi_domain_report(base, {"law", "stem"}, {o_law, o_fin}, {joint}); },
               {"report base", "no perplexity for domain 'stem'"});
}

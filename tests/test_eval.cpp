// Evaluation: bootstrap intervals, macro-F1, task/corpus readers and their errors, and the
// model scores (perplexity, multiple choice, label words, classification head) against direct
// forward passes computed here independently; batching must not change scores; the SVG plot
// must be well-formed XML; one end-to-end run on data/mini.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/file_io.h"
#include "core/sha256.h"
#include "data/prepare.h"
#include "data/token_shards.h"
#include "eval/bootstrap.h"
#include "eval/classification.h"
#include "eval/evaluate.h"
#include "eval/metrics.h"
#include "eval/multiple_choice.h"
#include "eval/perplexity.h"
#include "eval/scorer.h"
#include "eval/shard_corpus.h"
#include "eval/tasks.h"
#include "model/checkpoint.h"
#include "report/eval_report.h"
#include "report/run_metrics.h"
#include "report/svg_plot.h"
#include "routing/gem_modules.h"
#include "tests/scar_test_util.h"
#include "tests/test_util.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_train.h"

namespace fs = std::filesystem;
using namespace gemkit;
using namespace gemkit::eval;

namespace {

std::string work_dir() {
  static const std::string dir = [] {
    const fs::path d = fs::temp_directory_path() / ("gemkit_test_eval_" + std::to_string(getpid()));
    fs::create_directories(d);
    return d.string();
  }();
  return dir;
}

struct Cleanup {
  ~Cleanup() { fs::remove_all(work_dir()); }
} cleanup;

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

// A small SentencePiece BPE tokenizer trained once on the bundled Moby-Dick text.
const std::string& tokenizer_dir() {
  static const std::string dir = [] {
    const std::string d = work_dir() + "/tok";
    fs::create_directories(d);
    SentencePieceTrainOptions o;
    o.input_files = {std::string(GEMKIT_SOURCE_DIR) + "/data/mini/general/moby_dick.txt"};
    o.model_prefix = d + "/tokenizer";
    o.vocab_size = 400;
    o.model_type = "bpe";
    o.num_threads = 1;
    train_sentencepiece(o);
    return d;
  }();
  return dir;
}

ModelConfig decoder_config(int64_t vocab, Head head = Head::CausalLM) {
  ModelConfig c;
  c.family = Family::Decoder;
  c.head = head;
  c.architecture = head == Head::CausalLM ? "LlamaForCausalLM" : "LlamaForSequenceClassification";
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = true;
  c.num_labels = 3;
  return c;
}

Transformer tiny_model(int64_t vocab, torch::Dtype dtype, Head head = Head::CausalLM, uint64_t seed = 7) {
  torch::manual_seed(seed);
  Transformer m(decoder_config(vocab, head));
  m->to(dtype);
  m->eval();
  return m;
}

// Summed log p(continuation | context) by one unbatched forward of the concatenation.
double direct_logprob(Transformer& m, const ScoreRequest& r) {
  torch::NoGradGuard ng;
  std::vector<int64_t> ids(r.context.begin(), r.context.end());
  ids.insert(ids.end(), r.continuation.begin(), r.continuation.end());
  auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
  auto lp = m->forward(input).logits.to(torch::kDouble).log_softmax(-1)[0];
  double s = 0;
  for (size_t t = r.context.size(); t < ids.size(); ++t) s += lp[int64_t(t - 1)][ids[t]].item<double>();
  return s;
}

std::vector<int32_t> random_ids(std::mt19937& rng, size_t n, int32_t vocab) {
  std::vector<int32_t> v(n);
  for (auto& x : v) x = int32_t(rng() % uint32_t(vocab));
  return v;
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL() << "no error";
  } catch (const Error& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Torch-free figures.

TEST(Bootstrap, IntervalCoversTrueMeanAndIsDeterministic) {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal(3.0, 2.0);
  std::vector<double> x(400);
  for (double& v : x) v = normal(rng);
  BootstrapOptions o;
  const Interval a = bootstrap_mean(x, o), b = bootstrap_mean(x, o);
  EXPECT_EQ(a.value, b.value);
  EXPECT_EQ(a.low, b.low);
  EXPECT_EQ(a.high, b.high);
  EXPECT_LT(a.low, 3.0);
  EXPECT_GT(a.high, 3.0);
  EXPECT_LT(a.low, a.value);
  EXPECT_GT(a.high, a.value);
  // Width near the normal theory: 2 * 1.96 * sd / sqrt(n) = 0.392.
  EXPECT_NEAR(a.high - a.low, 2 * 1.96 * 2.0 / 20.0, 0.06);
  o.seed = 99;
  const Interval c = bootstrap_mean(x, o);
  EXPECT_EQ(c.value, a.value);
  EXPECT_NE(c.low, a.low);
}

TEST(Bootstrap, CoverageOnRepeatedSamples) {
  // Of 60 independent samples of Bernoulli(0.3), the 95% interval should miss 0.3 rarely.
  std::mt19937_64 rng(5);
  std::bernoulli_distribution coin(0.3);
  int covered = 0;
  BootstrapOptions o;
  o.resamples = 300;
  for (int rep = 0; rep < 60; ++rep) {
    std::vector<double> x(200);
    for (double& v : x) v = coin(rng) ? 1.0 : 0.0;
    const Interval ci = bootstrap_mean(x, o);
    covered += ci.low <= 0.3 && 0.3 <= ci.high;
  }
  EXPECT_GE(covered, 52);  // expected ~57
}

TEST(Metrics, MacroF1ByHand) {
  // gold 0 0 1 1 2 2, pred 0 1 1 1 2 0:
  // class 0: TP1 FP1 FN1 -> 2/4 = 0.5; class 1: TP2 FP1 FN0 -> 4/5 = 0.8; class 2: TP1 FP0 FN1 -> 2/3.
  const std::vector<int32_t> gold{0, 0, 1, 1, 2, 2}, pred{0, 1, 1, 1, 2, 0};
  EXPECT_NEAR(macro_f1(gold, pred, 3), (0.5 + 0.8 + 2.0 / 3.0) / 3.0, 1e-12);
  EXPECT_NEAR(accuracy(gold, pred), 4.0 / 6.0, 1e-12);
  // A class absent from gold and predictions counts 0 (zero_division=0 over the label list).
  EXPECT_NEAR(macro_f1({0, 0, 1}, {0, 0, 1}, 3), 2.0 / 3.0, 1e-12);
  // Always predicting the majority class of gold 0 0 0 1: class 0 F1 = 6/7, class 1 F1 = 0.
  EXPECT_NEAR(macro_f1({0, 0, 0, 1}, {0, 0, 0, 0}, 2), 3.0 / 7.0, 1e-12);
  // A prediction outside the label list (-1) is wrong and adds no false positive.
  EXPECT_NEAR(macro_f1({0, 1}, {-1, 1}, 2), (0.0 + 1.0) / 2.0, 1e-12);
  // On a bootstrap sample with repeats.
  EXPECT_NEAR(macro_f1(gold, pred, 3, {2, 2, 3}), (0.0 + 1.0 + 0.0) / 3.0, 1e-12);
}

// ---------------------------------------------------------------------------------------------
// Readers.

TEST(Tasks, ReadsTheMiniSuite) {
  const std::vector<Task> tasks = load_tasks(std::string(GEMKIT_SOURCE_DIR) + "/data/mini", "test", 5);
  ASSERT_GE(tasks.size(), 10u);
  bool saw_mc = false, saw_cls = false;
  for (const Task& t : tasks) {
    EXPECT_EQ(t.items.size(), 5u) << t.key;
    EXPECT_FALSE(t.baselines.is_null()) << t.key;
    if (t.key == "law/spdx_osi") {
      saw_cls = true;
      EXPECT_EQ(t.labels, (std::vector<std::string>{"not-osi-approved", "osi-approved"}));
      EXPECT_EQ(t.metric, "macro_f1");
    }
    if (t.key == "law/licence_name_mc") {
      saw_mc = true;
      EXPECT_EQ(t.type, TaskType::MultipleChoice);
      EXPECT_EQ(t.items[0].choices.size(), 4u);
    }
  }
  EXPECT_TRUE(saw_mc && saw_cls);
  // A single file finds its header in the domain manifest.
  const auto one = load_tasks(std::string(GEMKIT_SOURCE_DIR) + "/data/mini/law/tasks/spdx_osi.test.jsonl", "test");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].key, "law/spdx_osi");
  EXPECT_EQ(one[0].labels.size(), 2u);
  const auto corpora = load_corpora(std::string(GEMKIT_SOURCE_DIR) + "/data/mini", "validation");
  EXPECT_EQ(corpora.size(), 8u);
}

TEST(Tasks, MalformedFilesNameFileLineAndField) {
  const std::string d = work_dir() + "/bad/tasks";
  auto path = [&](const std::string& name) { return d + "/" + name + ".test.jsonl"; };
  write(path("a"), "{\"id\":\"1\",\"context\":\"q\",\"choices\":[\"x\",\"y\"],\"answer\":0}\n"
                   "{\"id\":\"2\",\"context\":\"q\",\"choices\":[\"x\",\"y\"],\"answer\":2}\n");
  expect_error([&] { read_task_file(path("a")); }, {path("a") + ":2", "\"answer\"", "outside 0..1"});
  write(path("b"), "{\"id\":\"1\",\"context\":\"q\",\"choices\":[\"x\",\"y\"],\"answer\":0}\n{not json\n");
  expect_error([&] { read_task_file(path("b")); }, {path("b") + ":2", "not valid JSON"});
  write(path("c"), "{\"id\":\"1\",\"text\":\"t\",\"label\":\"p\"}\n{\"id\":\"2\",\"label\":\"q\"}\n");
  expect_error([&] { read_task_file(path("c")); }, {path("c") + ":2", "missing field \"text\""});
  write(path("d"), "{\"id\":\"1\",\"text\":\"t\",\"label\":\"p\"}\n{\"id\":\"2\",\"text\":\"u\",\"label\":\"z\"}\n");
  expect_error([&] { read_task_file(path("d"), {{"type", "classification"}, {"labels", {"p", "q"}}}); },
               {path("d") + ":2", "\"label\"", "\"z\""});
  write(path("e"), "{\"id\":\"0\",\"text\":\"t\",\"label\":\"q\"}\n{\"id\":1,\"text\":\"t\",\"label\":\"p\"}\n");
  expect_error([&] { read_task_file(path("e")); }, {path("e") + ":2", "\"id\" must be a string"});
  write(path("f"), "");
  expect_error([&] { read_task_file(path("f")); }, {path("f"), "no task items"});
  expect_error([&] { load_tasks(d + "/missing.test.jsonl", "test"); }, {"missing.test.jsonl", "does not exist"});
  expect_error([&] { load_tasks(work_dir(), "test"); }, {"no manifest.json"});
}

// ---------------------------------------------------------------------------------------------
// Scores against direct forward passes.

TEST(Scorer, BatchingAndPaddingDoNotChangeScores) {
  std::mt19937 rng(3);
  std::vector<ScoreRequest> reqs;
  for (int i = 0; i < 13; ++i)
    reqs.push_back({random_ids(rng, 1 + rng() % 20, 50), random_ids(rng, 1 + rng() % 8, 50)});
  for (torch::Dtype dtype : {torch::kDouble, torch::kFloat}) {
    Transformer m = tiny_model(50, dtype);
    const auto one = Scorer(m, 1, 64).score(reqs);
    const auto eight = Scorer(m, 8, 64).score(reqs);
    const double tol = dtype == torch::kDouble ? 1e-10 : 1e-5;
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(one[i].tokens, int64_t(reqs[i].continuation.size()));
      // fp32: relative to the magnitude of the summed log-likelihood (~4 per token).
      EXPECT_NEAR(one[i].logprob, eight[i].logprob, tol * std::max(1.0, std::fabs(one[i].logprob))) << i;
      EXPECT_NEAR(one[i].logprob, direct_logprob(m, reqs[i]), tol * std::max(1.0, std::fabs(one[i].logprob))) << i;
    }
  }
}

// Requests that share a context (the labels of one prompt, the choices of one question) are
// scored from one pass over it through the KV cache; the scores are those of the whole rows, for
// a plain model and for one routed by DTR (threshold rule) and SCAR, with some contexts cut on
// the left (max_length 24, contexts up to 32 tokens).
TEST(Scorer, SharedContextsScoreAsWholeRows) {
  std::mt19937 rng(5);
  std::vector<ScoreRequest> reqs;
  for (int c = 0; c < 4; ++c) {
    const auto context = random_ids(rng, 3 + rng() % 30, 50);
    for (int k = 0; k < 5; ++k) reqs.push_back({context, random_ids(rng, 1 + rng() % 6, 50)});
  }
  reqs.push_back({random_ids(rng, 7, 50), random_ids(rng, 3, 50)});  // a context of its own
  const auto check = [&](Transformer& m, double tol, const std::string& what) {
    Scorer shared(m, 3, 24), whole(m, 3, 24);
    whole.set_prefix_sharing(false);
    const auto a = shared.score(reqs), b = whole.score(reqs);
    int cut = 0;
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(a[i].tokens, int64_t(reqs[i].continuation.size())) << what << i;
      EXPECT_EQ(a[i].truncated, b[i].truncated) << what << i;
      EXPECT_NEAR(a[i].logprob, b[i].logprob, tol * std::max(1.0, std::fabs(b[i].logprob))) << what << i;
      cut += a[i].truncated;
    }
    EXPECT_GT(cut, 0) << what;  // the truncation path is covered
    return a;
  };
  Transformer plain = tiny_model(50, torch::kDouble);
  check(plain, 1e-10, "plain ");

  torch::manual_seed(4);
  Transformer routed(test::tiny_decoder_config(3));
  GemModules gem(routed, test::scar_and_dtr_on_block_1());
  test::randomise_routing(gem);
  routed->eval();
  const auto routed_scores = check(routed, 1e-5, "routed ");
  const auto figures = gem.metrics();
  EXPECT_GT(figures.at("dtr/realised_capacity"), 0.0);  // the router skipped some tokens
  EXPECT_LT(figures.at("dtr/realised_capacity"), 1.0);
  EXPECT_GT(figures.at("scar/experts_per_token"), 1.0);

  // DTR's top-k rule looks at the whole row, so a shared context would change the scores: this
  // is why evaluation turns sharing off for it (and shows that sharing really happened above).
  for (auto& r : (*gem.dtr())->routers()) r->set_top_k_at_inference(true);
  Scorer shared(routed, 3, 24), whole(routed, 3, 24);
  whole.set_prefix_sharing(false);
  const auto a = shared.score(reqs), b = whole.score(reqs);
  double largest = 0;
  for (size_t i = 0; i < reqs.size(); ++i) largest = std::max(largest, std::fabs(a[i].logprob - b[i].logprob));
  EXPECT_GT(largest, 1e-3);
}

TEST(Scorer, LongRequestsLoseContextOnTheLeft) {
  Transformer m = tiny_model(50, torch::kDouble);
  std::mt19937 rng(4);
  ScoreRequest r{random_ids(rng, 30, 50), random_ids(rng, 5, 50)};
  const auto s = Scorer(m, 2, 16).score({r});
  ScoreRequest cut{std::vector<int32_t>(r.context.end() - 11, r.context.end()), r.continuation};
  EXPECT_TRUE(s[0].truncated);
  EXPECT_NEAR(s[0].logprob, direct_logprob(m, cut), 1e-10);
}

TEST(Perplexity, EqualsExpOfMeanNllOfADirectForward) {
  Transformer m = tiny_model(50, torch::kDouble);
  std::mt19937 rng(5);
  const std::vector<int32_t> doc = random_ids(rng, 40, 50);
  Scorer scorer(m, 4, 64);
  const auto nll = document_nlls(scorer, {doc}, 64, "test");
  // Direct: one forward of the whole document, every token but the first scored.
  torch::NoGradGuard ng;
  auto ids = torch::tensor(std::vector<int64_t>(doc.begin(), doc.end())).unsqueeze(0);
  auto lp = m->forward(ids).logits.log_softmax(-1)[0];
  double sum = 0;
  for (size_t t = 1; t < doc.size(); ++t) sum -= lp[int64_t(t - 1)][doc[t]].item<double>();
  ASSERT_EQ(nll[0].tokens, 39);
  EXPECT_NEAR(nll[0].nll, sum, 1e-9);
  EXPECT_NEAR(perplexity_of(nll, {0}), std::exp(sum / 39), 1e-9);

  // Rows of 16 overlap by one token: every token but the first scored exactly once.
  const auto rows = document_windows(doc, 16);
  ASSERT_EQ(rows.size(), 3u);  // 1 + 15 + 15 + 9 scored
  size_t scored = 0;
  for (const auto& r : rows) {
    EXPECT_EQ(r.context.size(), 1u);
    EXPECT_LE(r.context.size() + r.continuation.size(), 16u);
    scored += r.continuation.size();
  }
  EXPECT_EQ(scored, 39u);
  EXPECT_EQ(rows[1].context[0], doc[15]);
  EXPECT_EQ(document_nlls(scorer, {doc}, 16, "test")[0].tokens, 39);
  // Documents never share a row: two documents score as each alone.
  const std::vector<int32_t> doc2 = random_ids(rng, 7, 50);
  const auto both = document_nlls(scorer, {doc, doc2}, 64, "test");
  EXPECT_NEAR(both[0].nll, nll[0].nll, 1e-9);
  EXPECT_NEAR(both[1].nll, document_nlls(scorer, {doc2}, 64, "test")[0].nll, 1e-9);
}

// A chat example's answers (a shard's loss mask) are scored given everything before them, and
// nothing else: with a window as long as the document, exactly the masked tokens' NLL in one
// direct forward. Shorter windows split a long answer, every masked token scored once, each
// window's context as much of what precedes as fits.
TEST(Perplexity, AnswersOnlyWhereMasked) {
  Transformer m = tiny_model(50, torch::kDouble);
  std::mt19937 rng(6);
  const std::vector<int32_t> doc = random_ids(rng, 40, 50);
  std::vector<uint8_t> mask(40, 0);
  mask[0] = 1;                                   // no context: never scored
  for (size_t t = 8; t < 12; ++t) mask[t] = 1;   // a short answer
  for (size_t t = 18; t < 40; ++t) mask[t] = 1;  // a long one (22 tokens)
  Scorer scorer(m, 4, 64);
  const auto nll = document_nlls(scorer, {doc}, 64, "test", {mask});
  torch::NoGradGuard ng;
  auto lp = m->forward(torch::tensor(std::vector<int64_t>(doc.begin(), doc.end())).unsqueeze(0)).logits.log_softmax(-1)[0];
  double sum = 0;
  for (size_t t = 1; t < doc.size(); ++t)
    if (mask[t]) sum -= lp[int64_t(t - 1)][doc[t]].item<double>();
  ASSERT_EQ(nll[0].tokens, 26);
  EXPECT_NEAR(nll[0].nll, sum, 1e-9);

  const auto rows = document_windows(doc, 16, mask);  // 4, then 15 + 7 of the long answer
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].context, std::vector<int32_t>(doc.begin(), doc.begin() + 8));
  EXPECT_EQ(rows[0].continuation, std::vector<int32_t>(doc.begin() + 8, doc.begin() + 12));
  EXPECT_EQ(rows[1].context, std::vector<int32_t>(doc.begin() + 17, doc.begin() + 18));
  EXPECT_EQ(rows[1].continuation.size(), 15u);
  EXPECT_EQ(rows[2].context, std::vector<int32_t>(doc.begin() + 24, doc.begin() + 33));
  EXPECT_EQ(rows[2].continuation, std::vector<int32_t>(doc.begin() + 33, doc.end()));
  EXPECT_EQ(document_nlls(scorer, {doc}, 16, "test", {mask})[0].tokens, 26);

  // A document without a mask beside it scores every token, as before.
  const auto mixed = document_nlls(scorer, {doc, doc}, 64, "test", {mask, {}});
  EXPECT_NEAR(mixed[0].nll, nll[0].nll, 1e-9);
  EXPECT_NEAR(mixed[1].nll, document_nlls(scorer, {doc}, 64, "test")[0].nll, 1e-9);
  EXPECT_EQ(mixed[1].tokens, 39);
  const std::string e = gemkit::test::error_of([&] { document_windows(doc, 16, std::vector<uint8_t>(39, 1)); });
  EXPECT_NE(e.find("a loss mask of 39 entries for a document of 40 tokens"), std::string::npos) << e;
}

// The method names what was scored: "answer_nll" only when a document that was kept under the
// token budget has a mask; a budget that stops before the chat examples scores every token.
TEST(Perplexity, MethodNamesTheDocumentsKeptUnderTheBudget) {
  Transformer m = tiny_model(50, torch::kDouble);
  Scorer scorer(m, 4, 64);
  const auto tok = load_tokenizer(tokenizer_dir() + "/tokenizer.model");
  std::mt19937 rng(7);
  eval::Corpus corpus;
  corpus.domain = "law";
  corpus.tokenizer_hash = "ids";  // documents given as ids, as a token shard's
  corpus.documents.resize(2);
  corpus.documents[0].ids = random_ids(rng, 20, 50);
  corpus.documents[1].ids = random_ids(rng, 20, 50);
  corpus.documents[1].scored.assign(20, 0);
  for (size_t t = 10; t < 20; ++t) corpus.documents[1].scored[t] = 1;
  BootstrapOptions boot;
  boot.resamples = 10;
  const eval::Result all = evaluate_perplexity(scorer, *tok, corpus, 64, boot, 0);
  EXPECT_EQ(all.method, "answer_nll");
  EXPECT_EQ(all.stats.at("tokens"), 19 + 10);
  const eval::Result first = evaluate_perplexity(scorer, *tok, corpus, 64, boot, 10);
  EXPECT_EQ(first.items, 1);
  EXPECT_EQ(first.method, "token_nll");
  EXPECT_EQ(first.stats.at("tokens"), 19);
}

// A per-domain JSONL corpus of the mini suite's first documents (cut short, to stay quick).
static std::string short_corpus(const std::string& domain, size_t docs) {
  std::string out;
  for_each_jsonl(std::string(GEMKIT_SOURCE_DIR) + "/data/mini/" + domain + "/test.jsonl",
                 [&](const nlohmann::json& j, int64_t line) {
                   if (size_t(line) > docs) return;
                   nlohmann::json r = j;
                   r["text"] = j["text"].get<std::string>().substr(0, 150 + 40 * size_t(line));
                   out += r.dump() + "\n";
                 });
  const std::string path = work_dir() + "/shard_corpus/" + domain + "/test.jsonl";
  write(path, out);
  return path;
}

TEST(Perplexity, TokenShardScoresAsTheJsonlOfTheSameDocuments) {
  const std::string model_dir = work_dir() + "/shard_model";
  Transformer m = tiny_model(load_tokenizer(tokenizer_dir() + "/tokenizer.model")->vocab_size(), torch::kFloat);
  SaveOptions so;
  so.tokenizer_source = tokenizer_dir();
  save_pretrained(m, {}, model_dir, so);
  const std::string general = short_corpus("general", 5), law = short_corpus("law", 4);
  PrepareOptions po;
  po.tokenizer = model_dir;
  po.out = work_dir() + "/shard_corpus/test.h5";
  po.inputs = {general, law};
  po.split = "test";
  po.progress = false;
  prepare_token_shard(po);

  EvalOptions o;
  o.model_path = model_dir;
  o.seq_len = 48;  // documents span several windows
  o.batch_size = 3;
  o.bootstrap.resamples = 50;
  o.corpus = general + "," + law;
  const Report text = run_evaluation(o);
  o.corpus = po.out;
  const Report shard = run_evaluation(o);
  ASSERT_EQ(text.results.size(), 2u);
  ASSERT_EQ(shard.results.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const Result &t = text.results[i], &s = shard.results[i];
    EXPECT_EQ(s.domain, t.domain);
    EXPECT_EQ(s.items, t.items);
    EXPECT_EQ(s.stats.at("tokens"), t.stats.at("tokens"));
    const double pt = t.figure("perplexity")->ci.value, ps = s.figure("perplexity")->ci.value;
    EXPECT_NEAR(ps, pt, 1e-9 * pt) << t.domain;
    // Bits per byte needs the text: the JSONL has it (NLL in bits over UTF-8 bytes), the shard not.
    ASSERT_NE(t.figure("bits_per_byte"), nullptr);
    EXPECT_NEAR(t.figure("bits_per_byte")->ci.value,
                t.stats.at("mean_nll") * t.stats.at("tokens") / (t.stats.at("bytes") * std::log(2.0)), 1e-12);
    EXPECT_EQ(s.figure("bits_per_byte"), nullptr);
    EXPECT_EQ(s.stats.at("bytes"), 0);
  }
  // Framing as the loader's: Llama-style bos + text + eos, so the eos is scored too.
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(model_dir);
  const auto corpora = load_corpora(po.out, "test", 0, model_dir);
  ASSERT_EQ(corpora.size(), 2u);
  const std::string first_text = read_corpus_file(general).documents[0].text;
  std::vector<int32_t> expected = tok->encode(first_text, /*add_special=*/false);
  if (tok->special().add_bos) expected.insert(expected.begin(), tok->special().bos);
  expected.push_back(tok->special().eos);
  EXPECT_EQ(corpora[0].documents[0].ids, expected);
  EXPECT_EQ(load_corpora(po.out, "test", 2, model_dir)[1].documents.size(), 2u);  // max_documents per domain

  // max_tokens: whole documents in file order until the budget is reached, per corpus: a budget
  // just above the first document (its framed ids are at most one more than its scored tokens)
  // scores exactly the first two documents.
  o.corpus = general;
  const Report all = run_evaluation(o);
  std::vector<double> doc_tokens;
  for (const auto& t : all.results[0].per_item["tokens"]) doc_tokens.push_back(t.get<double>());
  ASSERT_GE(doc_tokens.size(), 3u);
  o.max_tokens = int64_t(doc_tokens[0]) + 2;
  const Report capped = run_evaluation(o);
  EXPECT_EQ(capped.results[0].items, 2);
  EXPECT_EQ(capped.results[0].stats.at("tokens"), doc_tokens[0] + doc_tokens[1]);
  EXPECT_EQ(capped.settings["max_tokens"], o.max_tokens);
}

TEST(Perplexity, TokenShardOfAnotherTokenizerIsRefused) {
  const std::string model_dir = work_dir() + "/shard_model_other";
  Transformer m = tiny_model(load_tokenizer(tokenizer_dir() + "/tokenizer.model")->vocab_size(), torch::kFloat);
  SaveOptions so;
  so.tokenizer_source = tokenizer_dir();
  save_pretrained(m, {}, model_dir, so);
  ShardData d;
  d.info.tokenizer_kind = "sentencepiece-bpe";
  d.info.tokenizer_path = "other/tokenizer.model";
  d.info.tokenizer_hash = "sha256:" + std::string(64, '0');
  d.info.vocab_size = 400;
  d.info.split = "test";
  d.info.domain_names = {"general"};
  d.add_document({5, 6, 7}, 0);
  const std::string shard = work_dir() + "/other_tokenizer.h5";
  write_token_shard(shard, d);
  EvalOptions o;
  o.model_path = model_dir;
  o.corpus = shard;
  const std::string model_hash = "sha256:" + sha256_file(tokenizer_identity_file(model_dir));
  expect_error([&] { run_evaluation(o); },
               {shard, "other/tokenizer.model", d.info.tokenizer_hash, model_hash, "tokenizer.model"});
}

TEST(MultipleChoice, PicksTheOptionWithTheHighestLogLikelihood) {
  std::unique_ptr<Tokenizer> tok = load_tokenizer(tokenizer_dir() + "/tokenizer.model");
  Transformer m = tiny_model(tok->vocab_size(), torch::kDouble);
  Task task;
  task.key = "t/mc";
  task.type = TaskType::MultipleChoice;
  const std::vector<std::string> contexts{"Call me Ishmael.", "The whale", "Some years ago", "Queequeg said"};
  for (size_t i = 0; i < contexts.size(); ++i) {
    TaskItem it;
    it.id = std::to_string(i);
    it.context = contexts[i];
    it.choices = {"the sea", "a very long harpoon line", "yes", "Ahab"};
    it.answer = int32_t(i % 4);
    task.items.push_back(it);
  }
  Scorer scorer(m, 3, 64);
  const ChoiceScores s = score_choices(scorer, *tok, task);
  std::vector<int32_t> expected, expected_norm;
  for (size_t i = 0; i < task.items.size(); ++i) {
    std::vector<double> direct, norm;
    for (size_t c = 0; c < 4; ++c) {
      // Independently: tokenize prompt and prompt+choice, score the tail by one forward.
      const std::string prompt = task.items[i].context + "\nAnswer:";
      const std::string choice = " " + task.items[i].choices[c];
      std::vector<int32_t> ctx = tok->encode(prompt, true), whole = tok->encode(prompt + choice, true);
      ASSERT_EQ(std::vector<int32_t>(whole.begin(), whole.begin() + std::ptrdiff_t(ctx.size())), ctx);
      ScoreRequest r{ctx, std::vector<int32_t>(whole.begin() + std::ptrdiff_t(ctx.size()), whole.end())};
      direct.push_back(direct_logprob(m, r));
      norm.push_back(direct.back() / double(choice.size()));
      EXPECT_NEAR(s.logprob[i][c], direct.back(), 1e-9);
    }
    expected.push_back(argmax(direct));
    expected_norm.push_back(argmax(norm));
  }
  const Result r = evaluate_multiple_choice(scorer, *tok, task, {});
  std::vector<int32_t> gold;
  for (const auto& it : task.items) gold.push_back(it.answer);
  EXPECT_DOUBLE_EQ(r.figure("accuracy")->ci.value, accuracy(gold, expected));
  EXPECT_DOUBLE_EQ(r.figure("accuracy_norm")->ci.value, accuracy(gold, expected_norm));
  // Make the answer the model's own favourite: accuracy 1.
  for (size_t i = 0; i < task.items.size(); ++i) task.items[i].answer = expected[i];
  EXPECT_DOUBLE_EQ(evaluate_multiple_choice(scorer, *tok, task, {}).figure("accuracy")->ci.value, 1.0);
}

TEST(Classification, LabelWordsAndHeadMatchDirectForward) {
  std::unique_ptr<Tokenizer> tok = load_tokenizer(tokenizer_dir() + "/tokenizer.model");
  Task task;
  task.key = "t/cls";
  task.type = TaskType::Classification;
  task.metric = "macro_f1";
  task.labels = {"whale", "ship", "sea"};
  const std::vector<std::string> texts{"The white whale rose.", "The Pequod sailed.", "Waves everywhere.",
                                       "Harpoons and boats.", "A calm morning."};
  for (size_t i = 0; i < texts.size(); ++i) task.items.push_back({std::to_string(i), texts[i], int32_t(i % 3), "", {}, -1});

  Transformer lm = tiny_model(tok->vocab_size(), torch::kDouble);
  const auto scores = score_label_words(Scorer(lm, 4, 64), *tok, task);
  for (size_t i = 0; i < texts.size(); ++i)
    for (size_t l = 0; l < 3; ++l) {
      const std::string prompt = texts[i] + "\nLabel:";
      std::vector<int32_t> ctx = tok->encode(prompt, true), whole = tok->encode(prompt + " " + task.labels[l], true);
      ScoreRequest r{ctx, std::vector<int32_t>(whole.begin() + std::ptrdiff_t(ctx.size()), whole.end())};
      EXPECT_NEAR(scores[i][l], direct_logprob(lm, r), 1e-9);
    }

  Transformer head = tiny_model(tok->vocab_size(), torch::kDouble, Head::SequenceClassification);
  std::vector<int32_t> gold, pred;
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<int32_t> ids = tok->encode(texts[i], true);
      auto logits = head->forward(torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0)).logits;
      pred.push_back(int32_t(logits.argmax(1).item<int64_t>()));
      gold.push_back(task.items[i].label);
    }
  }
  const std::vector<int32_t> identity{0, 1, 2};
  const Result r = evaluate_classification_head(Scorer(head, 2, 64), *tok, task, identity, {});
  EXPECT_NEAR(r.figure("macro_f1")->ci.value, macro_f1(gold, pred, 3), 1e-12);
  EXPECT_NEAR(r.figure("accuracy")->ci.value, accuracy(gold, pred), 1e-12);

  // id2label naming the task's labels maps by name; HF's default names map by index.
  EXPECT_EQ(head_label_map(R"({"id2label": {"0": "sea", "1": "whale", "2": "ship"}})", 3, task.labels, "c"),
            (std::vector<int32_t>{2, 0, 1}));
  EXPECT_EQ(head_label_map(R"({"id2label": {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}})", 3, task.labels, "c"),
            identity);
  expect_error([&] { head_label_map("{}", 2, task.labels, "cfg.json"); }, {"cfg.json", "2 classes", "3 labels"});
}

// ---------------------------------------------------------------------------------------------
// End to end and outputs.

TEST(Evaluate, MiniSuiteReportJsonAndMarkdown) {
  const std::string model_dir = work_dir() + "/model";
  Transformer m = tiny_model(load_tokenizer(tokenizer_dir() + "/tokenizer.model")->vocab_size(), torch::kFloat);
  SaveOptions so;
  so.tokenizer_source = tokenizer_dir();
  save_pretrained(m, {}, model_dir, so);

  EvalOptions o;
  o.model_path = model_dir;
  o.tasks = std::string(GEMKIT_SOURCE_DIR) + "/data/mini/law";
  o.corpus = std::string(GEMKIT_SOURCE_DIR) + "/data/mini/general/test.jsonl," + GEMKIT_SOURCE_DIR +
             "/data/mini/law/test.jsonl";
  o.max_items = 4;
  o.max_documents = 2;
  o.bootstrap.resamples = 50;
  const Report report = run_evaluation(o);
  ASSERT_EQ(report.results.size(), 2u + 3u);
  EXPECT_EQ(report.results[0].kind, "perplexity");
  EXPECT_EQ(report.results[0].domain, "general");
  // An untrained model is near uniform: perplexity within a factor of the vocabulary size.
  const double ppl = report.results[0].figure("perplexity")->ci.value;
  EXPECT_GT(ppl, 0.3 * m->config().vocab_size);
  EXPECT_LT(ppl, 3.0 * m->config().vocab_size);
  for (const Result& r : report.results) {
    EXPECT_TRUE(r.skipped.empty()) << r.key;
    for (const Figure& f : r.figures) {
      EXPECT_LE(f.ci.low, f.ci.value + 1e-12) << r.key << " " << f.name;
      EXPECT_GE(f.ci.high, f.ci.value - 1e-12) << r.key << " " << f.name;
    }
  }
  const std::string json_path = work_dir() + "/reports/eval.json";
  write_report(report, json_path);
  const nlohmann::json j = nlohmann::json::parse(read_text_file(json_path));
  EXPECT_EQ(j["model"]["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["results"].size(), 5u);
  EXPECT_TRUE(j["results"][2]["figures"].contains("accuracy"));
  EXPECT_TRUE(j["results"][2]["baselines"].contains("majority"));
  EXPECT_TRUE(j["domain_scores"].contains("law"));
  const std::string md = read_text_file(work_dir() + "/reports/eval.md");
  EXPECT_NE(md.find("| perplexity | general |"), std::string::npos) << md;
  EXPECT_NE(md.find("law/spdx_osi"), std::string::npos);

  // A task folder without a manifest is an error naming it, raised before the model loads.
  o.tasks = work_dir() + "/nothing";
  expect_error([&] { run_evaluation(o); }, {"nothing"});
}

TEST(Plot, SvgIsWellFormedXml) {
  const std::string run = work_dir() + "/run";
  std::string lines;
  for (int s = 1; s <= 50; ++s) {
    lines += "{\"step\": " + std::to_string(s) + ", \"loss\": " + std::to_string(5.0 / std::sqrt(s)) +
             ", \"lr\": " + std::to_string(3e-4 * std::min(1.0, s / 10.0)) + ", \"grad_norm\": 1.5, \"note\": \"a<b&c\"";
    if (s % 10 == 0) lines += ", \"val_loss\": " + std::to_string(5.5 / std::sqrt(s));
    lines += "}\n";
  }
  lines += "{\"step\": 51, \"loss\": 0.";  // a killed run's last line
  write(run + "/metrics.jsonl", lines);
  const RunMetrics m = read_run_metrics(run + "/metrics.jsonl");
  EXPECT_EQ(m.series.at("loss").values.size(), 50u);
  EXPECT_EQ(m.series.at("val_loss").values.size(), 5u);
  EXPECT_EQ(m.series.count("note"), 0u);
  std::vector<PlotPanel> panels(2);
  panels[0].title = "loss <train & val>";
  panels[0].series = {{"loss", m.series.at("loss").steps, m.series.at("loss").values},
                      {"val_loss", m.series.at("val_loss").steps, m.series.at("val_loss").values}};
  panels[1].title = "lr";
  panels[1].series = {{"lr", m.series.at("lr").steps, m.series.at("lr").values}};
  const std::string svg_path = run + "/metrics.svg";
  write(svg_path, render_svg(panels, {"run \"x\"", 900, 260}));
  const std::string cmd = "python3 -c \"import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); "
                          "assert r.tag.endswith('svg'), r.tag; "
                          "assert len(r.findall('.//{http://www.w3.org/2000/svg}polyline')) == 3\" '" + svg_path + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << read_text_file(svg_path);
  // Scatter styles: colours first, then shapes, so series 0 and 7 differ (circle, square); an
  // explicit style wins; a long name widens the chart instead of running off it.
  PlotPanel scatter;
  for (int k = 0; k < 9; ++k) {
    PlotSeries ser{"s" + std::to_string(k), {double(k)}, {double(k * k)}};
    ser.markers = true;
    scatter.series.push_back(ser);
  }
  const auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  std::string svg = render_svg({scatter});
  EXPECT_EQ(count(svg, "<circle"), 14u);   // 7 points + 7 legend entries
  EXPECT_EQ(count(svg, "<polygon"), 4u);   // squares: 2 points + 2 legend entries
  EXPECT_EQ(count(svg, "#0072B2"), 6u);    // series 0 and 7 share the first colour: point, legend line, legend marker
  EXPECT_NE(svg.find("width=\"900.00\""), std::string::npos);
  scatter.series[0].colour = 2;
  scatter.series[0].shape = 3;
  scatter.series[0].name = std::string(60, 'x');
  svg = render_svg({scatter});
  EXPECT_EQ(count(svg, "<polygon"), 6u);
  EXPECT_EQ(svg.find("width=\"900.00\""), std::string::npos);  // wider: the legend fits the name
  EXPECT_EQ(std::system(("python3 -c \"import sys, xml.dom.minidom as M; M.parseString(sys.stdin.read())\" <<'EOF'\n" +
                         svg + "\nEOF").c_str()),
            0);

  // Bars take their colour from `colours` when given (e.g. one per target domain), else by position.
  BarPanel bars{"b", "v", {"x", "y", "z"}, {1, 2, 3}, {}, {}, {2, 2, 0}};
  svg = render_bars_svg({bars});
  EXPECT_EQ(count(svg, "fill=\"#009E73\""), 2u);
  EXPECT_EQ(count(svg, "fill=\"#0072B2\""), 1u);
  bars.colours.clear();
  EXPECT_EQ(count(render_bars_svg({bars}), "fill=\"#009E73\""), 1u);

  const std::vector<double> ticks = nice_ticks(0, 1, 5), want{0, 0.2, 0.4, 0.6, 0.8, 1};
  ASSERT_EQ(ticks.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(ticks[i], want[i], 1e-12);
  EXPECT_EQ(nice_ticks(3, 47, 5), (std::vector<double>{10, 20, 30, 40}));

  write(run + "/bad.jsonl", "{\"loss\": 1}\n{\"step\": 2, \"loss\": 1}\n");
  expect_error([&] { read_run_metrics(run + "/bad.jsonl"); }, {"bad.jsonl:1", "\"step\""});
}

// The `gemkit` executable end to end: tokenizer train/encode, model init/info, generate,
// recipes, and the failure paths (every bad input exits 1 with a message naming the file or
// key, never a crash).
//
// The tokenizer and the tiny checkpoint are built once per build of the binary and shared by
// every test process (ctest runs each test in its own process, in parallel): the first process
// builds them under a file lock, the others wait and reuse them.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

const std::string kSource = GEMKIT_SOURCE_DIR;
const std::string kBin = GEMKIT_BIN;

struct Result {
  int code = -1;  // exit status; 128 + signal when killed (a crash)
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string work_dir() { return std::string(GEMKIT_BINARY_DIR) + "/tests/test_cli_work"; }

// Runs `gemkit ARGS` from the source root (recipes use paths relative to it).
Result gemkit(const std::string& args) {
  static int counter = 0;
  fs::create_directories(work_dir());  // tests must not depend on which one runs first
  const std::string base = work_dir() + "/run." + std::to_string(getpid()) + "." + std::to_string(counter++);
  const std::string cmd = "cd '" + kSource + "' && OMP_NUM_THREADS=1 '" + kBin + "' " + args + " >'" + base +
                          ".out' 2>'" + base + ".err'";
  const int status = std::system(cmd.c_str());
  Result r;
  if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.code = 128 + WTERMSIG(status);
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  fs::remove(base + ".out");
  fs::remove(base + ".err");
  return r;
}

std::string describe(const Result& r) {
  return "exit " + std::to_string(r.code) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

// A failure must be exit 1 with "gemkit: error:" and `needle` in the message.
void expect_clean_failure(const Result& r, const std::string& needle) {
  EXPECT_EQ(r.code, 1) << describe(r);
  EXPECT_NE(r.err.find("gemkit: error: "), std::string::npos) << describe(r);
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "'\n" << describe(r);
}

// The shared tokenizer (fixture/tok) and checkpoint (fixture/model), rebuilt when the binary
// changes. Returns the fixture folder.
std::string fixture() {
  static std::string dir;
  if (!dir.empty()) return dir;
  dir = work_dir() + "/fixture";
  fs::create_directories(work_dir());
  const int lock = open((work_dir() + "/fixture.lock").c_str(), O_CREAT | O_RDWR, 0644);
  EXPECT_GE(lock, 0);
  flock(lock, LOCK_EX);
  struct stat st;
  stat(kBin.c_str(), &st);
  const std::string stamp = std::to_string(st.st_mtime) + " " + std::to_string(st.st_size);
  if (slurp(dir + "/stamp") != stamp) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    Result t = gemkit("tokenizer train --input data/mini/general/moby_dick.txt --out '" + dir +
                      "/tok' --vocab-size 600 --model-type bpe");
    EXPECT_EQ(t.code, 0) << describe(t);
    Result m = gemkit("model init --recipe recipes/models/tiny_llama.toml --tokenizer '" + dir + "/tok' --out '" +
                      dir + "/model' model.init.hidden_size=64 model.init.intermediate_size=128 " +
                      "model.init.num_hidden_layers=2 model.init.num_attention_heads=4 " +
                      "model.init.num_key_value_heads=2 model.init.seed=3");
    EXPECT_EQ(m.code, 0) << describe(m);
    if (t.code == 0 && m.code == 0) std::ofstream(dir + "/stamp") << stamp;
  }
  flock(lock, LOCK_UN);
  close(lock);
  return dir;
}

// A private copy of the checkpoint that a test may damage.
std::string copy_model(const std::string& name) {
  const std::string dst = work_dir() + "/" + name + "." + std::to_string(getpid());
  fs::remove_all(dst);
  fs::copy(fixture() + "/model", dst, fs::copy_options::recursive);
  return dst;
}

}  // namespace

TEST(Cli, TokenizerTrainWritesModelAndResolvedRecipe) {
  const std::string tok = fixture() + "/tok";
  EXPECT_TRUE(fs::exists(tok + "/tokenizer.model"));
  const std::string resolved = slurp(tok + "/resolved_recipe.toml");
  EXPECT_NE(resolved.find("vocab_size = 600"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("model_type = \"bpe\""), std::string::npos) << resolved;
}

TEST(Cli, TokenizerEncodeIdsAndPieces) {
  const std::string tok = fixture() + "/tok";
  Result ids = gemkit("tokenizer encode --tokenizer '" + tok + "' 'Call me Ishmael.'");
  ASSERT_EQ(ids.code, 0) << describe(ids);
  std::istringstream in(ids.out);
  int n = 0, id;
  while (in >> id) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 600);
    ++n;
  }
  EXPECT_GE(n, 3) << ids.out;
  Result pieces = gemkit("tokenizer encode --pieces --no-special --tokenizer '" + tok + "' 'Call me Ishmael.'");
  ASSERT_EQ(pieces.code, 0) << describe(pieces);
  EXPECT_NE(pieces.out.find("\xE2\x96\x81"), std::string::npos) << pieces.out;  // "▁": SentencePiece space
}

TEST(Cli, ModelInitWritesHuggingFaceLayout) {
  const std::string model = fixture() + "/model";
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "resolved_recipe.toml"})
    EXPECT_TRUE(fs::exists(model + "/" + f)) << f;
  const std::string resolved = slurp(model + "/resolved_recipe.toml");
  EXPECT_NE(resolved.find("hidden_size = 64"), std::string::npos) << resolved;
}

TEST(Cli, ModelInitEveryArchitecture) {
  for (const std::string arch : {"Qwen2ForCausalLM", "BertForMaskedLM", "BertForSequenceClassification"}) {
    const std::string out = work_dir() + "/" + arch + "." + std::to_string(getpid());
    Result init = gemkit("model init --tokenizer '" + fixture() + "/tok' --out '" + out + "' --architecture " + arch +
                         " --hidden-size 32 --layers 1 --heads 2 model.init.intermediate_size=64 model.init.num_labels=3");
    ASSERT_EQ(init.code, 0) << describe(init);
    Result info = gemkit("model info '" + out + "'");
    ASSERT_EQ(info.code, 0) << describe(info);
    EXPECT_NE(info.out.find("architecture:    " + arch), std::string::npos) << info.out;
    if (arch == "BertForSequenceClassification") {
      EXPECT_NE(info.out.find("sequence-classification (3 labels)"), std::string::npos) << info.out;
    }
    fs::remove_all(out);
  }
}

TEST(Cli, ModelInfoReportsArchitectureAndSizes) {
  Result r = gemkit("model info '" + fixture() + "/model'");
  ASSERT_EQ(r.code, 0) << describe(r);
  for (const char* needle :
       {"architecture:    LlamaForCausalLM", "family:          decoder", "head:            causal-lm",
        "layers:          2", "hidden:          64", "heads:           4", "kv heads:        2", "vocab:           600",
        "rope:            theta 10000, scaling default", "parameters:      ", "dtypes:          F32",
        "file size:       ", "tokenizer:       tokenizer.model"})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << "\n" << r.out;
  // Tied embeddings (600 x 64) + 2 blocks + the final norm (64). A block: q and o 64x64, k and v
  // 64x32 (2 kv heads of 16), gate/up/down 64x128, two norms of 64.
  const int64_t per_block = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128 + 2 * 64;
  const int64_t expected = 600 * 64 + 2 * per_block + 64;
  std::string formatted = std::to_string(expected);
  for (int i = int(formatted.size()) - 3; i > 0; i -= 3) formatted.insert(size_t(i), ",");
  EXPECT_NE(r.out.find("parameters:      " + formatted + " "), std::string::npos) << formatted << "\n" << r.out;
}

TEST(Cli, GenerateIsDeterministicForASeed) {
  const std::string args = "generate --model '" + fixture() + "/model' --prompt 'Call me Ishmael.' "
                           "--max-new-tokens 12 --temperature 1.0 --top-k 50 --seed 7";
  Result a = gemkit(args), b = gemkit(args);
  ASSERT_EQ(a.code, 0) << describe(a);
  ASSERT_EQ(b.code, 0) << describe(b);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out.rfind("Call me Ishmael.", 0), 0u) << a.out;
  EXPECT_GT(a.out.size(), std::string("Call me Ishmael.\n").size()) << a.out;
  EXPECT_NE(a.err.find("12 new tokens"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("tokens/s"), std::string::npos) << a.err;
}

TEST(Cli, GenerateFromRecipeWithOverrides) {
  Result r = gemkit("generate --recipe recipes/generate/sample.toml --model '" + fixture() +
                    "/model' generation.max_new_tokens=5 generation.temperature=0");
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_EQ(r.out.rfind("Call me Ishmael.", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("5 new tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("greedy"), std::string::npos) << r.err;
}

TEST(Cli, RecipesLsShowValidate) {
  Result ls = gemkit("recipes ls");
  ASSERT_EQ(ls.code, 0) << describe(ls);
  EXPECT_NE(ls.out.find("recipes/models/tiny_llama.toml"), std::string::npos) << ls.out;
  Result show = gemkit("recipes show recipes/generate/sample.toml generation.top_k=3");
  ASSERT_EQ(show.code, 0) << describe(show);
  EXPECT_NE(show.out.find("top_k = 3"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("device = \"cpu\""), std::string::npos) << show.out;
  Result validate = gemkit("recipes validate");
  EXPECT_EQ(validate.code, 0) << describe(validate);
}

TEST(Cli, MissingConfigJsonIsAnError) {
  const std::string model = copy_model("no_config");
  fs::remove(model + "/config.json");
  expect_clean_failure(gemkit("model info '" + model + "'"), model + "/config.json");
  expect_clean_failure(gemkit("generate --model '" + model + "' --prompt hi"), "config.json");
  fs::remove_all(model);
}

TEST(Cli, TruncatedSafetensorsIsAnError) {
  const std::string model = copy_model("truncated");
  const std::string weights = model + "/model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) / 2);
  expect_clean_failure(gemkit("model info '" + model + "'"), "model.safetensors");
  expect_clean_failure(gemkit("generate --model '" + model + "' --prompt hi"), "model.safetensors");
  fs::resize_file(weights, 5);  // shorter than the 8-byte header length
  expect_clean_failure(gemkit("model info '" + model + "'"), "model.safetensors");
  fs::remove_all(model);
}

TEST(Cli, UnknownRecipeKeyIsAnError) {
  const std::string recipe = work_dir() + "/bad." + std::to_string(getpid()) + ".toml";
  std::ofstream(recipe) << "# bad\n[generation]\ntemprature = 0.5\n";
  Result v = gemkit("recipes validate '" + recipe + "'");
  expect_clean_failure(v, recipe + ": generation.temprature: unknown key; did you mean generation.temperature?");
  expect_clean_failure(gemkit("generate --recipe '" + recipe + "' --model '" + fixture() + "/model'"),
                       "did you mean generation.temperature?");
  expect_clean_failure(gemkit("generate --model '" + fixture() + "/model' --prompt x generation.topk=3"),
                       "command line: generation.topk: unknown key; did you mean generation.top_k?");
  std::ofstream(recipe) << "[generation\n";
  expect_clean_failure(gemkit("recipes validate '" + recipe + "'"), recipe + ":1:");
  fs::remove(recipe);
}

TEST(Cli, BadDeviceIsAnError) {
  expect_clean_failure(gemkit("generate --model '" + fixture() + "/model' --prompt hi --device gpu"),
                       "--device: model.device: expected one of cpu, cuda, got 'gpu'");
}

TEST(Cli, BadArgumentsAreErrors) {
  expect_clean_failure(gemkit("generate --model /nonexistent/model --prompt hi"), "/nonexistent/model");
  expect_clean_failure(gemkit("generate --model '" + fixture() + "/model' --prompt hi --top-p 2"),
                       "--top-p: generation.top_p: expected a value in [0, 1], got 2");
  expect_clean_failure(gemkit("generate --model '" + fixture() + "/model'"), "generation.prompt: not set");
  expect_clean_failure(gemkit("model info"), "path is required");
  expect_clean_failure(gemkit("nonsense"), "nonsense");
  expect_clean_failure(gemkit("tokenizer encode --tokenizer /nonexistent/tok hi"), "/nonexistent/tok");
  expect_clean_failure(gemkit("model init --tokenizer '" + fixture() + "/tok' --out '" + work_dir() +
                              "/x' --heads 3"),
                       "num_attention_heads");
}

TEST(Cli, DataSuiteValidateRunsTheSuiteChecks) {
  Result ok = gemkit("data suite validate data/mini");
  EXPECT_EQ(ok.code, 0) << describe(ok);
  EXPECT_NE(ok.out.find("validate data/mini: OK"), std::string::npos) << describe(ok);
  Result bad = gemkit("data suite validate /nonexistent/suite");
  expect_clean_failure(bad, "data suite validate: found problems");
  EXPECT_NE(bad.out.find("/nonexistent/suite/manifest.json missing"), std::string::npos) << describe(bad);
}

TEST(Cli, DataSuiteBuildWritesTokenShardsForATokenizer) {
  // The mini law domain from the pinned sources (fetched into the cache when missing), then one
  // shard per split for the fixture's tokenizer; a second run gives byte-identical shards.
  const std::string out = work_dir() + "/suite." + std::to_string(getpid());
  const std::string cmd = "data suite build --mini --domains law --out '" + out + "' --tokenizer '" + fixture() + "/tok'";
  Result r = gemkit(cmd);
  ASSERT_EQ(r.code, 0) << describe(r);
  const std::string shard = out + "/law/shards/train.h5";
  for (const char* split : {"train", "validation", "test"})
    EXPECT_TRUE(fs::exists(out + "/law/shards/" + split + ".h5")) << split << "\n" << describe(r);
  const std::string first = slurp(shard);
  ASSERT_EQ(gemkit(cmd + " --force").code, 0);
  EXPECT_EQ(slurp(shard), first);
  expect_clean_failure(gemkit("data suite build --mini --domains law --out '" + out + "' --tokenizer /nonexistent/tok"),
                       "/nonexistent/tok");
  fs::remove_all(out);
}

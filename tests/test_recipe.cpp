// Recipes: parsing, validation messages, overrides, removal, defaults, and the resolved
// TOML round trip; every recipe shipped in recipes/ must validate.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "test_util.h"
#include "train/recipe.h"

using gemkit::Recipe;
using gemkit::test::error_of;

namespace {

void list_toml(const std::string& dir, std::vector<std::string>* out) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) list_toml(path, out);
    else if (name.size() > 5 && name.substr(name.size() - 5) == ".toml") out->push_back(path);
  }
  closedir(d);
}

}  // namespace

TEST(Recipe, ParsesNestedTables) {
  Recipe r = Recipe::from_toml_text(
      "[generation]\ntemperature = 0.5\ntop_k = 10\nprompt = \"Call me\"\n"
      "[model.init]\nhidden_size = 64\ntie_word_embeddings = false\n"
      "[tokenizer]\ninput = [\"a.txt\", \"b.txt\"]\n",
      "x.toml");
  EXPECT_DOUBLE_EQ(r.get_float("generation.temperature"), 0.5);
  EXPECT_EQ(r.get_int("generation.top_k"), 10);
  EXPECT_EQ(r.get_string("generation.prompt"), "Call me");
  EXPECT_EQ(r.get_int("model.init.hidden_size"), 64);
  EXPECT_FALSE(r.get_bool("model.init.tie_word_embeddings"));
  EXPECT_EQ(r.get_strings("tokenizer.input"), (std::vector<std::string>{"a.txt", "b.txt"}));
}

TEST(Recipe, IntegerIsAValidFloat) {
  Recipe r = Recipe::from_toml_text("[generation]\ntemperature = 1\n", "x.toml");
  EXPECT_DOUBLE_EQ(r.get_float("generation.temperature"), 1.0);
}

TEST(Recipe, SyntaxErrorNamesFileAndLine) {
  std::string e = error_of([] {
    Recipe::from_toml_text("[generation]\ntemperature = 0.5\ntop_k = = 3\n", "recipes/x.toml");
  });
  EXPECT_NE(e.find("recipes/x.toml:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("TOML syntax error"), std::string::npos) << e;
}

TEST(Recipe, UnknownKeySuggestsNearest) {
  std::string e = error_of([] {
    Recipe::from_toml_text("[generation]\ntemprature = 0.5\n", "recipes/x.toml");
  });
  EXPECT_EQ(e, "recipes/x.toml: generation.temprature: unknown key; did you mean "
               "generation.temperature?");
}

TEST(Recipe, UnknownTableReportsItsKeys) {
  std::string e = error_of([] {
    Recipe::from_toml_text("[generaton]\ntop_k = 5\n", "r.toml");
  });
  EXPECT_NE(e.find("r.toml: generaton.top_k: unknown key; did you mean generation.top_k?"),
            std::string::npos) << e;
}

TEST(Recipe, EveryProblemIsReported) {
  std::string e = error_of([] {
    Recipe::from_toml_text("[generation]\ntop_k = \"many\"\ntop_p = 2.0\n", "r.toml");
  });
  EXPECT_NE(e.find("generation.top_k"), std::string::npos) << e;
  EXPECT_NE(e.find("generation.top_p"), std::string::npos) << e;
}

TEST(Recipe, WrongTypeNamesKeyAndTypes) {
  std::string e = error_of([] {
    Recipe::from_toml_text("[generation]\ntop_k = \"many\"\n", "recipes/x.toml");
  });
  EXPECT_EQ(e, "recipes/x.toml: generation.top_k: expected an integer, got a string");
  e = error_of([] { Recipe::from_toml_text("model = 3\n", "r.toml"); });
  EXPECT_NE(e.find("r.toml: model: is a table"), std::string::npos) << e;
  e = error_of([] { Recipe::from_toml_text("[tokenizer]\ninput = [1, 2]\n", "r.toml"); });
  EXPECT_NE(e.find("r.toml: tokenizer.input: expected a list of strings"), std::string::npos) << e;
}

TEST(Recipe, OutOfRangeAndBadChoice) {
  std::string e = error_of([] {
    Recipe::from_toml_text("[generation]\ntop_p = 1.5\n", "recipes/x.toml");
  });
  EXPECT_NE(e.find("recipes/x.toml: generation.top_p: expected a value in [0, 1], got 1.5"),
            std::string::npos) << e;
  e = error_of([] { Recipe::from_toml_text("[tokenizer]\nmodel_type = \"wordpiece\"\n", "r.toml"); });
  EXPECT_NE(e.find("r.toml: tokenizer.model_type: expected one of bpe, unigram, got 'wordpiece'"),
            std::string::npos) << e;
}

TEST(Recipe, OverrideParsesWithTheKeysType) {
  Recipe r = Recipe::from_toml_text("[generation]\ntemperature = 0.5\n", "x.toml");
  r.apply_override("generation.temperature=0.25");
  r.apply_override("generation.top_k=7");
  r.apply_override("generation.prompt=a=b, c");  // only the first '=' separates
  r.apply_override("tokenizer.input=a.txt, b.txt");
  r.apply_override("model.init.tie_word_embeddings=false");
  EXPECT_DOUBLE_EQ(r.get_float("generation.temperature"), 0.25);
  EXPECT_EQ(r.get_int("generation.top_k"), 7);
  EXPECT_EQ(r.get_string("generation.prompt"), "a=b, c");
  EXPECT_EQ(r.get_strings("tokenizer.input"), (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_FALSE(r.get_bool("model.init.tie_word_embeddings"));

  EXPECT_EQ(error_of([&] { r.apply_override("generation.top_k=1.5"); }),
            "command line: generation.top_k: expected an integer, got '1.5'");
  EXPECT_EQ(error_of([&] { r.apply_override("generation.temprature=1"); }),
            "command line: generation.temprature: unknown key; did you mean generation.temperature?");
  EXPECT_NE(error_of([&] { r.apply_override("generation.top_p=-0.1"); }).find("[0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { r.apply_override("generation.top_k"); }).find("expected key.path=value"),
            std::string::npos);
  EXPECT_NE(error_of([&] { r.apply_override("model.device=gpu"); }).find("expected one of cpu, cuda"),
            std::string::npos);
}

TEST(Recipe, RemovalRestoresTheDefault) {
  Recipe r = Recipe::from_toml_text("[generation]\ntemperature = 0.5\nprompt = \"x\"\n", "x.toml");
  r.apply_override("~generation.temperature");
  r.apply_override("~generation.prompt");
  EXPECT_FALSE(r.has("generation.temperature"));
  r.resolve();
  EXPECT_DOUBLE_EQ(r.get_float("generation.temperature"), 0.8);  // the schema default
  EXPECT_FALSE(r.has("generation.prompt"));                      // no default
  std::string e = error_of([&] { r.get_string("generation.prompt"); });
  EXPECT_NE(e.find("x.toml: generation.prompt: not set"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { r.apply_override("~generation.promt"); }).find("did you mean generation.prompt?"),
            std::string::npos);
}

TEST(Recipe, ResolvedRoundTrip) {
  Recipe r = Recipe::from_toml_text(
      "[generation]\nprompt = \"quote \\\" backslash \\\\ newline \\n tab \\t é\"\n"
      "temperature = 0.1\n[tokenizer]\ninput = [\"a b.txt\", \"c.txt\"]\n",
      "x.toml");
  r.apply_override("model.init.rope_theta=500000");
  r.apply_override("generation.top_p=0.3");
  r.resolve();
  std::string text = r.to_toml();
  Recipe back = Recipe::from_toml_text(text, "resolved.toml");
  EXPECT_EQ(back.values(), r.values()) << text;
  EXPECT_NE(text.find("[generation]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("temperature = 0.1  # "), std::string::npos) << text;  // shortest form
  EXPECT_NE(text.find("rope_theta = 500000.0"), std::string::npos) << text;
  // Every default is filled in.
  for (const gemkit::RecipeKey& k : gemkit::recipe_schema())
    if (k.value) {
      EXPECT_TRUE(back.has(k.path)) << k.path;
    }
}

TEST(Recipe, SchemaDefaultsAreValid) {
  for (const gemkit::RecipeKey& k : gemkit::recipe_schema()) {
    EXPECT_FALSE(k.doc.empty()) << k.path;
    if (k.value) {
      EXPECT_NO_THROW(gemkit::recipe_parse_value(k, *k.value, "schema")) << k.path;
    }
  }
}

TEST(Recipe, MissingFileIsAnError) {
  std::string e = error_of([] { Recipe::load("/nonexistent/r.toml"); });
  EXPECT_EQ(e, "/nonexistent/r.toml: recipe file not found");
}

TEST(Recipe, EveryShippedRecipeValidates) {
  std::vector<std::string> files;
  list_toml(std::string(GEMKIT_SOURCE_DIR) + "/recipes", &files);
  ASSERT_FALSE(files.empty());
  for (const std::string& f : files) {
    // Each recipe starts with a comment saying what it does and the command that runs it.
    std::string text = gemkit::read_text_file(f);
    EXPECT_EQ(text.rfind("# ", 0), 0u) << f;
    EXPECT_NE(text.find("gemkit " ), std::string::npos) << f << ": no command in the comment";
    EXPECT_NO_THROW({
      Recipe r = Recipe::load(f);
      r.resolve();
    }) << error_of([&] { Recipe::load(f); });
  }
}

// Every value goes back into TOML (resolved_recipe.toml, read by --resume), so a value that is
// not UTF-8 is refused where it enters (fuzzer finding: an override with byte 0xEA was accepted
// and written into a recipe that could not be read again); UTF-8 text round-trips.
TEST(Recipe, OverridesMustBeUtf8AndRoundTrip) {
  Recipe r = Recipe::from_toml_text("[generation]\nprompt = \"x\"\n", "x.toml");
  for (const std::string bad : {"generation.prompt=caf\xe9", "tokenizer.input=a.txt,b\xea.txt",
                                "generation.prompt=\xed\xa0\x80", "generation.prompt=\xc0\xaf"}) {
    const std::string e = error_of([&] { r.apply_override(bad); });
    EXPECT_NE(e.find("expected UTF-8 text"), std::string::npos) << e;
    EXPECT_NE(e.find(bad.substr(0, bad.find('='))), std::string::npos) << e;
  }
  r.apply_override("generation.prompt=caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80");
  r.resolve();
  Recipe again = Recipe::from_toml_text(r.to_toml(), "written.toml");
  again.resolve();
  EXPECT_EQ(again.get_string("generation.prompt"), "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80");
  EXPECT_EQ(again.to_toml(), r.to_toml());
}

// gemkit tokenizer train | encode: train a SentencePiece tokenizer; show how text tokenizes.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/recipe_args.h"
#include "core/error.h"
#include "core/file_io.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_train.h"

namespace gemkit::cli {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// tokenizer train: the recipe's tokenizer.* keys -> train_sentencepiece (runs in a child
// process; see tokenizers/tokenizer_train.h) -> OUT/tokenizer.model + OUT/resolved_recipe.toml.
void train(const Recipe& r) {
  SentencePieceTrainOptions o;
  o.input_files = r.get_strings("tokenizer.input");
  if (o.input_files.empty())
    fail("tokenizer.input", "no input files; give --input FILE or tokenizer.input in the recipe");
  for (const std::string& f : o.input_files)
    if (!file_exists(f)) fail(f, "input text file not found (tokenizer.input)");
  const std::string out = r.get_string("tokenizer.out");
  o.model_prefix = (fs::path(out) / "tokenizer").string();  // Hugging Face name: tokenizer.model
  o.vocab_size = int32_t(r.get_int("tokenizer.vocab_size"));
  o.model_type = r.get_string("tokenizer.model_type");
  o.character_coverage = r.get_float("tokenizer.character_coverage");
  o.normalization_rule = r.get_string("tokenizer.normalization_rule");
  o.byte_fallback = r.get_bool("tokenizer.byte_fallback");
  o.split_digits = r.get_bool("tokenizer.split_digits");
  o.input_sentence_size = r.get_int("tokenizer.input_sentence_size");
  o.seed = uint32_t(r.get_int("tokenizer.seed"));
  fs::create_directories(out);
  const auto start = std::chrono::steady_clock::now();
  const SentencePieceTrainResult result = train_sentencepiece(o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.save((fs::path(out) / "resolved_recipe.toml").string());
  std::unique_ptr<Tokenizer> tok = load_tokenizer(result.model_path);
  std::printf("wrote %s: %s, %d pieces, trained in %.1f s\n", result.model_path.c_str(), tok->kind().c_str(),
              tok->vocab_size(), seconds);
}

// ---------------------------------------------------------------------------------------------
// tokenizer encode: ids (default) or vocabulary pieces, space separated, on one line.
struct EncodeArgs {
  std::string tokenizer, text, file;
  bool pieces = false, no_special = false;
};

void encode(const EncodeArgs& a) {
  if (a.text.empty() == a.file.empty()) fail("tokenizer encode", "give either TEXT or --file FILE");
  const std::string text = a.file.empty() ? a.text : read_text_file(a.file);
  std::unique_ptr<Tokenizer> tok = load_tokenizer(a.tokenizer);
  const std::vector<int32_t> ids = tok->encode(text, !a.no_special);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += a.pieces ? tok->token_text(ids[i]) : std::to_string(ids[i]);
  }
  std::printf("%s\n", line.c_str());
}

}  // namespace

void add_tokenizer_commands(CLI::App& app) {
  CLI::App* tokenizer = app.add_subcommand("tokenizer", "train and try tokenizers");
  tokenizer->require_subcommand(1);

  CLI::App* train_cmd = tokenizer->add_subcommand(
      "train", "train a SentencePiece tokenizer (BPE or unigram) on text files");
  auto recipe = std::make_shared<RecipeArgs>(train_cmd);
  recipe->flag("--input", "tokenizer.input", "text files, comma separated");
  recipe->flag("--out", "tokenizer.out", "output folder");
  recipe->flag("--vocab-size", "tokenizer.vocab_size", "vocabulary size");
  recipe->flag("--model-type", "tokenizer.model_type", "bpe or unigram");
  train_cmd->callback([recipe] { train(recipe->resolve()); });

  auto a = std::make_shared<EncodeArgs>();
  CLI::App* encode_cmd = tokenizer->add_subcommand("encode", "print the token ids (or pieces) of a text");
  encode_cmd->add_option("--tokenizer,-t", a->tokenizer,
                         "checkpoint folder, tokenizer.json, tokenizer.model, vocab.txt or .gguf")
      ->required();
  encode_cmd->add_option("text", a->text, "text to encode");
  encode_cmd->add_option("--file,-f", a->file, "encode this file's content instead");
  encode_cmd->add_flag("--pieces,-p", a->pieces, "print vocabulary pieces instead of ids");
  encode_cmd->add_flag("--no-special", a->no_special, "do not add the model's special tokens (BOS, [CLS], ...)");
  encode_cmd->callback([a] { encode(*a); });
}

}  // namespace gemkit::cli

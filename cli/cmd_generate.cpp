// gemkit generate: sample a continuation of a prompt from a checkpoint folder, streaming the
// text as it is produced, then report tokens/s.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/recipe_args.h"
#include "core/error.h"
#include "core/torch_compat.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "routing/gem_modules.h"
#include "model/generate.h"

namespace gemkit::cli {
namespace {

// Decoding the whole sequence each step (not token by token) keeps SentencePiece's spacing
// and multi-token UTF-8 characters (byte fallback) right; only the new suffix is printed, and
// it is held back while it ends in an incomplete character (decoded as U+FFFD).
class TextStream {
 public:
  TextStream(const Tokenizer& tok, std::vector<int32_t> prompt) : tok_(tok), ids_(std::move(prompt)) {
    printed_ = tok_.decode(ids_).size();
  }
  void push(int64_t token) {
    ids_.push_back(int32_t(token));
    const std::string text = tok_.decode(ids_);
    static const std::string kReplacement = "\xEF\xBF\xBD";
    const bool incomplete = text.size() >= 3 && text.compare(text.size() - 3, 3, kReplacement) == 0;
    if (incomplete || text.size() <= printed_) return;
    std::fwrite(text.data() + printed_, 1, text.size() - printed_, stdout);
    std::fflush(stdout);
    printed_ = text.size();
  }

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;
  size_t printed_ = 0;
};

void generate_text(const Recipe& r) {
  const std::string& folder = r.get_string("model.path");
  const torch::Device device = compat::parse_device(r.get_string("model.device"));
  const std::string& prompt = r.get_string("generation.prompt");

  torch::NoGradGuard no_grad;
  Pretrained pretrained = load_pretrained(folder, device);
  const ModelConfig& config = pretrained.config;
  if (config.family != Family::Decoder || config.head != Head::CausalLM)
    fail(folder, "generate needs a causal language model (LlamaForCausalLM, Qwen2ForCausalLM), got " +
                     config.architecture);
  // A routed checkpoint (gem.json) generates with its token router and experts.
  std::unique_ptr<GemModules> gem = load_gem_modules(pretrained.model, folder);
  pretrained.model->eval();
  std::unique_ptr<Tokenizer> tok = load_tokenizer(folder);

  const std::vector<int32_t> prompt_ids = tok->encode(prompt, /*add_special=*/true);
  if (prompt_ids.empty()) fail("generation.prompt", "encodes to no tokens; give a non-empty prompt");
  GenerationConfig g;
  g.max_new_tokens = r.get_int("generation.max_new_tokens");
  const int64_t total = int64_t(prompt_ids.size()) + g.max_new_tokens;
  if (total > config.max_position_embeddings)
    fail("generation.max_new_tokens", "the prompt (" + std::to_string(prompt_ids.size()) + " tokens) plus " +
                                          std::to_string(g.max_new_tokens) + " new tokens exceeds the model's " +
                                          std::to_string(config.max_position_embeddings) +
                                          " positions (max_position_embeddings in " + folder + "/config.json)");
  g.temperature = r.get_float("generation.temperature");
  g.do_sample = g.temperature > 0;  // temperature 0 means greedy
  if (!g.do_sample) g.temperature = 1.0;
  g.top_k = r.get_int("generation.top_k");
  g.top_p = r.get_float("generation.top_p");
  g.seed = uint64_t(r.get_int("generation.seed"));

  std::printf("%s", tok->decode(prompt_ids).c_str());
  std::fflush(stdout);
  TextStream stream(*tok, prompt_ids);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int64_t> out =
      generate(pretrained.model, std::vector<int64_t>(prompt_ids.begin(), prompt_ids.end()), g,
               [&](int64_t, int64_t token) {
                 stream.push(token);
                 return true;
               });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("\n");
  // Figures go to stderr so that stdout is exactly the text (deterministic for a given seed).
  std::fprintf(stderr, "[%zu prompt + %zu new tokens in %.2f s: %.1f tokens/s on %s, %s]\n", prompt_ids.size(),
               out.size(), seconds, seconds > 0 ? double(out.size()) / seconds : 0.0, device.str().c_str(),
               g.do_sample ? "sampled" : "greedy");
}

}  // namespace

void add_generate_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("generate", "continue a prompt with a checkpoint (streams the text)");
  auto recipe = std::make_shared<RecipeArgs>(cmd);
  recipe->flag("--model,-m", "model.path", "checkpoint folder");
  recipe->flag("--prompt,-p", "generation.prompt", "text to continue");
  recipe->flag("--max-new-tokens,-n", "generation.max_new_tokens", "tokens to generate");
  recipe->flag("--temperature", "generation.temperature", "sampling temperature; 0: greedy");
  recipe->flag("--top-k", "generation.top_k", "sample among the k most likely tokens; 0: all");
  recipe->flag("--top-p", "generation.top_p", "nucleus sampling mass; 1: off");
  recipe->flag("--seed", "generation.seed", "sampler seed");
  recipe->flag("--device", "model.device", "cpu or cuda");
  cmd->callback([recipe] { generate_text(recipe->resolve()); });
}

}  // namespace gemkit::cli

// gemkit generate: sample a continuation of a prompt from a checkpoint folder, streaming the
// text as it is produced, then report tokens/s. With --chat the prompt is a user message put
// through the checkpoint's chat template, and only the assistant's reply is printed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/recipe_args.h"
#include "core/error.h"
#include "core/torch_compat.h"
#include "model/checkpoint.h"
#include "model/generate.h"
#include "routing/gem_modules.h"
#include "tokenizers/chat_template.h"
#include "tokenizers/tokenizer.h"

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

// Options outside the recipe schema: they choose how the prompt is framed, not how to sample.
struct ChatOptions {
  bool chat = false;
  std::string system;
};

// The id of a token given by its text: a chat template's end-of-turn marker must be one token.
int64_t single_token_id(const Tokenizer& tok, const std::string& text, const std::string& folder) {
  const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false);
  if (ids.size() != 1)
    fail(folder, "chat template: end-of-turn marker \"" + text + "\" is not a single token of the tokenizer (got " +
                     std::to_string(ids.size()) + " tokens)");
  return ids.front();
}

void generate_text(const Recipe& r, const ChatOptions& chat) {
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

  GenerationConfig g;
  std::vector<int32_t> prompt_ids;
  if (chat.chat) {
    // The template writes every special token itself (BOS included), as transformers'
    // apply_chat_template(tokenize=True) does, so none is added on encoding. A turn ends at the
    // template's end-of-turn token as well as at eos.
    const ChatTemplate tmpl = ChatTemplate::from_folder(folder);
    std::vector<ChatMessage> messages;
    if (!chat.system.empty()) messages.push_back({"system", chat.system});
    messages.push_back({"user", prompt});
    prompt_ids = tok->encode(tmpl.render(messages, /*add_generation_prompt=*/true), /*add_special=*/false);
    g.stop_token_ids.push_back(single_token_id(*tok, tmpl.end_of_turn(), folder));
    if (config.eos_token_id >= 0 && config.eos_token_id != g.stop_token_ids.front())
      g.stop_token_ids.push_back(config.eos_token_id);
  } else {
    if (!chat.system.empty()) fail("--system", "needs --chat");
    prompt_ids = tok->encode(prompt, /*add_special=*/true);
  }
  if (prompt_ids.empty()) fail("generation.prompt", "encodes to no tokens; give a non-empty prompt");
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

  // A chat prints the assistant's reply alone; a plain prompt is echoed and continued.
  if (!chat.chat) std::printf("%s", tok->decode(prompt_ids).c_str());
  std::fflush(stdout);
  TextStream stream(*tok, prompt_ids);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int64_t> out =
      generate(pretrained.model, std::vector<int64_t>(prompt_ids.begin(), prompt_ids.end()), g,
               [&](int64_t, int64_t token) {
                 // The end-of-turn token closes the reply; it is never part of its text.
                 const bool stop = std::find(g.stop_token_ids.begin(), g.stop_token_ids.end(), token) !=
                                   g.stop_token_ids.end();
                 if (!(chat.chat && stop)) stream.push(token);
                 return true;
               });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("\n");
  std::fflush(stdout);  // the text before the figures when both go to one file
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
  auto chat = std::make_shared<ChatOptions>();
  cmd->add_flag("--chat", chat->chat,
                "the prompt is a user message: apply the checkpoint's chat template, stop at the end of the "
                "assistant's turn and print only its reply");
  cmd->add_option("--system", chat->system, "system message of the --chat conversation");
  cmd->callback([recipe, chat] { generate_text(recipe->resolve(), *chat); });
}

}  // namespace gemkit::cli

// render_chat [--tokens] FOLDER CONVERSATIONS.json: each conversation ({"messages": [{"role",
// "content"}], "add_generation_prompt": bool}) rendered with the folder's chat template
// (tokenizers/chat_template.h), printed as one JSON string per line. With --tokens, each is encoded
// as a training example instead (data/chat_examples.h encode_chat with the folder's tokenizer),
// printed as {"ids": [...], "mask": [...]}.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/file_io.h"
#include "data/chat_examples.h"
#include "tokenizers/chat_template.h"
#include "tokenizers/tokenizer.h"

int main(int argc, char** argv) {
  const bool tokens = argc == 4 && std::string(argv[1]) == "--tokens";
  if (argc != 3 && !tokens) {
    std::fprintf(stderr, "usage: render_chat [--tokens] FOLDER CONVERSATIONS.json\n");
    return 2;
  }
  argv += tokens ? 1 : 0;
  try {
    const gemkit::ChatTemplate tmpl = gemkit::ChatTemplate::from_folder(argv[1]);
    const auto tokenizer = tokens ? gemkit::load_tokenizer(argv[1]) : nullptr;
    const auto convs = nlohmann::json::parse(gemkit::read_text_file(argv[2]), nullptr, false);
    if (!convs.is_array()) gemkit::fail(argv[2], "expected a JSON array of conversations");
    for (size_t i = 0; i < convs.size(); ++i) {
      const std::string where = std::string(argv[2]) + ": [" + std::to_string(i) + "]";
      const auto& c = convs[i];
      if (!c.is_object() || !c.contains("messages") || !c["messages"].is_array())
        gemkit::fail(where, "expected {\"messages\": [...], \"add_generation_prompt\": bool}");
      std::vector<gemkit::ChatMessage> messages;
      for (const auto& m : c["messages"]) {
        if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
            !m["content"].is_string())
          gemkit::fail(where + ".messages", "expected {\"role\": string, \"content\": string} items");
        messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
      }
      const bool gen = c.value("add_generation_prompt", true);
      std::string line;
      if (tokens) {
        const gemkit::ChatTokens t = gemkit::encode_chat(*tokenizer, tmpl, messages, where);
        line = nlohmann::json({{"ids", t.ids}, {"mask", t.loss_mask}}).dump() + "\n";
      } else {
        line = nlohmann::json(tmpl.render(messages, gen)).dump() + "\n";
      }
      std::fwrite(line.data(), 1, line.size(), stdout);
    }
  } catch (const gemkit::Error& e) {
    std::fprintf(stderr, "render_chat: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

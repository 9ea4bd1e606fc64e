// render_chat FOLDER CONVERSATIONS.json: each conversation ({"messages": [{"role", "content"}],
// "add_generation_prompt": bool}) rendered with the folder's chat template
// (tokenizers/chat_template.h), printed as one JSON string per line.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/file_io.h"
#include "tokenizers/chat_template.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: render_chat FOLDER CONVERSATIONS.json\n");
    return 2;
  }
  try {
    const gemkit::ChatTemplate tmpl = gemkit::ChatTemplate::from_folder(argv[1]);
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
      const std::string line = nlohmann::json(tmpl.render(messages, gen)).dump() + "\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
    }
  } catch (const gemkit::Error& e) {
    std::fprintf(stderr, "render_chat: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

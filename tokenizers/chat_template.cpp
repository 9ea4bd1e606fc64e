#include "tokenizers/chat_template.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "tokenizers/unicode.h"

namespace gemkit {

namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Python / Jinja string-literal escapes; anything else is kept as written.
std::string unescape(const std::string& raw) {
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 == raw.size()) {
      out += raw[i];
      continue;
    }
    const char c = raw[++i];
    if (c == 'n') out += '\n';
    else if (c == 't') out += '\t';
    else if (c == 'r') out += '\r';
    else if (c == '\\' || c == '\'' || c == '"') out += c;
    else out += std::string("\\") + c;
  }
  return out;
}

// ChatML templates write their default system turn as one constant literal,
// '<|im_start|>system\n...<|im_end|>\n'; a literal that stops after "system\n" (the branch
// that writes the caller's own system message) is not one. The newline may be a real one or
// the escape \n, depending on how the template was stored.
std::string chatml_default_system(const std::string& src) {
  static const std::string head = "<|im_start|>system";
  for (size_t at = src.find(head); at != std::string::npos; at = src.find(head, at + 1)) {
    if (at == 0) continue;
    const char quote = src[at - 1];
    if (quote != '\'' && quote != '"') continue;
    size_t p = at + head.size();
    if (src.compare(p, 1, "\n") == 0) p += 1;
    else if (src.compare(p, 2, "\\n") == 0) p += 2;
    else continue;
    const size_t end = src.find("<|im_end|>", p);
    if (end == std::string::npos) continue;
    const std::string raw = src.substr(p, end - p);
    bool one_literal = true;
    for (size_t i = 0; i < raw.size() && one_literal; ++i) {
      if (raw[i] == '\\') ++i;
      else if (raw[i] == quote) one_literal = false;
    }
    if (one_literal) return unescape(raw);
  }
  return "";
}

// Jinja's |trim (Python str.strip()): Unicode whitespace and the separators U+001C..U+001F.
std::string trim(const std::string& s) {
  auto space = [](uint32_t c) { return unicode::is_whitespace(c) || (c >= 0x1C && c <= 0x1F); };
  size_t begin = 0, end = s.size();
  while (begin < end) {
    size_t i = begin;
    if (!space(unicode::decode_utf8(s, i))) break;
    begin = i;
  }
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t i = start;
    if (!space(unicode::decode_utf8(s, i)) || i != end) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

std::string token_text(const nlohmann::json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  return {};
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& source, std::string bos_token, std::string where)
    : bos_token_(std::move(bos_token)), where_(std::move(where)) {
  if (contains(source, "<|start_header_id|>") && contains(source, "<|eot_id|>")) {
    // Llama 3.1 and later always write a system turn dated by the caller's clock or a
    // template default; rendering that without evaluating the template would be a guess.
    if (contains(source, "Cutting Knowledge Date") || contains(source, "date_string"))
      fail(where_, "Llama 3.1-style chat template (dated system preamble) is not supported; "
                   "expected the Llama 3 template");
    family_ = Family::Llama3;
    end_of_turn_ = "<|eot_id|>";
  } else if (contains(source, "<|im_start|>") && contains(source, "<|im_end|>")) {
    if (contains(source, "<think>"))
      fail(where_, "ChatML template with <think> reasoning blocks (Qwen3-style) is not supported; "
                   "expected plain ChatML");
    family_ = Family::ChatML;
    end_of_turn_ = "<|im_end|>";
    default_system_ = chatml_default_system(source);
  } else {
    fail(where_, "unrecognised chat template: expected ChatML (<|im_start|> ... <|im_end|>) or "
                 "Llama 3 (<|start_header_id|> ... <|eot_id|>) markers");
  }
  // A template that writes bos_token expects its text at the start of the prompt.
  if (!contains(source, "bos_token")) bos_token_.clear();
}

ChatTemplate ChatTemplate::from_folder(const std::string& dir) {
  const std::string config_path = dir + "/tokenizer_config.json";
  nlohmann::json cfg = nlohmann::json::object();
  if (file_exists(config_path)) {
    try {
      cfg = nlohmann::json::parse(read_text_file(config_path));
    } catch (const nlohmann::json::exception& e) {
      fail(config_path, std::string("not valid JSON: ") + e.what());
    }
    if (!cfg.is_object()) fail(config_path, "expected a JSON object");
  }
  const std::string bos = token_text(cfg, "bos_token");
  const std::string jinja_path = dir + "/chat_template.jinja";
  if (file_exists(jinja_path)) return ChatTemplate(read_text_file(jinja_path), bos, jinja_path);

  const std::string where = config_path + ": chat_template";
  auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null())
    fail(where, "missing: the checkpoint has no chat template (expected it in tokenizer_config.json or "
                "chat_template.jinja)");
  if (it->is_string()) return ChatTemplate(it->get<std::string>(), bos, where);
  if (it->is_array()) {
    for (const auto& t : *it) {
      auto name = t.find("name"), text = t.find("template");
      if (t.is_object() && name != t.end() && *name == "default" && text != t.end() && text->is_string())
        return ChatTemplate(text->get<std::string>(), bos, where);
    }
    fail(where, "expected a template named \"default\" in the list, got none");
  }
  fail(where, std::string("expected a string or a list of {name, template}, got ") + it->type_name());
}

ChatTemplate::Rendered ChatTemplate::render_answers(const std::vector<ChatMessage>& messages) const {
  if (messages.empty()) fail(where_, "render: expected at least one message, got none");
  Rendered r;
  std::string& out = r.text;
  out = bos_token_;
  const auto message = [&](const std::string& header, const std::string& role, const std::string& content,
                           const std::string& after) {
    out += header;
    const size_t begin = out.size();
    out += content + end_of_turn_;
    if (role == "assistant") r.answers.emplace_back(begin, out.size());
    out += after;
  };
  if (family_ == Family::ChatML) {
    if (!default_system_.empty() && messages.front().role != "system")
      out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
    for (const auto& m : messages) message("<|im_start|>" + m.role + "\n", m.role, m.content, "\n");
  } else {
    for (const auto& m : messages)
      message("<|start_header_id|>" + m.role + "<|end_header_id|>\n\n", m.role, trim(m.content), "");
  }
  return r;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  std::string out = render_answers(messages).text;
  if (add_generation_prompt)
    out += family_ == Family::ChatML ? "<|im_start|>assistant\n" : "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

}  // namespace gemkit

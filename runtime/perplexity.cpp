#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/error.h"

namespace gemkit::runtime {
namespace {

void append_utf8(uint32_t c, std::string& out) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6)), out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12)), out += char(0x80 | ((c >> 6) & 0x3F)), out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18)), out += char(0x80 | ((c >> 12) & 0x3F)), out += char(0x80 | ((c >> 6) & 0x3F)),
        out += char(0x80 | (c & 0x3F));
  }
}

// The JSON string value of `"text":` in one JSONL record (the runtime has no JSON library: a
// record's other fields are skipped unread). False when the line has none or it is malformed.
bool json_text_field(const std::string& line, std::string& out) {
  size_t i = line.find("\"text\"");
  if (i == std::string::npos) return false;
  i = line.find_first_not_of(" \t", i + 6);
  if (i == std::string::npos || line[i] != ':') return false;
  i = line.find_first_not_of(" \t", i + 1);
  if (i == std::string::npos || line[i] != '"') return false;
  out.clear();
  auto hex4 = [&](size_t at, uint32_t& v) {
    if (at + 4 > line.size()) return false;
    v = 0;
    for (size_t k = at; k < at + 4; ++k) {
      const char h = line[k];
      v = v * 16 + uint32_t(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 99);
      if (v >= 0x10000) return false;
    }
    return true;
  };
  for (++i; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '"') return true;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i >= line.size()) return false;
    switch (line[i]) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        uint32_t v = 0, low = 0;
        if (!hex4(i + 1, v)) return false;
        i += 4;
        // A surrogate pair: \uD8xx\uDCxx is one code point.
        if (v >= 0xD800 && v < 0xDC00 && i + 6 < line.size() && line[i + 1] == '\\' && line[i + 2] == 'u' &&
            hex4(i + 3, low) && low >= 0xDC00 && low < 0xE000) {
          v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00);
          i += 6;
        }
        append_utf8(v, out);
        break;
      }
      default: out += line[i];  // \" \\ \/
    }
  }
  return false;
}

}  // namespace

std::vector<std::string> read_documents(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open");
  const bool jsonl = path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  std::vector<std::string> docs;
  std::string line, text;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (!jsonl) {
      docs.push_back(line);
      continue;
    }
    if (!json_text_field(line, text))
      fail(path, "line " + std::to_string(n) + ": expected a JSON record with a \"text\" string");
    docs.push_back(text);
  }
  return docs;
}

PerplexityResult perplexity(const Model& model, const std::vector<std::string>& documents, int64_t window, int threads,
                            int64_t max_tokens, const std::string& domain) {
  if (window < 2) fail("--context", "the perplexity window must be at least 2 tokens");
  const Tokenizer& tok = model.tokenizer();
  const int64_t V = model.config().vocab;
  Session session(model, window, threads);
  session.set_domain(domain);
  PerplexityResult r;
  for (const std::string& text : documents) {
    if (max_tokens > 0 && r.tokens >= max_tokens) break;
    std::vector<int32_t> ids;
    if (tok.special().add_bos && tok.special().bos >= 0) ids.push_back(tok.special().bos);
    const std::vector<int32_t> body = tok.encode(text, false);
    ids.insert(ids.end(), body.begin(), body.end());
    if (tok.special().eos >= 0) ids.push_back(tok.special().eos);
    for (size_t start = 0; start + 1 < ids.size(); start += size_t(window - 1)) {
      const size_t end = std::min(ids.size(), start + size_t(window));
      session.reset();
      const std::vector<float>& logits =
          session.eval(std::vector<int32_t>(ids.begin() + std::ptrdiff_t(start), ids.begin() + std::ptrdiff_t(end)), true);
      for (size_t t = start; t + 1 < end; ++t) {
        const float* row = logits.data() + (t - start) * size_t(V);
        const float mx = *std::max_element(row, row + V);
        double sum = 0;
        for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v] - mx));
        r.nll_sum += std::log(sum) + mx - row[ids[t + 1]];
        ++r.tokens;
      }
    }
    ++r.documents;
  }
  return r;
}

}  // namespace gemkit::runtime

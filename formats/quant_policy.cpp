#include "formats/quant_policy.h"

#include "core/error.h"

namespace gemkit {

bool glob_match(const std::string& pattern, const std::string& text) {
  // Iterative '*' matching with one backtrack point (linear for these short names).
  size_t p = 0, t = 0, star = std::string::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

QuantPolicy QuantPolicy::hybrid() {
  return QuantPolicy({{"*.self_attn.*", QuantType::Q8_0},
                      {"model.embed_tokens.weight", QuantType::Q8_0},
                      {"lm_head.weight", QuantType::Q8_0},
                      {"*.mlp.*", QuantType::Q4_0}});
}

QuantPolicy QuantPolicy::uniform(QuantType type) { return QuantPolicy({{"*", type}}); }

QuantPolicy QuantPolicy::parse(const std::vector<std::string>& rules, const std::string& where) {
  std::vector<QuantRule> out;
  for (size_t i = 0; i < rules.size(); ++i) {
    const std::string item = where + "[" + std::to_string(i) + "]";
    const size_t eq = rules[i].rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == rules[i].size())
      fail(item, "expected \"NAME_PATTERN=TYPE\" (e.g. \"*.mlp.*=q4_0\"), got \"" + rules[i] + "\"");
    out.push_back({rules[i].substr(0, eq), parse_quant_type(rules[i].substr(eq + 1), item)});
  }
  return QuantPolicy(std::move(out));
}

QuantType QuantPolicy::type_for(const std::string& name, const std::vector<int64_t>& shape) const {
  if (shape.size() != 2) return QuantType::F32;
  for (const QuantRule& r : rules_) {
    if (!glob_match(r.pattern, name)) continue;
    if (!quant_row_fits(r.type, shape[1])) return QuantType::F16;
    return r.type;
  }
  return QuantType::F32;
}

std::string QuantPolicy::describe() const {
  std::string s;
  for (const QuantRule& r : rules_) s += (s.empty() ? "" : ", ") + r.pattern + "=" + quant_type_name(r.type);
  return s.empty() ? "all f32" : s;
}

}  // namespace gemkit

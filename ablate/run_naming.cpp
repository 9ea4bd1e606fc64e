#include "ablate/run_naming.h"

#include <cctype>

namespace gemkit::ablate {

std::string name_part(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || std::string("=.-+_").find(c) != std::string::npos) ? c : '_';
  return out;
}

std::string run_name(const std::string& method, const eval::GridCell& cell, int64_t seed) {
  std::string name = method;
  for (const auto& [k, v] : cell) name += "__" + name_part(k) + "=" + name_part(v);
  return name + "__seed" + std::to_string(seed);
}

}  // namespace gemkit::ablate

// gemkit's one error type. Every message names the file (or object), the field and
// what was expected, so a user can fix bad input without reading the code.
#pragma once
#include <stdexcept>
#include <string>

namespace gemkit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "where: what" -- where is a file path, tensor name or recipe key.
[[noreturn]] inline void fail(const std::string& where, const std::string& what) {
  throw Error(where + ": " + what);
}

}  // namespace gemkit

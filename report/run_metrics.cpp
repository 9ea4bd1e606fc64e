#include "report/run_metrics.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/error.h"

namespace gemkit::eval {

RunMetrics read_run_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open for reading (a training run writes RUN_DIR/metrics.jsonl)");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  RunMetrics m;
  m.path = path;
  for (size_t n = 0; n < lines.size(); ++n) {
    const std::string& line = lines[n];
    const std::string where = path + ":" + std::to_string(n + 1);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      if (n + 1 == lines.size()) break;  // the line a killed run was writing
      fail(where, "not valid JSON");
    }
    if (!j.is_object()) fail(where, "expected a JSON object");
    if (!j.contains("step") || !j["step"].is_number()) fail(where, "missing numeric field \"step\"");
    const double step = j["step"].get<double>();
    for (const auto& [name, value] : j.items()) {
      if (name == "step" || !value.is_number()) continue;
      const double v = value.get<double>();
      if (!std::isfinite(v)) continue;
      if (!m.series.count(name)) m.order.push_back(name);
      m.series[name].steps.push_back(step);
      m.series[name].values.push_back(v);
    }
  }
  if (m.series.empty()) fail(path, "no numeric metrics besides \"step\"");
  return m;
}

}  // namespace gemkit::eval

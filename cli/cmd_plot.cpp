// gemkit plot: line charts (SVG) of a training run's metrics.jsonl, one panel per metric;
// a metric's validation counterpart (val_<name>) shares its panel.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "report/run_metrics.h"
#include "report/svg_plot.h"

namespace gemkit::cli {
namespace {

struct PlotArgs {
  std::string run_dir, out, metrics;
  bool log_loss = false;
};

void run_plot(const PlotArgs& a) {
  namespace fs = std::filesystem;
  const std::string path = fs::is_directory(a.run_dir) ? (fs::path(a.run_dir) / "metrics.jsonl").string() : a.run_dir;
  const eval::RunMetrics m = eval::read_run_metrics(path);

  std::vector<std::string> wanted;
  if (!a.metrics.empty()) {
    std::stringstream ss(a.metrics);
    for (std::string name; std::getline(ss, name, ',');)
      if (!name.empty()) wanted.push_back(name);
    for (const std::string& name : wanted)
      if (!m.series.count(name)) {
        std::string have;
        for (const std::string& n : m.order) have += (have.empty() ? "" : ", ") + n;
        fail("--metrics " + name, "not in " + path + " (it has " + have + ")");
      }
  } else {
    // The usual training figures first (JSON objects come back with sorted keys), then the
    // rest; val_x goes into x's panel when both are there.
    std::vector<std::string> names;
    for (const char* n : {"loss", "lr", "grad_norm", "tokens_per_s"})
      if (m.series.count(n)) names.push_back(n);
    for (const std::string& n : m.order)
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    for (const std::string& name : names)
      if (!(name.rfind("val_", 0) == 0 && m.series.count(name.substr(4)))) wanted.push_back(name);
  }
  std::vector<eval::PlotPanel> panels;
  for (const std::string& name : wanted) {
    eval::PlotPanel p;
    p.title = name;
    p.y_label = name;
    p.log_y = a.log_loss && name.find("loss") != std::string::npos;
    const eval::MetricSeries& s = m.series.at(name);
    p.series.push_back({name, s.steps, s.values});
    auto val = m.series.find("val_" + name);
    if (val != m.series.end()) p.series.push_back({val->first, val->second.steps, val->second.values});
    panels.push_back(std::move(p));
  }
  eval::PlotOptions o;
  o.title = "gemkit run: " + fs::path(path).parent_path().filename().string();
  const std::string out = a.out.empty() ? (fs::path(path).parent_path() / "metrics.svg").string() : a.out;
  write_text_file_atomic(out, eval::render_svg(panels, o));
  std::printf("wrote %s (%zu panels)\n", out.c_str(), panels.size());
}

}  // namespace

void add_plot_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("plot", "draw a training run's metrics.jsonl as SVG line charts");
  auto a = std::make_shared<PlotArgs>();
  cmd->add_option("RUN_DIR", a->run_dir, "run folder holding metrics.jsonl (or the file itself)")->required();
  cmd->add_option("--out,-o", a->out, "SVG file (default RUN_DIR/metrics.svg)");
  cmd->add_option("--metrics", a->metrics, "comma-separated fields to plot (default: all numeric fields)");
  cmd->add_flag("--log-loss", a->log_loss, "logarithmic y axis for loss panels");
  cmd->callback([a] { run_plot(*a); });
}

}  // namespace gemkit::cli

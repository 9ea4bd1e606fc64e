// Line charts as SVG, written by hand (no plotting library): panels stacked vertically, each
// with axes, "nice" ticks (1/2/5 x 10^k), tick labels, axis titles and a legend. Torch-free.
#pragma once
#include <string>
#include <vector>

namespace gemkit::eval {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;  // same length; non-finite points are skipped
};

struct PlotPanel {
  std::string title;
  std::string x_label = "step";
  std::string y_label;
  bool log_y = false;  // log10 axis (needs positive values; others are dropped)
  std::vector<PlotSeries> series;
};

struct PlotOptions {
  std::string title;
  int width = 900;
  int panel_height = 260;
};

// Ticks covering [lo, hi]: about `target` values at a step of 1, 2 or 5 times a power of ten.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
// Short tick text: 0.0003 -> "3e-04", 12000 -> "12k", 0.25 -> "0.25".
std::string tick_label(double v);
// Escapes &, <, >, " for SVG text and attributes.
std::string xml_escape(const std::string& s);

std::string render_svg(const std::vector<PlotPanel>& panels, const PlotOptions& options = {});

}  // namespace gemkit::eval

// Charts as SVG, written by hand (no plotting library): line charts (panels stacked vertically,
// each with axes, "nice" ticks (1/2/5 x 10^k), tick labels, axis titles and a legend; optionally
// markers with error bars, a scatter plot), bar charts with interval whiskers, and heatmaps.
// Torch-free.
#pragma once
#include <string>
#include <vector>

namespace gemkit::eval {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;  // same length; non-finite points are skipped
  bool markers = false;      // a dot per point and no line (scatter)
  // Optional error bars, each empty or as long as x: interval bounds per point (non-finite: none).
  std::vector<double> x_low{}, x_high{}, y_low{}, y_high{};
  // Style: a palette colour (7 colour-blind-safe colours) and a shape (markers: circle, square,
  // triangle, diamond; lines: solid, dashed, dotted, dash-dot), each an index. -1 takes them from
  // the series' position in its panel, colours first, so up to 28 series look different.
  int colour = -1, shape = -1;
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

// Line charts and scatter plots; the legend (right of each panel) widens the chart to fit the
// longest series name, and the panels grow to fit a long legend.
std::string render_svg(const std::vector<PlotPanel>& panels, const PlotOptions& options = {});

// One bar per label, with an optional interval whisker (low/high empty or one per label;
// non-finite bounds: none). Bars start at 0; panels are stacked like render_svg's.
struct BarPanel {
  std::string title;
  std::string y_label;
  std::vector<std::string> labels;
  std::vector<double> values, low, high;  // non-finite values: no bar ("n/a")
  std::vector<int> colours{};             // palette index per bar; empty: by position
};
std::string render_bars_svg(const std::vector<BarPanel>& panels, const PlotOptions& options = {});

// A matrix of values as coloured cells (blue below 0, white at 0, red above; scaled by the
// largest magnitude), each cell labelled with its value; non-finite cells are grey, "n/a".
struct Heatmap {
  std::string title;
  std::vector<std::string> rows, columns;
  std::vector<std::vector<double>> values;  // [row][column]
  bool percent = false;                     // cell text as 100 x value with "%"
  std::string note;                         // a line under the matrix
};
std::string render_heatmap_svg(const Heatmap& heatmap);

}  // namespace gemkit::eval

#include "report/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"

namespace gemkit::eval {
namespace {

// Colour-blind-safe palette (Okabe-Ito).
const char* const kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"};

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// The document's opening: size, white background and the title (when not empty) at the top.
std::string svg_open(double width, double height, const std::string& title) {
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
       "\" viewBox=\"0 0 " + num(width) + " " + num(height) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!title.empty())
    s += "<text x=\"" + num(width / 2.0) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" + xml_escape(title) +
         "</text>\n";
  return s;
}

// `extra`: further attributes, e.g. " stroke-width=\"2\"".
std::string svg_line(double x1, double y1, double x2, double y2, const std::string& stroke, const std::string& extra = "") {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\" stroke=\"" +
         stroke + "\"" + extra + "/>\n";
}

double at_or_nan(const std::vector<double>& v, size_t i) { return i < v.size() ? v[i] : NAN; }

constexpr int kPaletteSize = sizeof kColours / sizeof kColours[0];
constexpr int kShapes = 4;

const char* palette(size_t index) { return kColours[index % kPaletteSize]; }

// A series' colour and shape: its own, else from its position k (colour k mod 7, then shape).
const char* colour_of(const PlotSeries& s, size_t k) { return palette(s.colour >= 0 ? size_t(s.colour) : k); }
int shape_of(const PlotSeries& s, size_t k) { return (s.shape >= 0 ? s.shape : int(k / kPaletteSize)) % kShapes; }

// Marker of shape 0-3 (circle, square, triangle, diamond) centred on (x, y), about r across.
std::string svg_marker(int shape, double x, double y, double r, const std::string& fill) {
  const auto polygon = [&](std::initializer_list<std::pair<double, double>> pts) {
    std::string s = "<polygon fill=\"" + fill + "\" points=\"";
    for (const auto& [dx, dy] : pts) s += num(x + dx * r) + "," + num(y + dy * r) + " ";
    s.back() = '"';
    return s + "/>\n";
  };
  switch (shape) {
    case 1: return polygon({{-0.85, -0.85}, {0.85, -0.85}, {0.85, 0.85}, {-0.85, 0.85}});
    case 2: return polygon({{0, -1.2}, {1.1, 0.8}, {-1.1, 0.8}});
    case 3: return polygon({{0, -1.25}, {1.1, 0}, {0, 1.25}, {-1.1, 0}});
    default: return "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"" + num(r) + "\" fill=\"" + fill + "\"/>\n";
  }
}

// Stroke pattern of a line series of shape 0-3 (solid, dashed, dotted, dash-dot).
std::string dash_attribute(int shape) {
  const char* const dashes[kShapes] = {"", "7,4", "2,3", "8,3,2,3"};
  return shape == 0 ? "" : std::string(" stroke-dasharray=\"") + dashes[shape] + "\"";
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  // k * step, not repeated addition, so ticks do not drift (0.6, not 0.6000000000000001).
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1) {
    const double t = k * step;
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}

std::string tick_label(double v) {
  char buf[32];
  const double a = std::fabs(v);
  if (v == 0) return "0";
  if (a >= 1e6) std::snprintf(buf, sizeof buf, "%gM", v / 1e6);
  else if (a >= 1e4) std::snprintf(buf, sizeof buf, "%gk", v / 1e3);
  else if (a < 1e-3) std::snprintf(buf, sizeof buf, "%.0e", v);
  else std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_svg(const std::vector<PlotPanel>& panels, const PlotOptions& o) {
  if (panels.empty()) fail("svg_plot", "nothing to plot");
  // The legend's width fits the longest name (about 6.5 px a character at this font size) and
  // the panels are tall enough for the longest legend (18 px an entry), so no name is cut off.
  size_t longest_name = 0, most_series = 0;
  for (const PlotPanel& panel : panels) {
    most_series = std::max(most_series, panel.series.size());
    for (const PlotSeries& ser : panel.series) longest_name = std::max(longest_name, ser.name.size());
  }
  const double left = 80, top_title = o.title.empty() ? 10 : 40, panel_gap = 20;
  const double plot_w = o.width - left - 170, right = std::max(170.0, 56 + 6.5 * double(longest_name));
  const double panel_h = std::max(double(o.panel_height), 22 + 36 + 16 + 18 * double(most_series));
  const double width = left + plot_w + right;
  const double height = top_title + double(panels.size()) * (panel_h + panel_gap) + 10;
  std::string s = svg_open(width, height, o.title);

  for (size_t p = 0; p < panels.size(); ++p) {
    const PlotPanel& panel = panels[p];
    const double y0 = top_title + double(p) * (panel_h + panel_gap);  // panel top
    const double px = left, py = y0 + 22, pw = plot_w, ph = panel_h - 22 - 36;  // plot area
    auto ty = [&](double v) { return panel.log_y ? std::log10(v) : v; };
    double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
    for (const PlotSeries& ser : panel.series)
      for (size_t i = 0; i < ser.x.size() && i < ser.y.size(); ++i) {
        if (!std::isfinite(ser.x[i]) || !std::isfinite(ser.y[i]) || (panel.log_y && ser.y[i] <= 0)) continue;
        xmin = std::min(xmin, ser.x[i]);
        xmax = std::max(xmax, ser.x[i]);
        ymin = std::min(ymin, ty(ser.y[i]));
        ymax = std::max(ymax, ty(ser.y[i]));
        for (double b : {at_or_nan(ser.x_low, i), at_or_nan(ser.x_high, i)})
          if (std::isfinite(b)) xmin = std::min(xmin, b), xmax = std::max(xmax, b);
        for (double b : {at_or_nan(ser.y_low, i), at_or_nan(ser.y_high, i)})
          if (std::isfinite(b) && !(panel.log_y && b <= 0)) ymin = std::min(ymin, ty(b)), ymax = std::max(ymax, ty(b));
      }
    s += "<g>\n<text x=\"" + num(px + pw / 2) + "\" y=\"" + num(y0 + 14) +
         "\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">" + xml_escape(panel.title) + "</text>\n";
    s += "<rect x=\"" + num(px) + "\" y=\"" + num(py) + "\" width=\"" + num(pw) + "\" height=\"" + num(ph) +
         "\" fill=\"none\" stroke=\"#444\"/>\n";
    if (!std::isfinite(xmin)) {
      s += "<text x=\"" + num(px + pw / 2) + "\" y=\"" + num(py + ph / 2) +
           "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n</g>\n";
      continue;
    }
    if (xmax == xmin) {
      xmin -= 1;
      xmax += 1;
    } else if (std::any_of(panel.series.begin(), panel.series.end(), [](const PlotSeries& ser) { return ser.markers; })) {
      const double pad = (xmax - xmin) * 0.04;  // markers at the extremes stay inside the frame
      xmin -= pad;
      xmax += pad;
    }
    if (ymax == ymin) {
      const double pad = ymin == 0 ? 1 : std::fabs(ymin) * 0.05;
      ymin -= pad;
      ymax += pad;
    } else {
      const double pad = (ymax - ymin) * 0.05;  // keep lines off the frame
      ymin -= pad;
      ymax += pad;
    }
    auto sx = [&](double x) { return px + (x - xmin) / (xmax - xmin) * pw; };
    auto sy = [&](double y) { return py + ph - (y - ymin) / (ymax - ymin) * ph; };
    // Grid, ticks and labels.
    for (double t : nice_ticks(xmin, xmax, 8)) {
      const double x = sx(t);
      s += "<line x1=\"" + num(x) + "\" y1=\"" + num(py) + "\" x2=\"" + num(x) + "\" y2=\"" + num(py + ph) +
           "\" stroke=\"#e4e4e4\"/>\n";
      s += "<line x1=\"" + num(x) + "\" y1=\"" + num(py + ph) + "\" x2=\"" + num(x) + "\" y2=\"" + num(py + ph + 4) +
           "\" stroke=\"#444\"/>\n";
      s += "<text x=\"" + num(x) + "\" y=\"" + num(py + ph + 16) + "\" text-anchor=\"middle\">" +
           xml_escape(tick_label(t)) + "</text>\n";
    }
    for (double t : nice_ticks(ymin, ymax, 5)) {
      const double y = sy(t);
      s += "<line x1=\"" + num(px) + "\" y1=\"" + num(y) + "\" x2=\"" + num(px + pw) + "\" y2=\"" + num(y) +
           "\" stroke=\"#e4e4e4\"/>\n";
      s += "<line x1=\"" + num(px - 4) + "\" y1=\"" + num(y) + "\" x2=\"" + num(px) + "\" y2=\"" + num(y) +
           "\" stroke=\"#444\"/>\n";
      s += "<text x=\"" + num(px - 7) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\">" +
           xml_escape(panel.log_y ? tick_label(std::pow(10.0, t)) : tick_label(t)) + "</text>\n";
    }
    s += "<text x=\"" + num(px + pw / 2) + "\" y=\"" + num(py + ph + 31) + "\" text-anchor=\"middle\">" +
         xml_escape(panel.x_label) + "</text>\n";
    s += "<text transform=\"translate(" + num(px - 58) + "," + num(py + ph / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + xml_escape(panel.y_label + (panel.log_y ? " (log)" : "")) +
         "</text>\n";
    // Lines (a single point is drawn as a dot) or markers, with error bars, clipped to the plot area by construction.
    for (size_t k = 0; k < panel.series.size(); ++k) {
      const PlotSeries& ser = panel.series[k];
      const char* colour = colour_of(ser, k);
      const int shape = shape_of(ser, k);
      std::string pts;
      size_t n = 0;
      for (size_t i = 0; i < ser.x.size() && i < ser.y.size(); ++i) {
        if (!std::isfinite(ser.x[i]) || !std::isfinite(ser.y[i]) || (panel.log_y && ser.y[i] <= 0)) continue;
        const double x = sx(ser.x[i]), y = sy(ty(ser.y[i]));
        pts += (n++ ? " " : "") + num(x) + "," + num(y);
        const double xl = at_or_nan(ser.x_low, i), xh = at_or_nan(ser.x_high, i);
        const double yl = at_or_nan(ser.y_low, i), yh = at_or_nan(ser.y_high, i);
        if (std::isfinite(xl) && std::isfinite(xh)) s += svg_line(sx(xl), y, sx(xh), y, colour);
        if (std::isfinite(yl) && std::isfinite(yh) && !(panel.log_y && (yl <= 0 || yh <= 0)))
          s += svg_line(x, sy(ty(yl)), x, sy(ty(yh)), colour);
        if (ser.markers) s += svg_marker(shape, x, y, 4.5, colour);
      }
      if (n == 1 && !ser.markers) {
        const size_t comma = pts.find(',');
        s += "<circle cx=\"" + pts.substr(0, comma) + "\" cy=\"" + pts.substr(comma + 1) + "\" r=\"3\" fill=\"" +
             colour + "\"/>\n";
      } else if (n > 1 && !ser.markers) {
        s += "<polyline fill=\"none\" stroke=\"" + std::string(colour) + "\" stroke-width=\"1.5\"" + dash_attribute(shape) +
             " points=\"" + pts + "\"/>\n";
      }
      // Legend entry, right of the plot.
      const double ly = py + 12 + double(k) * 18;
      if (ser.markers)
        s += svg_line(px + pw + 12, ly - 4, px + pw + 36, ly - 4, colour) + svg_marker(shape, px + pw + 24, ly - 4, 4.5, colour);
      else
        s += svg_line(px + pw + 12, ly - 4, px + pw + 36, ly - 4, colour, " stroke-width=\"2\"" + dash_attribute(shape));
      s += "<text x=\"" + num(px + pw + 42) + "\" y=\"" + num(ly) + "\">" + xml_escape(ser.name) + "</text>\n";
    }
    s += "</g>\n";
  }
  s += "</svg>\n";
  return s;
}

std::string render_bars_svg(const std::vector<BarPanel>& panels, const PlotOptions& o) {
  if (panels.empty()) fail("svg_plot", "nothing to plot");
  const double left = 80, right = 30, top_title = o.title.empty() ? 10 : 40, panel_gap = 20, label_h = 70;
  const double pw = o.width - left - right, panel_h = o.panel_height + label_h;
  const double height = top_title + double(panels.size()) * (panel_h + panel_gap) + 10;
  std::string s = svg_open(o.width, height, o.title);
  for (size_t p = 0; p < panels.size(); ++p) {
    const BarPanel& panel = panels[p];
    const double y0 = top_title + double(p) * (panel_h + panel_gap);
    const double px = left, py = y0 + 22, ph = panel_h - 22 - label_h;
    double lo = 0, hi = 0;
    for (size_t i = 0; i < panel.values.size(); ++i)
      for (double v : {panel.values[i], at_or_nan(panel.low, i), at_or_nan(panel.high, i)})
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (hi == lo) hi = lo + 1;
    const double pad = (hi - lo) * 0.05;
    hi += pad;
    if (lo < 0) lo -= pad;
    auto sy = [&](double v) { return py + ph - (v - lo) / (hi - lo) * ph; };
    s += "<g>\n<text x=\"" + num(px + pw / 2) + "\" y=\"" + num(y0 + 14) +
         "\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">" + xml_escape(panel.title) + "</text>\n";
    for (double t : nice_ticks(lo, hi, 5)) {
      s += svg_line(px, sy(t), px + pw, sy(t), "#e4e4e4");
      s += "<text x=\"" + num(px - 7) + "\" y=\"" + num(sy(t) + 4) + "\" text-anchor=\"end\">" + xml_escape(tick_label(t)) +
           "</text>\n";
    }
    s += "<rect x=\"" + num(px) + "\" y=\"" + num(py) + "\" width=\"" + num(pw) + "\" height=\"" + num(ph) +
         "\" fill=\"none\" stroke=\"#444\"/>\n";
    s += svg_line(px, sy(0), px + pw, sy(0), "#444");
    s += "<text transform=\"translate(" + num(px - 58) + "," + num(py + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         xml_escape(panel.y_label) + "</text>\n";
    const double slot = pw / double(std::max<size_t>(1, panel.labels.size()));
    for (size_t i = 0; i < panel.labels.size(); ++i) {
      const double cx = px + slot * (double(i) + 0.5), bw = std::min(60.0, slot * 0.6);
      const double v = at_or_nan(panel.values, i);
      const char* colour = palette(i < panel.colours.size() ? size_t(panel.colours[i]) : i);
      if (std::isfinite(v)) {
        s += "<rect x=\"" + num(cx - bw / 2) + "\" y=\"" + num(std::min(sy(v), sy(0))) + "\" width=\"" + num(bw) +
             "\" height=\"" + num(std::fabs(sy(v) - sy(0))) + "\" fill=\"" + colour + "\"/>\n";
        const double l = at_or_nan(panel.low, i), h = at_or_nan(panel.high, i);
        if (std::isfinite(l) && std::isfinite(h)) {
          s += svg_line(cx, sy(l), cx, sy(h), "#000");
          s += svg_line(cx - 5, sy(l), cx + 5, sy(l), "#000");
          s += svg_line(cx - 5, sy(h), cx + 5, sy(h), "#000");
        }
      } else {
        s += "<text x=\"" + num(cx) + "\" y=\"" + num(sy(0) - 4) + "\" text-anchor=\"middle\" fill=\"#888\">n/a</text>\n";
      }
      s += "<text transform=\"translate(" + num(cx) + "," + num(py + ph + 14) +
           ") rotate(-25)\" text-anchor=\"end\">" + xml_escape(panel.labels[i]) + "</text>\n";
    }
    s += "</g>\n";
  }
  return s + "</svg>\n";
}

std::string render_heatmap_svg(const Heatmap& h) {
  if (h.rows.empty() || h.columns.empty()) fail("svg_plot", "heatmap: nothing to plot");
  size_t longest = 0;
  for (const std::string& r : h.rows) longest = std::max(longest, r.size());
  const double cell_w = 76, cell_h = 28, left = 20 + 6.5 * double(longest), top = (h.title.empty() ? 10 : 40) + 80;
  const double width = std::max(400.0, left + cell_w * double(h.columns.size()) + 20);
  const double height = top + cell_h * double(h.rows.size()) + (h.note.empty() ? 16 : 36);
  double scale = 0;
  for (const auto& row : h.values)
    for (double v : row)
      if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
  std::string s = svg_open(width, height, h.title);
  for (size_t c = 0; c < h.columns.size(); ++c)
    s += "<text transform=\"translate(" + num(left + cell_w * (double(c) + 0.5)) + "," + num(top - 6) +
         ") rotate(-40)\">" + xml_escape(h.columns[c]) + "</text>\n";
  for (size_t r = 0; r < h.rows.size(); ++r) {
    const double y = top + cell_h * double(r);
    s += "<text x=\"" + num(left - 6) + "\" y=\"" + num(y + cell_h / 2 + 4) + "\" text-anchor=\"end\">" +
         xml_escape(h.rows[r]) + "</text>\n";
    for (size_t c = 0; c < h.columns.size(); ++c) {
      const double v = r < h.values.size() ? at_or_nan(h.values[r], c) : NAN;
      std::string fill = "#dddddd", text = "n/a";
      if (std::isfinite(v)) {
        // White at 0, towards Okabe-Ito vermillion (above 0) or blue (below 0).
        const double t = scale > 0 ? std::fabs(v) / scale : 0;
        const int rgb[2][3] = {{0, 114, 178}, {213, 94, 0}};
        const int* target = rgb[v > 0];
        char buf[32];
        std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(255 + t * (target[0] - 255)), int(255 + t * (target[1] - 255)),
                      int(255 + t * (target[2] - 255)));
        fill = buf;
        std::snprintf(buf, sizeof buf, h.percent ? "%+.1f%%" : "%.3g", h.percent ? 100 * v : v);
        text = buf;
      }
      const double x = left + cell_w * double(c);
      s += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(cell_w) + "\" height=\"" + num(cell_h) +
           "\" fill=\"" + fill + "\" stroke=\"white\"/>\n";
      s += "<text x=\"" + num(x + cell_w / 2) + "\" y=\"" + num(y + cell_h / 2 + 4) + "\" text-anchor=\"middle\">" +
           xml_escape(text) + "</text>\n";
    }
  }
  if (!h.note.empty())
    s += "<text x=\"10\" y=\"" + num(height - 12) + "\" fill=\"#444\">" + xml_escape(h.note) + "</text>\n";
  return s + "</svg>\n";
}

}  // namespace gemkit::eval

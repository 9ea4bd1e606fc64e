#include "eval/svg_plot.h"

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
  const double left = 80, right = 170, top_title = o.title.empty() ? 10 : 40, panel_gap = 20;
  const double plot_w = o.width - left - right, panel_h = o.panel_height;
  const double height = top_title + double(panels.size()) * (panel_h + panel_gap) + 10;
  std::string s;
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(o.width) + "\" height=\"" +
       num(height) + "\" viewBox=\"0 0 " + std::to_string(o.width) + " " + num(height) +
       "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!o.title.empty())
    s += "<text x=\"" + num(o.width / 2.0) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" +
         xml_escape(o.title) + "</text>\n";

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
    if (xmax == xmin) { xmin -= 1; xmax += 1; }
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
    // Lines (a single point is drawn as a dot), clipped to the plot area by construction.
    for (size_t k = 0; k < panel.series.size(); ++k) {
      const PlotSeries& ser = panel.series[k];
      const char* colour = kColours[k % (sizeof kColours / sizeof kColours[0])];
      std::string pts;
      size_t n = 0;
      for (size_t i = 0; i < ser.x.size() && i < ser.y.size(); ++i) {
        if (!std::isfinite(ser.x[i]) || !std::isfinite(ser.y[i]) || (panel.log_y && ser.y[i] <= 0)) continue;
        pts += (n++ ? " " : "") + num(sx(ser.x[i])) + "," + num(sy(ty(ser.y[i])));
      }
      if (n == 1) {
        const size_t comma = pts.find(',');
        s += "<circle cx=\"" + pts.substr(0, comma) + "\" cy=\"" + pts.substr(comma + 1) + "\" r=\"3\" fill=\"" +
             colour + "\"/>\n";
      } else if (n > 1) {
        s += "<polyline fill=\"none\" stroke=\"" + std::string(colour) + "\" stroke-width=\"1.5\" points=\"" + pts +
             "\"/>\n";
      }
      // Legend entry, right of the plot.
      const double ly = py + 12 + double(k) * 18;
      s += "<line x1=\"" + num(px + pw + 12) + "\" y1=\"" + num(ly - 4) + "\" x2=\"" + num(px + pw + 36) + "\" y2=\"" +
           num(ly - 4) + "\" stroke=\"" + colour + "\" stroke-width=\"2\"/>\n";
      s += "<text x=\"" + num(px + pw + 42) + "\" y=\"" + num(ly) + "\">" + xml_escape(ser.name) + "</text>\n";
    }
    s += "</g>\n";
  }
  s += "</svg>\n";
  return s;
}

}  // namespace gemkit::eval

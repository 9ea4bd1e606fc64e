#include "report/pareto.h"

#include <algorithm>
#include <cmath>

namespace gemkit::eval {
namespace {

bool finite(const TradeoffPoint& p) { return std::isfinite(p.gain) && std::isfinite(p.rise); }

bool dominates(const TradeoffPoint& q, const TradeoffPoint& p) {
  return q.gain >= p.gain && q.rise <= p.rise && (q.gain > p.gain || q.rise < p.rise);
}

}  // namespace

std::vector<size_t> pareto_front(const std::vector<TradeoffPoint>& points) {
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i) {
    if (!finite(points[i])) continue;
    bool dominated = false;
    for (size_t j = 0; j < points.size() && !dominated; ++j)
      dominated = j != i && finite(points[j]) && dominates(points[j], points[i]);
    // Equal points: keep the first only.
    for (size_t j = 0; j < i && !dominated; ++j)
      dominated = finite(points[j]) && points[j].gain == points[i].gain && points[j].rise == points[i].rise;
    if (!dominated) front.push_back(i);
  }
  std::sort(front.begin(), front.end(), [&](size_t a, size_t b) { return points[a].gain < points[b].gain; });
  return front;
}

double frontier_rise(const std::vector<TradeoffPoint>& points, double gain) {
  std::vector<TradeoffPoint> with_base = points;
  with_base.push_back({0.0, 0.0});
  std::vector<TradeoffPoint> line;
  for (size_t i : pareto_front(with_base)) line.push_back(with_base[i]);
  if (!std::isfinite(gain) || gain > line.back().gain) return NAN;
  if (gain <= line.front().gain) return line.front().rise;  // that point reaches any lower gain
  for (size_t k = 1; k < line.size(); ++k)
    if (gain <= line[k].gain) {
      const TradeoffPoint& a = line[k - 1];
      const TradeoffPoint& b = line[k];
      const double t = (gain - a.gain) / (b.gain - a.gain);  // 1 exactly at b: a point on the line is not below it
      return a.rise + (b.rise - a.rise) * t;
    }
  return NAN;  // unreachable: gain <= line.back().gain
}

FrontierPosition frontier_position(const TradeoffPoint& p, const std::vector<TradeoffPoint>& others) {
  FrontierPosition out;
  out.frontier_rise = frontier_rise(others, p.gain);
  out.rise_ratio = std::isfinite(out.frontier_rise) && out.frontier_rise > 0 && std::isfinite(p.rise)
                       ? p.rise / out.frontier_rise
                       : NAN;
  if (!finite(p)) return out;
  if (std::isfinite(out.frontier_rise)) {
    out.beyond = p.rise < out.frontier_rise;
  } else {
    out.beyond = true;
    for (const TradeoffPoint& q : others) out.beyond = out.beyond && !(finite(q) && dominates(q, p));
  }
  return out;
}

}  // namespace gemkit::eval

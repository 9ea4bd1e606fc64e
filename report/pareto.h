// The trade-off plane of docs/design/gem-method.md section 6: each method as a point (domain NLL
// gain G, mean off-target NLL rise R_off), the Pareto frontier over a set of points, and where a
// method lies against the frontier of the others. Torch-free.
//
// A point dominates another when it gains at least as much and forgets no more (and differs in
// one of the two). The frontier of a set is its undominated points plus the base model (0, 0),
// joined by straight lines in order of gain: the rise the others need to reach a gain g is read
// off that line. The line is the stricter comparison for a challenger: it credits the others
// with every mixture between two of their points, which an interpolation sweep (WiSE-FT) nearly
// provides. Beyond the others' largest gain their frontier is undefined.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace gemkit::eval {

struct TradeoffPoint {
  double gain = 0;  // G: NLL fall on the target (nats)
  double rise = 0;  // R_off: mean NLL rise off target (nats)
};

// Indices of `points` on their Pareto frontier (points with a non-finite coordinate are left
// out), in order of increasing gain.
std::vector<size_t> pareto_front(const std::vector<TradeoffPoint>& points);

// The frontier line of `points` (with the base (0, 0) added) at `gain`: NaN beyond the largest
// gain among them; 0 at or below gain 0.
double frontier_rise(const std::vector<TradeoffPoint>& points, double gain);

// Where `p` lies against the frontier of `others`.
struct FrontierPosition {
  double frontier_rise = 0;  // the others' frontier at p's gain (NaN beyond their largest gain)
  double rise_ratio = 0;     // p.rise / frontier_rise (NaN when frontier_rise <= 0 or undefined)
  bool beyond = false;       // below the others' frontier, or past their largest gain with no
                             // other point dominating it
};
FrontierPosition frontier_position(const TradeoffPoint& p, const std::vector<TradeoffPoint>& others);

}  // namespace gemkit::eval

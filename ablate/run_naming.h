// The names of an ablation's run folders: OUT/runs/<method>[__key=value...]__seed<s>, e.g.
// "gem__train.lr=1e-3__seed0". A name is stable across invocations, so a grid started again
// finds its finished and interrupted runs. Torch-free.
#pragma once
#include <cstdint>
#include <string>

#include "report/ablation_report.h"

namespace gemkit::ablate {

// A value as part of a folder name: path separators and odd characters become '_'.
std::string name_part(const std::string& s);

// <method>__<key>=<value>... (in grid order)__seed<seed>, keys and values through name_part.
std::string run_name(const std::string& method, const eval::GridCell& cell, int64_t seed);

}  // namespace gemkit::ablate

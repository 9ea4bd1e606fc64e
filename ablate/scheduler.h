// The scheduler of `gemkit ablate`: runs a Plan (ablate/plan.h). It evaluates the base model,
// then works through the runs with --jobs workers, each run in its folder OUT/runs/<name>
// (ablate/run_naming.h) as child processes of this binary (core/process.h): `gemkit train ...
// --resume`, `gemkit eval` of the final checkpoint, `gemkit export compact` and `gemkit-run
// --bench` of the export (RUN/deploy.json; not with --no-deploy). A run whose folder holds DONE
// is skipped; an interrupted one continues from its last checkpoint; one trained with other
// settings than the recipe gives now is not run (nothing is removed); a failing one is reported
// (RUN/log.txt) and the others go on. Progress lines and the time left (ablate/grid_estimate.h)
// go to stdout; at the end the report (report/ablation_report.h) is written into OUT.
#pragma once
#include "ablate/plan.h"

namespace gemkit::ablate {

// Plans and runs the whole ablation, or with report_only writes the report of the runs finished
// so far and starts nothing. Throws gemkit::Error when planning fails, when the base model
// cannot be evaluated, or at the end naming the runs that failed (after writing the report).
void run_ablation(const AblateOptions& options);

}  // namespace gemkit::ablate

#!/usr/bin/env python3
"""Disk faults at every write of gemkit's outputs (ctest `faults`).

Each scenario runs one gemkit command under tests/fault/fault_shim.c (LD_PRELOAD) with the N-th
file operation under the output folder, and every later one, failing with ENOSPC or EIO (a full
disk keeps failing), for N over the operations the undisturbed command makes (all of them, or
--points spread over them). After each faulted command:
  - it either failed with an error that names a file under the output folder and the system's
    reason, or succeeded with outputs equal to the undisturbed run's (a fault the command may
    ignore, such as a folder's fsync after the rename that made a file durable);
  - what was there before is intact: the previous output is byte-identical, or (training) the
    newest checkpoint is complete and equal to the undisturbed run's checkpoint of its step;
  - no temporary file or folder is left anywhere under the output folder;
  - running the command again without the fault completes, with outputs equal to the
    undisturbed run's (bit for bit: these commands are deterministic on one machine).
Usage: test_faults.py GEMKIT SHIM [--points N] [--only SCENARIO] [--keep]
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = os.path.join(ROOT, "checkpoints", "gemkit-base")
REASONS = {"ENOSPC": "No space left on device", "EIO": "Input/output error"}


def run(cmd, env_extra=None, check=True):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if check and p.returncode != 0:
        sys.exit("command failed (exit %d): %s\n%s" % (p.returncode, " ".join(cmd), p.stdout[-3000:]))
    return p


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree(folder):
    """{relative path: sha256} of every file under folder."""
    out = {}
    for d, _, files in os.walk(folder):
        for name in files:
            p = os.path.join(d, name)
            out[os.path.relpath(p, folder)] = digest(p)
    return out


def litter(folder):
    """Names under folder that look like an unfinished write."""
    found = []
    for d, dirs, files in os.walk(folder):
        for name in dirs + files:
            if ".tmp" in name or ".old." in name:
                found.append(os.path.relpath(os.path.join(d, name), folder))
    return found


def points(count, wanted):
    """Operation numbers to fail: all of 1..count, or `wanted` of them spread over the range
    with the first and last few always in."""
    if wanted <= 0 or count <= wanted:
        return list(range(1, count + 1))
    edge = max(2, wanted // 5)
    chosen = set(range(1, edge + 1)) | set(range(count - edge + 1, count + 1))
    inner = wanted - len(chosen)
    for i in range(inner):
        chosen.add(edge + 1 + (i * (count - 2 * edge)) // max(1, inner))
    return sorted(chosen)


TIMING_KEYS = {"elapsed_s", "tokens_per_s", "seconds"}


def without_timing(value):
    """A report's JSON without the keys that hold measured times."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def json_figures(folder):
    """{relative path: timing-free JSON text} of the JSON reports under folder."""
    out = {}
    for d, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".json"):
                p = os.path.join(d, name)
                try:
                    with open(p) as f:
                        out[os.path.relpath(p, folder)] = json.dumps(without_timing(json.load(f)), sort_keys=True)
                except ValueError:
                    out[os.path.relpath(p, folder)] = "unreadable"
    return out


class Scenario:
    """One command and what its outputs must be. Subclasses set `name` and implement prepare
    (the state before the command, under self.out), command, and check_outputs."""

    name = ""

    def __init__(self, gemkit, work):
        self.gemkit, self.work = gemkit, work
        self.out = os.path.join(work, self.name, "out")          # the watched folder
        self.before = os.path.join(work, self.name, "before")    # its state before the command
        self.reference = None                                     # its state after an undisturbed run

    def restore(self):
        shutil.rmtree(self.out, ignore_errors=True)
        shutil.copytree(self.before, self.out, symlinks=True)

    def setup(self):
        os.makedirs(os.path.dirname(self.out), exist_ok=True)
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        self.prepare()
        shutil.rmtree(self.before, ignore_errors=True)
        shutil.copytree(self.out, self.before, symlinks=True)
        t0 = time.time()
        run(self.command())
        self.seconds = time.time() - t0
        self.reference = tree(self.out)

    def outputs_equal_reference(self):
        now = tree(self.out)
        return [k for k in self.compared(self.reference) if now.get(k) != self.reference[k]]

    def compared(self, files):  # the files whose bytes must match the undisturbed run's
        return list(files)

    def intact_after_failure(self):
        """Problems with the output folder after a failed command ([] when intact)."""
        before, now = tree(self.before), tree(self.out)
        return ["%s changed" % k for k in self.compared(before) if now.get(k) != before[k]]


class Train(Scenario):
    """`gemkit train --resume` from a step-2 checkpoint to step 4 (checkpoint, pointer, metrics)."""

    name = "train"

    def prepare(self):
        data = os.path.join(self.work, "law.train.h5")
        if not os.path.exists(data):
            run([self.gemkit, "data", "prepare", "--quiet", "--tokenizer", BASE, "--split", "train", "--out", data,
                 os.path.join(ROOT, "data/mini/law/train.jsonl")])
        self.recipe = os.path.join(self.work, "train_recipe.toml")
        with open(self.recipe, "w") as f:
            f.write('[model]\npath = "%s"\n[train]\nmode = "full"\ndata = ["%s"]\nbatch_size = 2\nseq_len = 64\n'
                    'lr = 1e-4\nmax_steps = 4\ncheckpoint_every = 2\nkeep_last = 0\nlog_every = 1\nseed = 0\n' % (BASE, data))
        run([self.gemkit, "train", self.recipe, "--out", self.run_dir(), "train.max_steps=2"])

    def run_dir(self):
        return os.path.join(self.out, "run")

    def command(self):
        return [self.gemkit, "train", self.recipe, "--out", self.run_dir(), "--resume"]

    def compared(self, files):  # the weights and optimizer state of every checkpoint
        return [k for k in files if k.endswith("model.safetensors") or k.endswith("optimizer.safetensors")]

    def intact_after_failure(self):
        problems = Scenario.intact_after_failure(self)
        run_dir = self.run_dir()
        steps = sorted(d for d in os.listdir(run_dir) if d.startswith("step-"))
        complete = [d for d in steps if os.path.exists(os.path.join(run_dir, d, "trainer_state.json"))]
        if not complete:
            return problems + ["no complete checkpoint left"]
        pointed = open(os.path.join(run_dir, "latest")).read().strip() if os.path.exists(os.path.join(run_dir, "latest")) else ""
        if pointed and pointed not in complete:
            problems.append("latest names %s, which is not a complete checkpoint" % pointed)
        now = tree(self.out)
        for d in complete:
            for k in self.compared([k for k in self.reference if k.startswith("run/%s/" % d)]):
                if now.get(k) != self.reference[k]:
                    problems.append("%s differs from the undisturbed run's" % k)
        return problems


class Export(Scenario):
    """`gemkit export FORMAT` over an earlier export of the same model (--force)."""

    def __init__(self, gemkit, work, fmt, target):
        self.name, self.fmt, self.target = "export_" + fmt, fmt, target
        Scenario.__init__(self, gemkit, work)

    def prepare(self):
        run(self.command())

    def command(self):
        extra = ["-q", "q8_0"] if self.fmt in ("gguf", "compact") else []
        return [self.gemkit, "export", self.fmt, BASE, "--out", os.path.join(self.out, self.target), "--force"] + extra


class Eval(Scenario):
    """`gemkit eval --out REPORT` over an earlier report (the report holds timings: compared as
    JSON without them)."""

    name = "eval"

    def prepare(self):
        run(self.command())

    def command(self):
        return [self.gemkit, "eval", "--model", BASE, "--corpus", os.path.join(ROOT, "data/mini/law/test.jsonl"),
                "--out", os.path.join(self.out, "eval.json"), "eval.max_tokens=2048"]

    def compared(self, files):  # the markdown report holds no timing
        return [k for k in files if k.endswith(".md")]

    def report_figures(self):
        with open(os.path.join(self.out, "eval.json")) as f:
            r = json.load(f)
        del r["elapsed_s"]
        return json.dumps(r, sort_keys=True)

    def setup(self):
        Scenario.setup(self)
        self.figures = self.report_figures()

    def outputs_equal_reference(self):
        return Scenario.outputs_equal_reference(self) + self.report_problems()

    def intact_after_failure(self):
        return Scenario.intact_after_failure(self) + self.report_problems()

    def report_problems(self):
        try:
            return [] if self.report_figures() == self.figures else ["eval.json figures differ"]
        except (OSError, ValueError, KeyError) as e:
            return ["eval.json unreadable: %s" % e]


class AblateReport(Scenario):
    """`gemkit ablate --report-only` over the report of a finished two-run grid (plain
    fine-tuning, 2 steps, and its WiSE-FT half-way point, evaluated on law)."""

    name = "ablate_report"

    def prepare(self):
        Train.prepare(self)  # the training recipe and data of the train scenario
        shutil.rmtree(self.run_dir(), ignore_errors=True)
        run(self.grid_command(report_only=False))

    def run_dir(self):
        return os.path.join(self.out, "run")

    def grid_command(self, report_only):
        return [self.gemkit, "ablate", self.recipe, "--seeds", "1", "--target", "law", "--no-deploy", "--wise-ft", "0.5",
                "--eval-corpus", os.path.join(ROOT, "data/mini/law/test.jsonl"), "--max-tokens", "1024",
                "--out", self.out] + (["--report-only"] if report_only else [])

    def command(self):
        return self.grid_command(report_only=True)

    def compared(self, files):  # the reports (the runs' own files are not rewritten)
        return [k for k in files if os.path.basename(k).startswith("report.") or k.endswith(".svg")]


class AblateGrid(AblateReport):
    """A whole grid (`gemkit ablate`: the base evaluated, one run trained and evaluated, the
    report) from an empty folder; a re-run resumes what is done. Compared: the trained weights bit for bit and
    every JSON report (grid, runs, base) without its measured times."""

    name = "ablate_grid"

    def prepare(self):
        Train.prepare(self)
        shutil.rmtree(self.run_dir(), ignore_errors=True)

    def command(self):  # without the WiSE-FT point of the report scenario's grid: half the time
        return [a for a in self.grid_command(report_only=False) if a not in ("--wise-ft", "0.5")]

    def setup(self):
        Scenario.setup(self)
        self.figures = json_figures(self.out)

    def compared(self, files):
        return [k for k in files if k.endswith("model.safetensors")]

    def outputs_equal_reference(self):
        now = json_figures(self.out)
        return Scenario.outputs_equal_reference(self) + [
            "%s differs" % k for k in self.figures if now.get(k) != self.figures[k]]

    def intact_after_failure(self):
        return []  # nothing was there before; what the re-run makes is compared


def count_operations(scenario, shim):
    scenario.restore()
    counter = os.path.join(scenario.work, "count.txt")
    run(scenario.command(), {"LD_PRELOAD": shim, "GEMKIT_FAULT_DIR": scenario.out, "GEMKIT_FAULT_COUNT_FILE": counter})
    return int(open(counter).read().split("\n")[0])


def rerun_problems(scenario):
    """Runs the command again undisturbed: it must complete with the reference's outputs and
    leave nothing behind (what an earlier failure or crash left included)."""
    again = run(scenario.command(), check=False)
    if again.returncode != 0:
        return ["the re-run failed: %r" % again.stdout[-500:]]
    return (["after the re-run: " + d for d in scenario.outputs_equal_reference()] +
            ["left behind after the re-run: " + x for x in litter(scenario.out)])


def try_fault(scenario, shim, n, errno_name):
    """Returns (outcome text, [problems])."""
    scenario.restore()
    counter = os.path.join(scenario.work, "count.txt")
    if os.path.exists(counter):  # written at exit: a crashed run leaves none
        os.remove(counter)
    p = run(scenario.command(), {"LD_PRELOAD": shim, "GEMKIT_FAULT_DIR": scenario.out, "GEMKIT_FAULT_AT": str(n),
                                 "GEMKIT_FAULT_ERRNO": errno_name, "GEMKIT_FAULT_COUNT_FILE": counter}, check=False)
    hit = (open(counter).read().split("\n") + [""])[1] if os.path.exists(counter) else ""
    problems = []
    if p.returncode == 0:
        problems += ["succeeded with a different output: " + d for d in scenario.outputs_equal_reference()]
        outcome = "ignored (output complete)"
    else:
        outcome = "failed cleanly"
        tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        if REASONS[errno_name] not in p.stdout:
            problems.append("the error does not give the reason %r: %r" % (REASONS[errno_name], tail))
        if scenario.out not in p.stdout:
            problems.append("the error names no file under the output folder: %r" % tail)
        if p.returncode >= 128 or p.returncode < 0:
            problems.append("crashed (exit %d): %r" % (p.returncode, p.stdout[-500:]))
        problems += scenario.intact_after_failure()
    problems += ["left behind: " + x for x in litter(scenario.out)]
    problems += rerun_problems(scenario)
    return outcome, hit, problems


def try_kill(scenario, shim, n, delay=None):
    """SIGKILL the command at its n-th file operation under the output folder (the shim kills
    it), or `delay` seconds after its start; returns (outcome, [problems])."""
    scenario.restore()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if delay is None:
        env.update({"LD_PRELOAD": shim, "GEMKIT_FAULT_DIR": scenario.out, "GEMKIT_FAULT_AT": str(n),
                    "GEMKIT_FAULT_ERRNO": "KILL"})
    p = subprocess.Popen(scenario.command(), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p.wait(timeout=delay if delay is not None else 600)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    outcome = "killed" if p.returncode == -9 else "finished (exit %d)" % p.returncode
    problems = [] if outcome != "killed" else scenario.intact_after_failure()
    if delay is None and p.returncode == 0:  # (ablate's children count their own operations: one
        problems.append("the shim did not kill it at operation %d" % n)  # of them killed fails the grid)
    if litter(scenario.out):
        outcome = "killed mid-write"
    problems += rerun_problems(scenario)
    return outcome, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gemkit")
    ap.add_argument("shim")
    ap.add_argument("--points", type=int, default=12, help="faulted operations per scenario (0: every one)")
    ap.add_argument("--kills", type=int, default=4, help="SIGKILLs at file operations per scenario (0: at every one); two timed ones are added")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    gemkit, shim = os.path.abspath(a.gemkit), os.path.abspath(a.shim)
    work = tempfile.mkdtemp(prefix="gemkit-faults-")
    scenarios = [Train(gemkit, work), Export(gemkit, work, "gguf", "model.gguf"),
                 Export(gemkit, work, "compact", "model.gguf"), Export(gemkit, work, "hf", "hf"),
                 Export(gemkit, work, "torchscript", "model.pt"), Eval(gemkit, work), AblateReport(gemkit, work),
                 AblateGrid(gemkit, work)]
    if a.only:
        scenarios = [s for s in scenarios if s.name in a.only.split(",")]
    failures = 0
    print("%-18s %5s %6s %7s %8s %6s %9s %6s  %s" % ("scenario", "ops", "tried", "failed", "ignored", "killed",
                                                     "mid-write", "bad", "seconds"))
    for s in scenarios:
        t0 = time.time()
        s.setup()
        count = count_operations(s, shim)
        tried = points(count, a.points)
        failed = ignored = bad = 0
        for i, n in enumerate(tried):
            errno_name = "ENOSPC" if i % 2 == 0 else "EIO"
            outcome, hit, problems = try_fault(s, shim, n, errno_name)
            if outcome.startswith("failed"):
                failed += 1
            else:
                ignored += 1
            if problems:
                bad += 1
                print("  %s: operation %d (%s, %s): %s" % (s.name, n, errno_name, hit, outcome))
                for p in problems:
                    print("    " + p)
        killed = mid_write = 0
        # SIGKILL at file operations spread over the command's writes, then at two instants of
        # its run (15% and 60% of the undisturbed time: loading, computing)
        kills = [(n, None) for n in points(count, a.kills)] + [(0, s.seconds * f) for f in (0.15, 0.6)]
        for n, delay in kills:
            outcome, problems = try_kill(s, shim, n, delay)
            killed += outcome.startswith("killed")
            mid_write += outcome == "killed mid-write"
            if problems:
                bad += 1
                print("  %s: SIGKILL %s: %s" % (s.name, "at operation %d" % n if delay is None else "after %.2f s" % delay,
                                                outcome))
                for p in problems:
                    print("    " + p)
        print("%-18s %5d %6d %7d %8d %6d %9d %6d  %.0f" % (s.name, count, len(tried), failed, ignored, killed,
                                                         mid_write, bad, time.time() - t0))
        sys.stdout.flush()
        failures += bad
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("work folder kept: " + work)
    if failures:
        sys.exit("%d faulted run(s) broke a guarantee" % failures)
    print("every faulted run failed cleanly or completed its outputs; nothing was left behind")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A rank killed or stalled in data-parallel training (ctest `distributed_faults`).

Two `gemkit train` ranks (torchrun's variables, gloo on 127.0.0.1) train gemkit-base for 24
steps with a checkpoint every 8. Undisturbed once (the reference), then in each scenario one rank
is disturbed once the run has passed step 10:
  - kill_rank1: rank 1 is SIGKILLed;
  - stall_rank1: rank 1 is SIGSTOPped (a hung rank); it is killed once rank 0 has stopped;
  - kill_rank0: rank 0 (which also serves the rendezvous store) is SIGKILLed.
The survivor must stop within GEMKIT_DIST_TIMEOUT_S plus a margin, with an error that names the
rank that failed; then `--resume` on both ranks must complete, and the final checkpoint's weights
and optimizer state must equal the reference's bit for bit.
Usage: test_distributed_faults.py GEMKIT [--only SCENARIO] [--keep]
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = os.path.join(ROOT, "checkpoints", "gemkit-base")
TIMEOUT_S = 5   # GEMKIT_DIST_TIMEOUT_S: how long a collective waits for a stalled peer
MARGIN_S = 15   # what the survivor may take beyond it (the error path, process exit)
STEPS, EVERY, DISTURB_AFTER = 24, 8, 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def start_ranks(gemkit, recipe, run_dir, port, resume, logs):  # logs: LOGS/rank0.log (.resume.log)
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, OMP_NUM_THREADS="1", RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), GEMKIT_DIST_TIMEOUT_S=str(TIMEOUT_S))
        cmd = [gemkit, "train", recipe, "--out", run_dir] + (["--resume"] if resume else [])
        log = open(os.path.join(logs, "rank%d%s.log" % (rank, ".resume" if resume else "")), "w")
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    return procs


def finish(procs, limit):
    codes = []
    for p, log in procs:
        try:
            codes.append(p.wait(timeout=limit))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
        log.close()
    return codes


def steps_done(run_dir):
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            return max([json.loads(line).get("step", 0) for line in f if line.strip()] or [0])
    except (OSError, ValueError):
        return 0


def final_state(run_dir):
    folder = os.path.join(run_dir, "step-%07d" % STEPS)
    return {name: digest(os.path.join(folder, name)) for name in ("model.safetensors", "optimizer.safetensors")
            if os.path.exists(os.path.join(folder, name))}


def run_scenario(name, gemkit, recipe, work, reference):
    run_dir, logs = os.path.join(work, name), os.path.join(work, name + "_logs")
    os.makedirs(logs)
    victim, survivor = (0, 1) if name == "kill_rank0" else (1, 0)
    procs = start_ranks(gemkit, recipe, run_dir, free_port(), False, logs)
    deadline = time.time() + 300
    while steps_done(run_dir) < DISTURB_AFTER and time.time() < deadline and all(p.poll() is None for p, _ in procs):
        time.sleep(0.02)
    problems = []
    if steps_done(run_dir) < DISTURB_AFTER:
        finish(procs, 60)
        return ["the run never reached step %d (see %s)" % (DISTURB_AFTER, logs)]
    victim_proc, survivor_proc = procs[victim][0], procs[survivor][0]
    disturbed_at = time.time()
    os.kill(victim_proc.pid, signal.SIGSTOP if name.startswith("stall") else signal.SIGKILL)
    try:
        code = survivor_proc.wait(timeout=TIMEOUT_S + MARGIN_S)
        took = time.time() - disturbed_at
    except subprocess.TimeoutExpired:
        code, took = None, None
        problems.append("rank %d did not stop within %d s of rank %d's %s" % (survivor, TIMEOUT_S + MARGIN_S, victim, name))
    if name.startswith("stall"):
        os.kill(victim_proc.pid, signal.SIGKILL)
    finish(procs, 30)
    text = open(os.path.join(logs, "rank%d.log" % survivor)).read()
    if code == 0:
        problems.append("rank %d exited 0 although rank %d failed" % (survivor, victim))
    if "rank %d stopped" % victim not in text:
        problems.append("rank %d's error does not name rank %d: %s" % (survivor, victim, text[-2000:]))
    reached = steps_done(run_dir)
    # Resume both ranks from the newest checkpoint; the result must be the undisturbed run's.
    resumed = start_ranks(gemkit, recipe, run_dir, free_port(), True, logs)
    codes = finish(resumed, 300)
    if codes != [0, 0]:
        problems.append("--resume exited %s (see %s)" % (codes, logs))
    elif final_state(run_dir) != reference:
        problems.append("the resumed run's step-%d checkpoint differs from the undisturbed run's" % STEPS)
    last = next((line for line in text.splitlines() if "error:" in line), "no error line")
    print("%-12s disturbed after step %2d: rank %d stopped %s (exit %s): %s; resumed: %s" % (
        name, reached, survivor, "in %.1f s" % took if took is not None else "late", code, last[:220],
        "ok" if not problems else "PROBLEM"))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gemkit")
    ap.add_argument("--only")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="gemkit_dist_faults_")
    try:
        data = os.path.join(work, "law.train.h5")
        subprocess.run([a.gemkit, "data", "prepare", "--quiet", "--tokenizer", BASE, "--split", "train", "--out", data,
                        os.path.join(ROOT, "data/mini/law/train.jsonl")], cwd=ROOT, check=True)
        recipe = os.path.join(work, "recipe.toml")
        with open(recipe, "w") as f:
            f.write('[model]\npath = "%s"\n[train]\nmode = "full"\ndata = ["%s"]\nbatch_size = 4\nseq_len = 128\n'
                    'lr = 1e-4\nmax_steps = %d\ncheckpoint_every = %d\nkeep_last = 0\nlog_every = 1\nseed = 0\n'
                    % (BASE, data, STEPS, EVERY))
        logs = os.path.join(work, "reference_logs")
        os.makedirs(logs)
        ref_dir = os.path.join(work, "reference")
        codes = finish(start_ranks(a.gemkit, recipe, ref_dir, free_port(), False, logs), 300)
        if codes != [0, 0]:
            sys.exit("the undisturbed two-rank run failed (exit %s); logs in %s" % (codes, logs))
        reference = final_state(ref_dir)
        problems = []
        for name in ("kill_rank1", "stall_rank1", "kill_rank0"):
            if a.only and a.only != name:
                continue
            problems += ["%s: %s" % (name, p) for p in run_scenario(name, a.gemkit, recipe, work, reference)]
        if problems:
            print("\n".join(problems))
            sys.exit("%d broken guarantee(s); work folder kept: %s" % (len(problems), work))
        print("distributed faults: every survivor stopped in time naming the failed rank; every resume matched")
    finally:
        if not a.keep and not sys.exc_info()[0]:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

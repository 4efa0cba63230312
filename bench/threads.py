"""A `nas train` beside another training process: its time against the same run on an idle machine.

Two processes that each take every core (2 + 2 threads on 2 cores) share the cores; with OpenMP
threads that busy-wait, each spends its slice spinning on work the other holds up. The CLI
makes OpenMP threads wait passively (`nas.threads`), which costs a wake-up per parallel region
on an idle machine. This measures, in one command, `nas train` alone ("idle") and while a
second, longer `nas train` trains beside it ("shared"), each under three settings:
- the CLI's defaults (OpenMP threads waiting passively);
- idle threads spinning 10,000 times before they sleep (`GOMP_SPINCOUNT=10000`);
- OpenMP's default wait policy (`OMP_WAIT_POLICY=""`, an empty value that OpenMP ignores).
The measured run's own training seconds (its `--json` output) are compared, round by round,
interleaved, against the idle run with the CLI's defaults. Goal: shared / idle <= 3 with the
CLI's defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _common import command_line, load_average, machine_info, markdown_table, today, write_section

NAS = [sys.executable, "-c", "from nas.cli import main; main()"]
TITLE = "Threads on a shared machine (bench/threads.py)"


def train_command(epochs: int) -> list[str]:
    return [*NAS, "train", "--arch", "resnet20", "--dataset", "digits", "--epochs", str(epochs),
            "--json"]


DEFAULT = "the CLI's defaults"
# An empty OMP_WAIT_POLICY is ignored by OpenMP and kept by the CLI (it sets an unset one only).
POLICIES = {
    DEFAULT: {},
    "idle threads spin 10,000 times": {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "10000"},
    "OpenMP's default wait policy": {"OMP_WAIT_POLICY": ""},
}


def environment(**variables: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("NAS_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return env | variables


def timed_run(epochs: int, env: dict[str, str], beside: bool) -> float:
    """Training seconds of one `nas train`, alone or with a second one training beside it."""
    other = None
    if beside:
        other = subprocess.Popen(train_command(1000), env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        wait_until_training(other.pid)
    try:
        result = subprocess.run(train_command(epochs), env=env, capture_output=True, text=True,
                                check=True, timeout=1800)
    finally:
        if other is not None:
            other.kill()
            other.wait()
    return json.loads(result.stdout)["seconds"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_training(pid: int, cpu_needed: float = 12.0, timeout: float = 300.0) -> None:
    """Until the process has used `cpu_needed` CPU-seconds: past its start-up (importing torch
    and loading the data take about 5) and training."""
    deadline = time.monotonic() + timeout
    while cpu_seconds(pid) < cpu_needed:
        if time.monotonic() > deadline:
            raise RuntimeError("the second training process never got going")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the measured run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-docs", action="store_true", help="do not update the docs table")
    args = parser.parse_args()
    load_before = load_average()
    variants = {}
    for policy, variables in POLICIES.items():
        suffix = "" if policy == DEFAULT else f", {policy}"
        variants[f"idle{suffix}"] = (environment(**variables), False)
        variants[f"shared{suffix}"] = (environment(**variables), True)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (env, beside) in variants.items():
            seconds[name].append(timed_run(args.epochs, env, beside))
    idle = statistics.median(seconds["idle"])
    report = {
        "benchmark": "threads", "date": today(), "command": command_line(),
        "machine": machine_info(), "epochs": args.epochs, "seconds": seconds,
        "median_s": {name: statistics.median(values) for name, values in seconds.items()},
        "slowdown": {name: statistics.median(values) / idle for name, values in seconds.items()},
        "goal_slowdown": 3.0, "load_average": {"before": load_before, "after": load_average()},
    }
    report["goal_met"] = report["slowdown"]["shared"] <= 3.0
    print(json.dumps(report))
    if not args.no_docs:
        write_section(TITLE, markdown(report))


def markdown(report: dict) -> str:
    rows = [[name, f"{report['median_s'][name]:.2f}",
             " / ".join(f"{value:.2f}" for value in report["seconds"][name]),
             f"x{report['slowdown'][name]:.2f}"] for name in report["seconds"]]
    table = markdown_table(["run", "median training s", "rounds (s)", "vs idle"], rows,
                           align="lrrr")
    return (
        f"{report['date']}, `{report['command']}`, {report['machine']['cpu_count']} cores, "
        f"load average (1, 5, 15 min) before {report['load_average']['before']}, after "
        f"{report['load_average']['after']}. The measured run is `nas train --arch resnet20 "
        f"--dataset digits --epochs {report['epochs']}`; \"shared\" has a second such training "
        "process (1000 epochs, killed afterwards) beside it with the same settings (threads = "
        "the CPUs the process may use). Rows without a setting use the CLI's defaults (OpenMP "
        "threads waiting passively); \"vs idle\" is against the idle run with those. Goal: "
        f"shared at most 3x idle with the CLI's defaults: "
        f"{'met' if report['goal_met'] else 'NOT met'}.\n\n{table}\n"
    )


if __name__ == "__main__":
    main()

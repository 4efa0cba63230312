"""Shared helpers for the benchmarks in `bench/`: machine facts, timing statistics, docs output.

Every benchmark prints one JSON object on stdout and (unless told not to) writes its own
`## <title>` section of `docs/benchmarks.md` with `write_section`, leaving the other
benchmarks' sections as they are.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-subset"
# the peers' CIFAR split (../shared/PEERS.md): the last 1,000 of its 5,085 images held out
PEERS_CIFAR = {"name": "cifar10", "path": str(CIFAR), "valid_fraction": 1000 / 5085}

DOC_HEADER = """# Benchmarks

Scripts in `bench/` measure the speed of the service's building blocks on the machine they run
on. Run them all with `make bench`, or one with `.venv/bin/python bench/NAME.py` (each takes
`--help`); each prints one JSON object on stdout and rewrites its own section of this page,
leaving the other sections untouched. Timings are medians over repeated measurements, with
the compared variants interleaved so that other load on the machine affects them alike; the
load average at the time of the run is noted with each section.
"""


def set_threads(threads: int) -> None:
    """Use `threads` intra-op threads (and one inter-op thread) in torch."""
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set, or parallel work has started
        torch.set_num_interop_threads(1)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the platform has none."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or the platform's processor name elsewhere."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """What a reader needs to compare figures across machines: machines of one kind differ in
    CPU model and vector extensions, and oneDNN picks different kernels on each."""
    return {
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "load_average": load_average(),
    }


def cpu_text(machine: dict) -> str:
    """The CPU a result was measured on, as in "AMD EPYC (AVX512)", for a section's first
    line (results from before the CPU was recorded say so)."""
    if "cpu" not in machine:
        return "CPU not recorded"
    return f"{machine['cpu']} ({machine['cpu_capability']})"


def summarize(seconds: Sequence[float]) -> dict:
    """Median, minimum, maximum and count of a list of timings (seconds)."""
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "samples": len(seconds),
    }


def tau_text(ranking: dict) -> str:
    """A `nas.ranking.Agreement` dump as "tau (low to high)", or "undefined"."""
    if ranking["kendall_tau"] is None:
        return "undefined"
    return f"{ranking['kendall_tau']:.2f} ({ranking['low']:.2f} to {ranking['high']:.2f})"


def protocol_text(options: dict) -> str:
    """ENAS's scoring of a candidate as a reader knows it, from a dict with the evaluator's
    `score_batches`, `score_on` and `score_by`: '4 shared validation batches, by loss'."""
    count = options["score_batches"]
    return (f"{count} {options['score_on']} validation batch{'es' if count > 1 else ''}, "
            f"by {options['score_by']}")


def today() -> str:
    return _dt.date.today().isoformat()


def command_line() -> str:
    """The command that ran this benchmark, as a user would type it from the repository root."""
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):  # run from outside the repository
        script = script.resolve().relative_to(ROOT)
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None
) -> str:
    """A GitHub-flavoured markdown table.

    `align` has one letter per column, "l" or "r"; by default numeric cells of the first row
    (ints and floats) are right-aligned and everything else left-aligned.
    """
    if align is None:
        first = rows[0] if rows else [""] * len(headers)
        align = "".join(
            "r" if isinstance(v, int | float) and not isinstance(v, bool) else "l" for v in first
        )
    if len(align) != len(headers):
        raise ValueError(f"align has {len(align)} letters for {len(headers)} columns")
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(title: str, markdown: str, path: Path = DOCS) -> Path:
    """Replace the `## {title}` section of `path` with `markdown`, or append it if absent.

    The section runs from its heading to the next level-2 heading (outside code fences) or the
    end of the file. A missing file is created with the page's title and introduction.
    """
    heading = f"## {title}"
    body = markdown.strip("\n")
    section = [heading, "", *body.splitlines(), ""]
    text = path.read_text(encoding="utf-8") if path.exists() else DOC_HEADER
    if not text.lstrip().startswith("# "):
        text = DOC_HEADER + "\n" + text
    lines = text.splitlines()
    start = end = None
    in_fence = False
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if start is None and line.rstrip() == heading:
            start = index
        elif start is not None and line.startswith("## "):
            end = index
            break
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += ["", *section]
    else:
        lines[start : end if end is not None else len(lines)] = section
    while lines and not lines[-1].strip():
        lines.pop()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

"""`nas worker`: how to start the Ray head and worker nodes of a cluster for `nas search`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from nas.cli.app import app, console, fail

GUIDE = """\
Standalone candidates train on Ray. Without a cluster, `nas search --workers N` starts Ray
locally with the CPUs and GPUs it finds. For a cluster (every node needs this package installed
and the dataset at the same path, or a small dataset that travels through Ray's object store):

  on the head node:      ray start --head --port=6379
  on each worker node:   ray start --address=HEAD_IP:6379 [--num-gpus=N]
  where searches run:    export NAS_RAY_ADDRESS=HEAD_IP:6379
                         nas search --workers 8 ...   (or `workers: {max_concurrent: 8}` in YAML)

`nas worker --head --run` or `nas worker --address HEAD_IP:6379 --run` runs that `ray start`
here. `ray status` shows the nodes; `ray stop` stops this node.
"""


@app.command()
def worker(
    head: Annotated[bool, typer.Option("--head", help="this machine is the head node")] = False,
    address: Annotated[str | None, typer.Option(help="HEAD_IP:PORT of the head to join")] = None,
    port: Annotated[int, typer.Option(help="head node port")] = 6379,
    run: Annotated[bool, typer.Option("--run", help="run `ray start` instead of printing it")
                   ] = False,
) -> None:
    """Explain (or run, with --run) how to start the Ray nodes that train candidates."""
    if head and address:
        fail("give --head (start a cluster) or --address (join one), not both")
    if not head and address is None:
        if run:
            fail("--run needs --head or --address HEAD_IP:PORT")
        console.print(GUIDE, highlight=False, markup=False)
        return
    command = [_ray_executable(), "start"]
    command += ["--head", f"--port={port}"] if head else [f"--address={address}"]
    if not run:
        console.print(f"ray {' '.join(command[1:])}", highlight=False, markup=False)
        return
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        fail(f"`ray start` exited with status {result.returncode}")


def _ray_executable() -> str:
    beside_python = Path(sys.executable).with_name("ray")
    return str(beside_python) if beside_python.exists() else (shutil.which("ray") or "ray")

"""Zoo baselines beside a search: chosen classic networks trained on the search's dataset with
the recipe its networks are trained from scratch with (`standalone_train_config`: the standalone
candidates' and the ENAS retraining's epochs, batch size, learning rate and seed), scored as its
candidates are scored (best validation accuracy of the last `reward_epochs`, through the
search's objective), and recorded in the search as architectures of role "zoo".

Rows are recorded at step -1, outside the search loop's steps: a resume drops the rows recorded
after its checkpoint (step >= 0) and keeps these. A zoo network has no genotype; its row holds a
placeholder genotype whose ops name the network (`zoo:resnet20`), and `metrics.zoo` names it
too. Rows of role "zoo" are never ranked among a search's best (`Store.ranked_architectures`
ranks derived or candidate rows) nor exported (`nas.service.exports.spec_for` refuses them).

Two ways to run them: `run` queues and trains in this process (`nas baselines`); `launch`
queues the rows (WAITING, so the caller gets their ids at once) and trains them in a detached
`nas baselines --search ID --queued ...` process of its own session, logging to
`$NAS_HOME/logs/baselines-<search>-<first id>.log`, which outlives the caller (the HTTP API:
training takes minutes, the request returns 202 at once). A detached run that dies leaves its
unfinished rows WAITING or RUNNING; `nas baselines --search ID --queued ROW_ID` trains them again.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from nas.config import SearchConfig
from nas.evaluators import describe_failure, standalone_train_config
from nas.latency import measure_latency, trained_on
from nas.search import open_dataset
from nas.seeding import stream_seed
from nas.store import ArchitectureRecord, ArchitectureRole, ArchitectureState, SearchRecord, Store
from nas.train import train_model
from searchspace.complexity import count_flops, count_parameters
from searchspace.genotype import Genotype
from searchspace.zoo import create_network, list_networks

from .errors import Conflict, InvalidInput

logger = logging.getLogger(__name__)
ZOO_ROLE = ArchitectureRole.ZOO
ZOO_EVALUATOR = "zoo"
ZOO_OP_PREFIX = "zoo:"
DEFAULT_ARCHS = ("resnet20", "mobilenet_v2")
MAX_ARCHS = 16
ZOO_STEP = -1
_DETACHED: list[subprocess.Popen] = []  # reaped as new ones start


def zoo_genotype(name: str) -> Genotype:
    """The placeholder genotype of zoo network `name` (one block per cell naming it)."""
    block = (0, ZOO_OP_PREFIX + name, 1, ZOO_OP_PREFIX + name)
    return Genotype(normal=(block,), reduction=(block,))


def zoo_name(record: ArchitectureRecord) -> str | None:
    """The zoo network a row of role "zoo" trained, else None."""
    if record.role != ZOO_ROLE:
        return None
    name = record.metrics.zoo if record.metrics is not None else None
    if isinstance(name, str):
        return name
    op = record.genotype.normal[0][1]
    return op.removeprefix(ZOO_OP_PREFIX) if op.startswith(ZOO_OP_PREFIX) else None


def as_dict(record: ArchitectureRecord) -> dict[str, Any]:
    """A zoo baseline as `nas baselines --json` and `nas show --json` print it."""
    return {"id": record.id, "name": zoo_name(record), "state": str(record.state),
            "reward": record.reward, "accuracy": record.accuracy, "params": record.params,
            "flops": record.flops, "latency_ms": record.latency_ms,
            "train_seconds": record.train_seconds, "error": record.error}


def check_archs(archs: Sequence[str]) -> list[str]:
    """The requested zoo names, duplicates dropped; `InvalidInput` naming an unknown one."""
    names = list(dict.fromkeys(archs or DEFAULT_ARCHS))
    known = list_networks()
    for name in names:
        if name not in known:
            raise InvalidInput(f"unknown zoo network {name[:100]!r}; known: {', '.join(known)}")
    if len(names) > MAX_ARCHS:
        raise InvalidInput(f"at most {MAX_ARCHS} networks at once, got {len(names)}")
    return names


def search_config(search: SearchRecord) -> SearchConfig:
    try:
        return SearchConfig.model_validate(search.config)
    except ValidationError as error:
        raise InvalidInput(f"search {search.id}'s config is not a valid search config "
                           f"({error.error_count()} error(s)); cannot take its recipe") from None


def queue(store: Store, search_id: str, archs: Sequence[str]) -> list[ArchitectureRecord]:
    """Check the search (it exists, its config and dataset load) and the names, then record one
    WAITING row of role "zoo" per network."""
    names = check_archs(archs)
    search = store.get_search(search_id)
    config = search_config(search)
    unfinished = [row.id for row in beside(store, search_id)
                  if row.state in (ArchitectureState.WAITING, ArchitectureState.RUNNING)]
    if unfinished:
        listed = " ".join(f"--queued {row_id}" for row_id in unfinished)
        raise Conflict(f"search {search_id} has zoo baselines still to train (architectures "
                       f"{', '.join(map(str, unfinished))}); wait for them, or if their run "
                       f"died train them with `nas baselines --search {search_id} {listed}`")
    open_dataset(config)  # a missing dataset is the caller's error now, not a FAIL later
    ids = store.add_architectures(search_id, ZOO_STEP, [zoo_genotype(name) for name in names],
                                  ZOO_EVALUATOR, role=ZOO_ROLE)
    return [store.get_architecture(architecture_id) for architecture_id in ids]


def train_queued(store: Store, search_id: str, architecture_ids: Sequence[int],
                 on_trained: Callable[[ArchitectureRecord], None] | None = None
                 ) -> list[ArchitectureRecord]:
    """Train the search's WAITING or RUNNING zoo rows `architecture_ids`, one after another;
    a network that fails is recorded FAIL and the others go on."""
    search = store.get_search(search_id)
    config = search_config(search)
    rows = []
    for architecture_id in architecture_ids:
        row = store.get_architecture(architecture_id)
        name = zoo_name(row)
        if row.search_id != search_id or name is None:
            raise InvalidInput(f"architecture {architecture_id} is not a zoo baseline of "
                               f"search {search_id}")
        if row.state not in (ArchitectureState.WAITING, ArchitectureState.RUNNING):
            raise InvalidInput(f"architecture {architecture_id} is already {row.state}")
        rows.append((row, name))
    data = open_dataset(config)
    finished = []
    for row, name in rows:
        if row.state is ArchitectureState.WAITING:
            store.start_architecture(row.id)
        record = store.finish_architecture(row.id, **_train_one(name, config, data))
        logger.info("zoo baseline %s of search %s: %s", name, search_id, record.state)
        if on_trained is not None:
            on_trained(record)
        finished.append(record)
    return finished


def _train_one(name: str, config: SearchConfig, data: Any) -> dict[str, Any]:
    """The `finish_architecture` arguments of training zoo network `name`."""
    info = data.info
    shape = (info.in_channels, info.input_size, info.input_size)
    recipe = standalone_train_config(config)
    base = {"zoo": name, "dataset": config.dataset.model_dump(mode="json"),
            "recipe": recipe.model_dump(mode="json")}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(config.seed, f"zoo-weights-{name}"))
            model = create_network(name, num_classes=info.num_classes,
                                   input_size=info.input_size, in_channels=info.in_channels)
        params, flops = count_parameters(model), count_flops(model, shape)
        result = train_model(model, data, recipe)
        latency = measure_latency(model, shape, device=trained_on(model),
                                  batch_size=recipe.batch_size, num_classes=info.num_classes)
    except Exception as error:  # recorded; the other networks go on
        logger.warning("zoo baseline %s failed: %s", name, error)
        return {"state": ArchitectureState.FAIL, "error": describe_failure(error),
                "metrics": base | {"traceback": traceback.format_exc(limit=20)}}
    accuracy = max(epoch.val_accuracy for epoch in result.history[-config.evaluator.reward_epochs:])
    return {"state": ArchitectureState.COMPLETE,
            "reward": config.objective.reward(accuracy, params, flops, latency.forward_ms),
            "accuracy": accuracy, "params": params, "flops": flops,
            "latency_ms": latency.forward_ms, "train_seconds": result.seconds,
            "metrics": base | result.to_dict() | latency.as_metrics()}


def run(store: Store, search_id: str, archs: Sequence[str],
        on_trained: Callable[[ArchitectureRecord], None] | None = None
        ) -> list[ArchitectureRecord]:
    """Queue and train the baselines in this process (`nas baselines`)."""
    queued = queue(store, search_id, archs)
    return train_queued(store, search_id, [row.id for row in queued], on_trained)


def launch(store: Store, search_id: str, archs: Sequence[str], *, store_url: str,
           home: Path) -> list[ArchitectureRecord]:
    """Queue the baselines and train them in a detached process (see the module docstring)."""
    queued = queue(store, search_id, archs)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", "from nas.cli import main; main()", "baselines",
               "--search", search_id, "--json"]
    for row in queued:
        command += ["--queued", str(row.id)]
    env = os.environ | {"NAS_DATABASE_URL": store_url, "NAS_HOME": str(home)}
    _DETACHED[:] = [process for process in _DETACHED if process.poll() is None]
    with open(logs / f"baselines-{search_id}-{queued[0].id}.log", "ab") as log:
        _DETACHED.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env,
                                          start_new_session=True))
    return queued


def beside(store: Store, search_id: str) -> list[ArchitectureRecord]:
    """The search's zoo baselines, best reward first (unfinished ones last)."""
    return store.architectures(search_id, order="reward", role=ZOO_ROLE)

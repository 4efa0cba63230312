"""`nas search`, `nas resume`, `nas searches` and `nas show`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nas.cli.app import app, configure_threads, console, fail, user_errors
from nas.cli.baseline_commands import baselines_table
from nas.cli.remote import Remote, server
from nas.cli.remote_commands import follow, ranking_of, remote, title
from nas.cli.remote_commands import summary as remote_summary
from nas.config import SearchConfig, load_config, merge, parse_config
from nas.metrics import Metrics
from nas.ownership import OwnershipSettings
from nas.search import StepReport, create_search, run_search
from nas.service import baselines
from nas.service import searches as search_service
from nas.signals import SearchInterrupted, interrupt_on_stop_signals
from nas.store import ArchitectureRecord, ArchitectureRole, SearchRecord, SearchStatus, Store
from searchspace.drawing import genotype_svg
from searchspace.genotype import describe_cell


def _overrides(**flags: Any) -> dict[str, Any]:
    """Nested config overrides from the flags a user gave (None = not given)."""
    paths = {
        "strategy": ("strategy", "name"), "evaluator": ("evaluator", "name"),
        "dataset": ("dataset", "name"), "data_dir": ("dataset", "path"),
        "budget_architectures": ("budget", "architectures"),
        "budget_seconds": ("budget", "seconds"), "candidate_epochs": ("evaluator", "epochs"),
        "cells": ("network", "cells"), "channels": ("network", "channels"),
        "retrain_top": ("evaluator", "retrain_top"),
        "seed": ("seed",), "name": ("name",), "workers": ("workers", "max_concurrent"),
    }
    overrides: dict[str, Any] = {}
    for flag, value in flags.items():
        if value is None:
            continue
        *parents, leaf = paths[flag]
        target = overrides
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = str(value) if isinstance(value, Path) else value
    return overrides


def _run_with_progress(store: Store, search_id: str, config: SearchConfig, quiet: bool,
                       scheduled: bool = False) -> SearchRecord:
    total = config.budget.architectures
    with Progress(
        TextColumn("[bold]search[/] {task.fields[search_id]}"), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[label]} "
                                                             "{task.fields[best]}"),
        console=console, disable=quiet, transient=False,
    ) as bar:
        task = bar.add_task("search", total=total, search_id=search_id, best="-",
                            label=escape(candidate_reward_label(config)))

        def report(step: StepReport) -> None:
            best = "-" if step.best_reward is None else f"{step.best_reward:.4f}"
            bar.update(task, completed=step.architectures, best=best)

        try:
            with interrupt_on_stop_signals():
                return run_search(store, search_id, progress=report, scheduled=scheduled)
        except SearchInterrupted as interrupt:
            bar.stop()
            Console(stderr=True).print(
                f"search {search_id} {interrupt.reason}: checkpointed, status interrupted; "
                f"continue with `nas resume {search_id}`", highlight=False, soft_wrap=True)
            raise typer.Exit(interrupt.exit_status) from None


def candidate_reward_label(config: SearchConfig) -> str:
    """What the progress bar's best reward is: ENAS scores candidates on a few batches."""
    if config.evaluator.name == "enas":
        return "best candidate reward (scoring batches)"
    return "best reward"


def best_reward_label(store: Store, record: SearchRecord) -> str:
    """What the summary's best reward is: a derived cell's (ENAS) or a candidate's."""
    evaluator = (record.config.get("evaluator") or {}).get("name")
    if store.count_architectures(record.id, role=ArchitectureRole.DERIVED):
        return "best derived reward (full validation split)"
    if evaluator == "enas":
        return "best candidate reward (scoring batches)"
    if evaluator == "standalone":
        return "best reward (full validation split)"
    return "best reward"


def _summary(store: Store, record: SearchRecord) -> dict[str, Any]:
    best = store.ranked_architectures(record.id, limit=1)
    age = record.heartbeat_age()
    return {
        "search_id": record.id,
        "name": record.name,
        "status": str(record.status),
        "stale": record.is_stale(OwnershipSettings.from_env().stale_seconds),
        "owner": record.owner,
        "heartbeat_at": None if record.heartbeat_at is None else record.heartbeat_at.isoformat(),
        "heartbeat_age_seconds": None if age is None else round(age, 1),
        "architectures": store.count_architectures(record.id, role=ArchitectureRole.CANDIDATE),
        "best_reward": best[0].reward if best else None,
        "best_params": best[0].params if best else None,
        "best_multiply_adds": best[0].flops if best else None,
        "best_latency_ms": best[0].latency_ms if best else None,
        "best_genotype": best[0].genotype.to_dict() if best else None,
        "ranking": ranking_of(best[0]) if best else None,
        "error": record.error,
    }


def _status_text(summary: dict[str, Any]) -> str:
    """The status, and for a running search whose owner is gone, how long it has been gone."""
    if not summary["stale"]:
        return summary["status"]
    age = summary["heartbeat_age_seconds"]
    if age is None:
        return f"{summary['status']} (stale: no owner)"
    return f"{summary['status']} (stale: heartbeat {_duration(age)} ago)"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


@app.command()
def search(
    config_file: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="reinforce (default), random, evolution, tpe")
    ] = None,
    evaluator: Annotated[
        str | None, typer.Option(help="enas (default: shared weights), standalone, synthetic")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="digits (default), cifar10, imagefolder")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="folder of the dataset")] = None,
    budget_architectures: Annotated[int | None, typer.Option(help="architectures to try")] = None,
    budget_seconds: Annotated[float | None, typer.Option(help="wall-clock budget")] = None,
    candidate_epochs: Annotated[int | None, typer.Option(help="epochs per candidate")] = None,
    retrain_top: Annotated[
        int | None, typer.Option(help="enas: train the best N derived cells from scratch")
    ] = None,
    cells: Annotated[int | None, typer.Option(help="normal cells per stage (proxy)")] = None,
    channels: Annotated[int | None, typer.Option(help="initial channels (proxy)")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option()] = None,
    workers: Annotated[int | None, typer.Option(
        help="train standalone candidates on Ray, N at once (NAS_RAY_ADDRESS joins a cluster; "
        "see `nas worker`)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="end with one JSON object")] = False,
) -> None:
    """Run a search; prints its id, a live progress bar, then the best architectures."""
    configure_threads()
    with user_errors():
        overrides = _overrides(
            strategy=strategy, evaluator=evaluator, dataset=dataset, data_dir=data_dir,
            budget_architectures=budget_architectures, budget_seconds=budget_seconds,
            candidate_epochs=candidate_epochs, retrain_top=retrain_top, cells=cells,
            channels=channels, seed=seed,
            name=name, workers=workers,
        )
        if config_file is not None:
            config = load_config(config_file, overrides)
        else:
            config = parse_config(merge({}, overrides), source="options")
        if server() is not None:
            with remote() as client:
                launched = client.launch(config.model_dump(mode="json"))
                if not as_json:
                    console.print(f"{title(launched)} queued on {client.url}")
                _remote_report(client, follow(client, launched["id"], as_json), as_json)
            return
        OwnershipSettings.from_env()  # a bad NAS_HEARTBEAT_* or NAS_RESUME_LIMIT: nothing stored
        _join_ray(config)
        with Store() as store:
            record = create_search(store, config)
            if not as_json:
                console.print(f"search [bold]{record.id}[/] ({escape(config.name)}) queued")
            record = _run_with_progress(store, record.id, config, quiet=as_json)
            _report(store, record, as_json)


def _join_ray(config: SearchConfig) -> None:
    """Start or join Ray before the search is queued, so an unreachable cluster fails first."""
    if config.workers is not None:
        import workers.ray_evaluator  # noqa: F401  (registers the Ray evaluator)
        from workers.cluster import connect

        connect(config.workers.address)


@app.command()
def resume(
    search_id: Annotated[str, typer.Argument(help="id from `nas searches`")],
    as_json: Annotated[bool, typer.Option("--json", help="end with one JSON object")] = False,
    scheduled: Annotated[bool, typer.Option(
        "--scheduled", hidden=True,
        help="run it only while it is queued or running (the server's runs)")] = False,
) -> None:
    """Continue a search from its last checkpoint (after a crash, a kill or a cancel)."""
    configure_threads()
    if server() is not None:
        with user_errors(), remote() as client:
            client.act(search_id, "resume")
            _remote_report(client, follow(client, search_id, as_json), as_json)
        return
    with user_errors(), Store() as store:
        record = store.get_search(search_id)
        if record.status is SearchStatus.FINISHED:
            fail(f"search {search_id} already finished; nothing to resume")
        config = SearchConfig.model_validate(record.config)
        _join_ray(config)
        record = _run_with_progress(store, search_id, config, quiet=as_json,
                                    scheduled=scheduled)
        _report(store, record, as_json)


def _remote_report(client: Remote, search: dict[str, Any], as_json: bool) -> None:
    """The followed search's report; exit status 2 with its error when it failed, as a search
    that fails here does."""
    top = client.top(search["id"], 3)
    _print_report(remote_summary(search, top), "best reward", top, as_json)
    if search["status"] == SearchStatus.FAILED:
        fail(f"search {search['id']} failed: {search.get('error') or 'no reason recorded'}")


@app.command()
def cancel(search_id: Annotated[str, typer.Argument(help="id from `nas searches`")]) -> None:
    """Stop a queued or running search at its next step (`nas resume` continues it)."""
    with user_errors():
        if server() is not None:
            with remote() as client:
                status = client.act(search_id, "cancel")["status"]
        else:
            with Store() as store:
                status = search_service.cancel(store, search_id).status
    console.print(f"search {search_id} {status}", highlight=False, markup=False)


@app.command()
def delete(search_id: Annotated[str, typer.Argument(help="id from `nas searches`")]) -> None:
    """Delete an ended search with its architectures, checkpoints and weights."""
    with user_errors():
        if server() is not None:
            with remote() as client:
                client.delete(search_id)
        else:
            with Store() as store:
                search_service.delete(store, search_id)
    console.print(f"search {search_id} deleted", highlight=False, markup=False)


def _report(store: Store, record: SearchRecord, as_json: bool) -> None:
    top = store.ranked_architectures(record.id, limit=3)
    _print_report(_summary(store, record), best_reward_label(store, record), top, as_json)


def _print_report(summary: dict[str, Any], reward_label: str,
                  top: list[ArchitectureRecord], as_json: bool) -> None:
    """The end of `nas search` / `nas resume`: one JSON object, or a line and the top cells."""
    if as_json:
        print(json.dumps(summary))
        return
    console.print(f"search [bold]{summary['search_id']}[/] {summary['status']}: "
                  f"{summary['architectures']} architectures, {reward_label} "
                  f"{_best_text(summary)}")
    for rank, architecture in enumerate(top, start=1):
        _print_architecture(architecture, rank)


@app.command()
def searches(
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False,
) -> None:
    """Every search in the store, newest first."""
    with user_errors():
        rows = _remote_rows() if server() is not None else _local_rows()
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="Searches")
    for column in ("id", "name", "status", "architectures", "best reward", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["search_id"], escape(row["name"]), _status_text(row),
                      str(row["architectures"]), _number(row["best_reward"]),
                      row["created_at"][:19])
    console.print(table)


def _local_rows() -> list[dict[str, Any]]:
    with Store() as store:
        return [_summary(store, record) | {"created_at": record.created_at.isoformat()}
                for record in store.list_searches()]


def _remote_rows() -> list[dict[str, Any]]:
    with remote() as client:
        return [remote_summary(search) | {"best_reward": search["best_reward"]}
                for search in client.searches()]


@app.command()
def show(
    search_id: Annotated[str, typer.Argument(help="id from `nas searches`")],
    top: Annotated[int, typer.Option(min=1, max=100, help="how many architectures")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    svg: Annotated[Path | None, typer.Option(
        "--svg", metavar="FILE", help="write the best architecture's cells as SVG to FILE")] = None,
) -> None:
    """A search's top architectures, each cell drawn as text (and as SVG with --svg), and the
    zoo baselines trained beside it (`nas baselines`)."""
    with user_errors():
        if server() is not None:
            with remote() as client:
                found = client.search(search_id)
                best = client.top(search_id, top)
                zoo = client.zoo_runs(search_id)
            summary, error = remote_summary(found, best), found["error"]
        else:
            with Store() as store:
                record = store.get_search(search_id)
                best = store.ranked_architectures(search_id, limit=top)
                summary, error = _summary(store, record), record.error
                zoo = [baselines.as_dict(row) for row in baselines.beside(store, search_id)]
    if svg is not None:
        _write_svg(svg, best, search_id)
    if as_json:
        summary["top"] = [_architecture_dict(architecture) for architecture in best]
        summary["zoo"] = zoo
        print(json.dumps(summary))
        return
    console.print(f"search [bold]{summary['search_id']}[/] ({escape(summary['name'])}): "
                  f"{_status_text(summary)}, {summary['architectures']} architectures, "
                  f"best reward {_best_text(summary)}")
    if ranking := _ranking_text(summary.get("ranking")):
        console.print(ranking, highlight=False)
    if error:
        console.print(f"error: {error}", highlight=False, markup=False)
    for rank, architecture in enumerate(best, start=1):
        _print_architecture(architecture, rank)
    if zoo:
        console.print()
        console.print(baselines_table(zoo, "zoo baselines on the same data and recipe "
                                           "(`nas baselines`)"))


def _write_svg(path: Path, best: list[ArchitectureRecord], search_id: str) -> None:
    if not best:
        fail(f"search {search_id} has no architecture to draw yet")
    try:
        path.write_text(genotype_svg(best[0].genotype, f"architecture {best[0].id}"))
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror or error}")


def _architecture_dict(architecture: ArchitectureRecord) -> dict[str, Any]:
    return {
        "id": architecture.id, "step": architecture.step, "state": str(architecture.state),
        "role": str(architecture.role), "evaluator": architecture.evaluator,
        "genotype_id": architecture.genotype_id, "genotype": architecture.genotype.to_dict(),
        "reward": architecture.reward, "accuracy": architecture.accuracy,
        "params": architecture.params, "flops": architecture.flops,
        "latency_ms": architecture.latency_ms,
        "train_step_ms": Metrics.of(architecture.metrics).train_step_ms,
        "op_set_version": architecture.op_set_version,
        "train_seconds": architecture.train_seconds, "error": architecture.error,
    }


def _print_architecture(architecture: ArchitectureRecord, rank: int) -> None:
    console.print(
        f"\n[bold]#{rank}[/] {architecture.role} architecture {architecture.id} (genotype "
        f"{architecture.genotype_id}, step {architecture.step}, {architecture.state}): reward "
        f"{_number(architecture.reward)}, accuracy {_number(architecture.accuracy)}, "
        f"{_integer(architecture.params)} params, {_integer(architecture.flops)} mult-adds"
        f"{_latency_text(architecture)}",
        highlight=False,
    )
    retrained = architecture.metrics.retrained if architecture.retrained else None
    if retrained is not None:
        seconds = retrained.train_seconds
        console.print(f"  trained from scratch: accuracy {_number(retrained.accuracy)}"
                      + (f" in {seconds:.1f} s" if seconds is not None else "")
                      + (f" ({escape(retrained.error)})" if retrained.error else ""),
                      highlight=False)
    genotype = architecture.genotype
    for cell in ("normal", "reduction"):
        console.print(f"  {cell} cell:", highlight=False)
        for line in describe_cell(genotype.cell(cell)):
            console.print(f"    {line}", highlight=False)
    if architecture.error:
        console.print(f"  error: {architecture.error}", highlight=False, markup=False)


def _best_text(summary: dict[str, Any]) -> str:
    """The best's reward with the parameters and multiply-adds it was rewarded for."""
    if summary["best_reward"] is None:
        return "-"
    if summary["best_params"] is None and summary["best_multiply_adds"] is None:
        return _number(summary["best_reward"])  # the synthetic evaluator builds no network
    latency = summary.get("best_latency_ms")
    return (f"{_number(summary['best_reward'])} ({_integer(summary['best_params'])} params, "
            f"{_integer(summary['best_multiply_adds'])} mult-adds"
            + ("" if latency is None else f", {latency:.2f} ms") + ")")


def _ranking_text(ranking: dict[str, Any] | None) -> str:
    """How far the search's ranking agrees with the whole split (ENAS), or nothing."""
    if ranking is None:
        return ""
    if ranking["kendall_tau"] is None:
        return (f"ranking: agreement of the search's scores with the whole split undefined "
                f"({ranking['candidates']} candidate(s) scored in derivation)")
    return (f"ranking: the search's scores agree with the whole split's over derivation's "
            f"{ranking['candidates']} candidates with Kendall's tau {ranking['kendall_tau']:.2f} "
            f"({ranking['confidence']:.0%} bootstrap interval {ranking['low']:.2f} to "
            f"{ranking['high']:.2f})")


def _latency_text(architecture: ArchitectureRecord) -> str:
    """", latency X ms (batch 1), training step Y ms (batch B) on DEVICE" for what was measured
    (`nas.latency`), else nothing."""
    if architecture.latency_ms is None:
        return ""
    metrics = Metrics.of(architecture.metrics)
    text = f", latency {architecture.latency_ms:.2f} ms (batch 1)"
    if metrics.train_step_ms is not None:
        text += f", training step {metrics.train_step_ms:.1f} ms"
        if metrics.train_step_batch is not None:
            text += f" (batch {metrics.train_step_batch})"
    return text + (f" on {metrics.latency_device}" if metrics.latency_device else "")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _integer(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"

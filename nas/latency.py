"""Latency of a network, as a user of the searched cell meets it.

- `forward_ms`: one eval-mode forward pass of a single input (batch 1) in inference mode, in
  the default (contiguous) layout the exported module runs in, on one thread (as MnasNet
  measures on one core): with several, a pass of small ops measures the process's OpenMP
  settings more than the network (the CLI's passive waiting made a searched cell's pass 4.5x
  slower on 2 threads than with OpenMP's defaults; on one thread both give the same, which is
  also within 10% of the fastest 2-thread pass);
- `train_step_ms`: one training step (forward, cross-entropy, backward, SGD update) at the
  search's batch size, in the layout training picks on that device (`nas.memory_format`), on a
  copy of the network so its weights and batch-norm statistics stay as they were.

Both on the device the search runs on; medians of a few repeats after one untimed pass (which
pays one-off costs: kernel selection, allocation).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nas.memory_format import to_channels_last, use_channels_last
from nas.micro_batches import micro_batches

FORWARD_REPEATS = 5
FORWARD_THREADS = 1
"""CPU threads `forward_ms` measures on."""
TRAIN_STEP_REPEATS = 3
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Latency:
    """What `measure_latency` measured, and where."""

    forward_ms: float
    train_step_ms: float | None
    device: str
    train_batch: int | None = None

    def as_metrics(self) -> dict[str, float | str | None]:
        """The fields of `nas.metrics.Metrics` it fills (the forward latency has a column)."""
        return {"train_step_ms": self.train_step_ms, "train_step_batch": self.train_batch,
                "latency_device": self.device}


def _median_ms(run: Callable[[], object], repeats: int, device: torch.device) -> float:
    def timed() -> float:
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - started) * 1000

    timed()
    return statistics.median(timed() for _ in range(repeats))


def forward_ms(model: torch.nn.Module, input_shape: tuple[int, ...],
               device: torch.device = CPU, repeats: int = FORWARD_REPEATS) -> float:
    """Median milliseconds of one forward pass of a single input on one CPU thread (`model`
    is put in eval mode on `device`)."""
    model.eval().to(device, memory_format=torch.contiguous_format)
    example = torch.zeros((1, *input_shape), device=device)
    with torch.inference_mode(), forward_threads():
        return _median_ms(lambda: model(example), repeats, device)


@contextmanager
def forward_threads() -> Iterator[None]:
    """torch computes on `FORWARD_THREADS` CPU threads inside, on those it had again after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(FORWARD_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_step_ms(model: torch.nn.Module, input_shape: tuple[int, ...], batch_size: int,
                  num_classes: int, device: torch.device = CPU,
                  repeats: int = TRAIN_STEP_REPEATS, micro_batch: int | None = None) -> float:
    """Median milliseconds of one SGD training step of a copy of `model` at `batch_size`
    (in parts of `micro_batch` examples, as training takes it: nas.micro_batches)."""
    trained = copy.deepcopy(model).train().to(device)
    channels_last = use_channels_last(device, trained, input_shape[0])
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        to_channels_last(trained, device, input_shape[0])
    generator = torch.Generator().manual_seed(0)
    images = torch.randn((batch_size, *input_shape), generator=generator).to(device)
    images = images.contiguous(memory_format=layout)
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
    optimizer = torch.optim.SGD(trained.parameters(), lr=1e-3, momentum=0.9)

    parts = micro_batches(images, labels, micro_batch)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        for part, part_labels, share in parts:
            loss = F.cross_entropy(trained(part), part_labels)
            (loss * share).backward()
        optimizer.step()

    return _median_ms(step, repeats, device)


def trained_on(model: torch.nn.Module) -> torch.device:
    """The device `model`'s parameters are on (the CPU for a network without any)."""
    return next((parameter.device for parameter in model.parameters()), CPU)


def measure_latency(model: torch.nn.Module, input_shape: tuple[int, ...], *,
                    device: torch.device = CPU, batch_size: int | None = None,
                    num_classes: int | None = None, micro_batch: int | None = None) -> Latency:
    """The forward latency and, with `batch_size` and `num_classes`, the training step's (in
    parts of `micro_batch` examples)."""
    step = None
    if batch_size is not None and num_classes is not None:
        step = round(train_step_ms(model, input_shape, batch_size, num_classes, device,
                                   micro_batch=micro_batch), 3)
    return Latency(forward_ms=round(forward_ms(model, input_shape, device), 3),
                   train_step_ms=step, device=str(device),
                   train_batch=None if step is None else batch_size)

"""The one training loop for search children, retraining and transfer.

SGD with Nesterov momentum and a cosine schedule, weight decay, label smoothing, cutout,
a linear drop-path schedule, an auxiliary loss, gradient clipping, a per-epoch metrics
callback, AMP on CUDA, channels_last where it is safe and faster, and seeded determinism. A
non-finite loss stops training with `TrainingDiverged`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from nas.data import DataSplits
from nas.memory_format import to_channels_last, use_channels_last
from nas.micro_batches import micro_batches
from nas.schedule import cosine_factor
from nas.seeding import Seed, stream_seed
from nas.strict_numbers import StrictNumbers

logger = logging.getLogger(__name__)

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says at which epoch and step."""


class TrainConfig(StrictNumbers):
    """Hyper-parameters of one training run (defaults: a short proxy run of a small network)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    min_learning_rate: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(3e-4, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    cutout: int = Field(0, ge=0, description="side of the square cut out of each image; 0 = off")
    drop_path: float = Field(0.0, ge=0, lt=1, description="final drop-path probability")
    auxiliary_weight: float = Field(0.4, ge=0, description="weight of the auxiliary head's loss")
    grad_clip: float = Field(5.0, gt=0)
    micro_batch: int | None = Field(
        None, ge=1, description="examples per forward/backward pass; their gradients add up "
        "to one step on the whole batch (nas.micro_batches), and validation runs 8 "
        "micro-batches at a time; None: the whole batch at once")
    augment: bool = True
    seed: Seed = 0
    amp: bool = Field(True, description="mixed precision when training on CUDA")
    channels_last: bool | None = Field(
        None, description="NHWC memory format; None: where it is faster and safe (CUDA, and "
        "CPUs whose oneDNN runs AVX-512 kernels: see nas.memory_format)"
    )


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch measured; passed to the callback and kept in the history."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    seconds: float


@dataclass
class TrainResult:
    """The outcome of a training run."""

    history: list[EpochMetrics] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False

    @property
    def final_val_accuracy(self) -> float:
        return self.history[-1].val_accuracy if self.history else 0.0

    @property
    def best_val_accuracy(self) -> float:
        return max((epoch.val_accuracy for epoch in self.history), default=0.0)

    def to_dict(self) -> dict:
        return {
            "history": [asdict(epoch) for epoch in self.history],
            "seconds": self.seconds,
            "stopped_early": self.stopped_early,
            "final_val_accuracy": self.final_val_accuracy,
            "best_val_accuracy": self.best_val_accuracy,
        }


EpochCallback = Callable[[EpochMetrics], bool | None]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(stream_seed(seed, "numpy") % 2**32)
    torch.manual_seed(stream_seed(seed, "torch"))


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def apply_cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one `size` x `size` square per image at a random centre (DeVries & Taylor, 2017)."""
    batch, _, height, width = images.shape
    centre_y = torch.randint(0, height, (batch, 1, 1), generator=generator)
    centre_x = torch.randint(0, width, (batch, 1, 1), generator=generator)
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    inside = ((rows - centre_y).abs() <= size // 2) & ((cols - centre_x).abs() <= size // 2)
    if size % 2 == 0:
        inside &= (rows - centre_y < size // 2) & (cols - centre_x < size // 2)
    return images * (~inside).unsqueeze(1).to(images.device, images.dtype)


def evaluate(
    model: nn.Module, batches: Batches, device: torch.device, channels_last: bool = False
) -> tuple[float, float]:
    """Mean loss and accuracy of `model` over `batches`, in eval mode without gradients."""
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    on_cuda = device.type == "cuda"
    with torch.inference_mode():
        for images, labels in batches:
            images, labels = _to_device(images, labels, device, channels_last)
            with _autocast(device, enabled=on_cuda):
                logits = model(images)
            total_loss += F.cross_entropy(logits.float(), labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
            seen += labels.numel()
    model.train(was_training)
    if seen == 0:
        raise ValueError("evaluation got no batches: the validation split is empty")
    return total_loss / seen, correct / seen


@dataclass
class TrainingRun:
    """What one run of `train_model` works with, set up by `prepare_run`."""

    model: nn.Module
    config: TrainConfig
    device: torch.device
    channels_last: bool
    train_batches: Batches
    valid_batches: Batches
    steps_per_epoch: int
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    cutout_generator: torch.Generator

    @property
    def autocast(self) -> bool:
        return self.device.type == "cuda" and self.config.amp


def validation_batch_size(config: TrainConfig) -> int:
    """Examples per validation pass: at least 256, or, in micro-batches, 8 micro-batches.
    Inference holds about a fourteenth of the memory per example that a training step does
    (a five-op cell network at 32x32: 1.9 against 26 MiB), so validation in batches of 256 would
    set the peak that micro-batches bring down (+465 MiB against +213 for training in parts of
    8; docs/benchmarks.md, "ENAS memory: where it goes"). Batch norm validates with its running
    statistics: the batch size does not change the accuracy."""
    if config.micro_batch is None:
        return max(config.batch_size, 256)
    return min(max(config.batch_size, 256), 8 * config.micro_batch)


def prepare_run(model: nn.Module, data: DataSplits, config: TrainConfig, device: torch.device
                ) -> TrainingRun:
    """Seed, place the model, make the loaders, SGD (Nesterov) and its cosine schedule."""
    seed_everything(config.seed)
    image_channels = data.info.in_channels
    channels_last = (use_channels_last(device, model, image_channels)
                     if config.channels_last is None else config.channels_last)
    model.to(device)
    if channels_last:
        to_channels_last(model, device, image_channels)
    train_batches = data.train_loader(config.batch_size, seed=config.seed, augment=config.augment)
    valid_batches = data.valid_loader(validation_batch_size(config))
    steps_per_epoch = len(train_batches)
    if steps_per_epoch == 0:
        raise ValueError(
            f"the training split ({data.info.train_size} examples) is smaller than one batch "
            f"of {config.batch_size}"
        )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.learning_rate, momentum=config.momentum,
        nesterov=config.momentum > 0, weight_decay=config.weight_decay,
    )
    total_steps = config.epochs * steps_per_epoch
    floor = config.min_learning_rate / config.learning_rate
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step / total_steps, floor)
    )
    return TrainingRun(
        model=model, config=config, device=device, channels_last=channels_last,
        train_batches=train_batches, valid_batches=valid_batches,
        steps_per_epoch=steps_per_epoch, optimizer=optimizer, schedule=schedule,
        scaler=torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.amp),
        cutout_generator=torch.Generator().manual_seed(stream_seed(config.seed, "cutout")),
    )


def train_step(run: TrainingRun, images: torch.Tensor, labels: torch.Tensor,
               where: str) -> tuple[float, int]:
    """One optimizer step on a batch: its loss and how many it classified right (`where`
    places the error when the loss is not finite)."""
    config = run.config
    if config.cutout:
        images = apply_cutout(images, config.cutout, run.cutout_generator)
    images, labels = _to_device(images, labels, run.device, run.channels_last)
    run.optimizer.zero_grad(set_to_none=True)
    loss_value, correct = 0.0, 0
    for part, part_labels, share in micro_batches(images, labels, config.micro_batch):
        with _autocast(run.device, enabled=run.autocast):
            logits, loss = _forward_loss(run.model, part, part_labels, config)
        part_loss = loss.item()
        if not math.isfinite(part_loss):
            raise TrainingDiverged(
                f"loss became {part_loss} at {where}; try a lower learning rate "
                f"(now {run.optimizer.param_groups[0]['lr']:g})"
            )
        run.scaler.scale(loss * share).backward()
        loss_value += part_loss * share
        correct += (logits.argmax(1) == part_labels).sum().item()
    run.scaler.unscale_(run.optimizer)
    nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.schedule.step()
    return loss_value, correct


def train_epoch(run: TrainingRun, epoch: int, on_step: Callable[[float], None]
                ) -> tuple[float, float]:
    """Epoch `epoch` (from 0) over the training split: its mean loss and accuracy."""
    model, config = run.model, run.config
    if hasattr(model, "drop_path_prob"):  # the linear drop-path schedule
        model.drop_path_prob = config.drop_path * epoch / config.epochs
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for step, (images, labels) in enumerate(run.train_batches):
        loss_value, right = train_step(run, images, labels, f"epoch {epoch + 1}, step {step + 1}")
        loss_sum += loss_value * labels.numel()
        correct += right
        seen += labels.numel()
        on_step(loss_value)
    return loss_sum / seen, correct / seen


def train_model(
    model: nn.Module,
    data: DataSplits,
    config: TrainConfig,
    *,
    device: torch.device | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train `model` on `data.train_loader` and validate each epoch on `data.valid_loader`.

    `on_epoch` is called after every epoch; returning True stops training early (a scheduler
    such as ASHA pruning the run). Raises `TrainingDiverged` on a non-finite loss.
    """
    run = prepare_run(model, data, config, device or default_device())
    result = TrainResult()
    started = time.perf_counter()
    with _progress_bar(progress) as bar:
        task = bar.add_task("training", total=config.epochs * run.steps_per_epoch, status="")
        for epoch in range(config.epochs):
            epoch_started = time.perf_counter()
            learning_rate = run.optimizer.param_groups[0]["lr"]
            train_loss, train_accuracy = train_epoch(
                run, epoch,
                lambda loss: bar.update(task, advance=1, status=f"loss {loss:.3f}"))
            val_loss, val_accuracy = evaluate(model, run.valid_batches, run.device,
                                              run.channels_last)
            metrics = EpochMetrics(
                epoch=epoch + 1, train_loss=train_loss, train_accuracy=train_accuracy,
                val_loss=val_loss, val_accuracy=val_accuracy, learning_rate=learning_rate,
                seconds=time.perf_counter() - epoch_started,
            )
            result.history.append(metrics)
            logger.info("epoch %d: %s", metrics.epoch, metrics)
            bar.update(task, status=f"epoch {epoch + 1} val acc {val_accuracy:.3f}")
            if on_epoch is not None and on_epoch(metrics):
                result.stopped_early = epoch + 1 < config.epochs
                break
    result.seconds = time.perf_counter() - started
    return result


def _forward_loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    output = model(images)
    logits, auxiliary_logits = output if isinstance(output, tuple) else (output, None)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
    if auxiliary_logits is not None and config.auxiliary_weight > 0:
        loss = loss + config.auxiliary_weight * F.cross_entropy(
            auxiliary_logits.float(), labels, label_smoothing=config.label_smoothing
        )
    return logits, loss


def _to_device(
    images: torch.Tensor, labels: torch.Tensor, device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """float16 autocast on CUDA when enabled; full precision elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        disable=not enabled,
        transient=True,
    )

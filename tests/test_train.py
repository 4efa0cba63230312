"""The shared training loop: learning, callbacks, early stop, determinism, divergence."""

import math

import pytest
import torch
from torch import nn

from nas.data import load_dataset
from nas.train import (
    TrainConfig,
    TrainingDiverged,
    apply_cutout,
    evaluate,
    prepare_run,
    train_model,
)
from searchspace.network import CellNetwork
from searchspace.references import ENAS_MICRO


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", seed=0)


def _small_network(info, **kwargs):
    return CellNetwork(ENAS_MICRO, num_classes=info.num_classes, in_channels=info.in_channels,
                       cells=1, channels=8, **kwargs)


def test_training_learns_and_reports_every_epoch(synthetic):
    torch.manual_seed(0)
    seen = []
    config = TrainConfig(epochs=2, batch_size=32, learning_rate=0.05, seed=0)
    result = train_model(_small_network(synthetic.info), synthetic, config,
                         on_epoch=seen.append)
    assert [m.epoch for m in seen] == [1, 2] and result.history == seen
    assert result.final_val_accuracy > 1.5 / synthetic.info.num_classes
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.best_val_accuracy >= result.final_val_accuracy
    assert not result.stopped_early and result.seconds > 0


def test_in_micro_batches_validation_runs_in_eight_of_them(synthetic):
    """Validation in batches of 256 would set the peak that micro-batches bring down; batch
    norm validates with its running statistics, so the batch size does not change a number."""
    cpu = torch.device("cpu")
    model = _small_network(synthetic.info)

    def validation_batches(**options):
        run = prepare_run(model, synthetic, TrainConfig(batch_size=32, **options), cpu)
        return run.valid_batches, [labels.numel() for _, labels in run.valid_batches]

    whole, whole_sizes = validation_batches()
    parted, parted_sizes = validation_batches(micro_batch=1)
    assert whole_sizes == [synthetic.info.valid_size] and synthetic.info.valid_size < 256
    assert set(parted_sizes[:-1]) == {8} and len(parted_sizes) > 10
    assert sum(whole_sizes) == sum(parted_sizes) == synthetic.info.valid_size
    loss, accuracy = evaluate(model, whole, cpu)
    assert evaluate(model, parted, cpu) == pytest.approx((loss, accuracy), rel=1e-5)


def test_callback_can_stop_training_early(synthetic):
    config = TrainConfig(epochs=3, batch_size=32, seed=0)
    result = train_model(_small_network(synthetic.info), synthetic, config,
                         on_epoch=lambda metrics: metrics.epoch == 1)
    assert len(result.history) == 1 and result.stopped_early


def test_same_seed_same_result(synthetic):
    config = TrainConfig(epochs=1, batch_size=32, seed=3, cutout=4, drop_path=0.2)

    def run():
        torch.manual_seed(123)
        return train_model(_small_network(synthetic.info), synthetic, config).history[0]

    first, second = run(), run()
    assert first.train_loss == second.train_loss
    assert first.val_accuracy == second.val_accuracy


def test_auxiliary_head_and_drop_path_schedule(synthetic):
    model = _small_network(synthetic.info, auxiliary=True)
    probabilities = []
    config = TrainConfig(epochs=2, batch_size=32, drop_path=0.3, auxiliary_weight=0.4,
                         label_smoothing=0.1)
    train_model(model, synthetic, config,
                on_epoch=lambda metrics: probabilities.append(model.drop_path_prob))
    assert probabilities == [0.0, pytest.approx(0.15)]


class _Exploding(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.linear = nn.Linear(1, classes)

    def forward(self, x):
        return self.linear(x.mean(dim=(1, 2, 3)).unsqueeze(1)) * float("nan")


def test_nan_loss_raises_training_diverged(synthetic):
    with pytest.raises(TrainingDiverged, match="epoch 1, step 1"):
        train_model(_Exploding(synthetic.info.num_classes), synthetic, TrainConfig(epochs=1))


def test_cutout_zeroes_one_square_per_image():
    images = torch.ones(3, 2, 10, 10)
    out = apply_cutout(images, 4, torch.Generator().manual_seed(0))
    zeroed = (out == 0).all(dim=1).flatten(1).sum(dim=1)
    assert all(0 < int(count) <= 16 for count in zeroed)
    assert math.isclose(float(out[out != 0].min()), 1.0)


@pytest.mark.parametrize("field", ["epochs", "batch_size", "learning_rate"])
def test_bad_config_values_are_rejected(field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: 0})


def test_unknown_config_option_is_rejected():
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0.1)

"""Tests for nas.data: datasets by name, seeded splits, loaders, augmentation and errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nas.data import DATASETS, DatasetError, DatasetInfo, DataSplits, load_dataset
from nas.data.builtin import digits_augmentation
from nas.data.tensors import Augmentation, random_translate

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR_SUBSET = SHARED_DATA / "cifar10-subset"
HYMENOPTERA = SHARED_DATA / "hymenoptera"


def needs(path: Path) -> None:
    """Skip the calling test when the shared data folder ``path`` is absent."""
    if not path.is_dir():
        pytest.skip(f"shared data not available: {path}")


def first_batch(loader) -> tuple[torch.Tensor, torch.Tensor]:
    return next(iter(loader))


def write_pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(obj, handle)


def write_fake_cifar(folder: Path, batches: int = 2, per_batch: int = 30) -> None:
    """A tiny CIFAR-10 folder in the real python batch format."""
    rng = np.random.default_rng(0)
    for number in range(1, batches + 1):
        write_pickle(folder / f"data_batch_{number}", {
            "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            "labels": [int(label) for label in rng.integers(0, 10, per_batch)],
            "batch_label": f"training batch {number} of {batches}",
        })
    write_pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})


def write_images(folder: Path, count: int, color: tuple[int, int, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (40 + index, 30), color).save(folder / f"img_{index}.png")


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_dataset("digits")


# --- interface and option errors -------------------------------------------------------------


def test_dataset_names_and_unknown_name() -> None:
    assert DATASETS == ("digits", "cifar10", "imagefolder", "synthetic")
    with pytest.raises(DatasetError) as error:
        load_dataset("mnist")
    assert all(name in str(error.value) for name in DATASETS)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_valid_fraction_out_of_range(fraction: float) -> None:
    with pytest.raises(ValueError, match="valid_fraction"):
        load_dataset("synthetic", valid_fraction=fraction)


def test_bad_limit_and_batch_size(digits: DataSplits) -> None:
    with pytest.raises(ValueError, match="limit"):
        load_dataset("digits", limit=1)
    with pytest.raises(ValueError, match="batch_size"):
        digits.train_loader(0)


# --- digits ----------------------------------------------------------------------------------


def test_digits_shapes_split_and_normalization(digits: DataSplits) -> None:
    info = digits.info
    assert isinstance(info, DatasetInfo)
    assert (info.num_classes, info.in_channels, info.input_size) == (10, 1, 8)
    assert info.class_names == tuple("0123456789")
    assert (info.train_size, info.valid_size) == (1438, 359)
    images, labels = first_batch(digits.train_loader(64))
    assert images.shape == (64, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (64,) and labels.dtype == torch.int64
    valid = torch.cat([batch for batch, _ in digits.valid_loader(500)])
    assert valid.shape == (359, 1, 8, 8)
    assert abs(valid.mean().item()) < 0.1 and 0.8 < valid.std().item() < 1.2


def test_digits_split_is_stratified(digits: DataSplits) -> None:
    labels = torch.cat([batch for _, batch in digits.valid_loader(100)])
    counts = torch.bincount(labels, minlength=10)
    assert counts.min() >= 33 and counts.max() <= 39  # ~20% of ~180 per class


def test_loader_lengths_and_fixed_valid_order(digits: DataSplits) -> None:
    assert len(digits.train_loader(100)) == 14
    assert len(digits.train_loader(100, drop_last=False)) == 15
    assert sum(1 for _ in digits.train_loader(100)) == 14
    valid = digits.valid_loader(100)
    assert len(valid) == 4
    epochs = [torch.cat([labels for _, labels in valid]) for _ in range(2)]
    assert len(epochs[0]) == 359 and torch.equal(epochs[0], epochs[1])


def test_small_dataset_still_gives_one_batch() -> None:
    splits = load_dataset("digits", limit=20)
    loader = splits.train_loader(64)
    assert len(loader) == 1
    assert first_batch(loader)[0].shape[0] == splits.info.train_size == 16


def test_same_seed_same_data_other_seed_differs() -> None:
    first, again = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    other = load_dataset("digits", seed=4)
    batch, batch_again = first_batch(first.train_loader(32)), first_batch(again.train_loader(32))
    assert torch.equal(batch[0], batch_again[0]) and torch.equal(batch[1], batch_again[1])
    valid, valid_again = first.valid_loader(64), again.valid_loader(64)
    assert torch.equal(first_batch(valid)[0], first_batch(valid_again)[0])
    assert not torch.equal(
        first_batch(first.valid_loader(64))[0], first_batch(other.valid_loader(64))[0]
    )
    assert not torch.equal(batch[0], first_batch(first.train_loader(32, seed=1))[0])


def test_epochs_reproduce_across_loaders_and_leave_global_rng(digits: DataSplits) -> None:
    state = torch.get_rng_state()
    loader, twin = digits.train_loader(256, seed=7), digits.train_loader(256, seed=7)
    epochs = [[labels for _, labels in loader] for _ in range(2)]
    twin_epochs = [[labels for _, labels in twin] for _ in range(2)]
    for epoch, twin_epoch in zip(epochs, twin_epochs, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(epoch, twin_epoch, strict=True))
    assert not torch.equal(epochs[0][0], epochs[1][0])  # each epoch reshuffles
    assert torch.equal(state, torch.get_rng_state())


def test_limit_keeps_classes_mixed() -> None:
    splits = load_dataset("digits", limit=200, seed=1)
    assert splits.info.train_size + splits.info.valid_size == 200
    labels = torch.cat([labels for _, labels in splits.train_loader(40)])
    assert len(torch.unique(labels)) == 10


def test_input_size_resizes_once() -> None:
    splits = load_dataset("digits", input_size=16, limit=100)
    assert splits.info.input_size == 16
    assert first_batch(splits.train_loader(8))[0].shape == (8, 1, 16, 16)
    assert first_batch(splits.valid_loader(8))[0].shape == (8, 1, 16, 16)


def test_digits_augmentation_is_translation_only(digits: DataSplits) -> None:
    assert digits_augmentation(8) == Augmentation(pad=1, flip=False)
    plain = first_batch(digits.train_loader(64, seed=5, augment=False))
    moved = first_batch(digits.train_loader(64, seed=5, augment=True))
    assert torch.equal(plain[1], moved[1]) and moved[0].shape == plain[0].shape
    assert not torch.equal(plain[0], moved[0])
    # Undo normalization, then every augmented image must be one of the 9 one-pixel shifts.
    mean = digits.train.mean.item()
    std = digits.train.std.item()
    raw_plain, raw_moved = plain[0] * std + mean, moved[0] * std + mean
    padded = F.pad(raw_plain, (1, 1, 1, 1))
    shifts = torch.stack(
        [padded[:, :, dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3)], 1
    )
    error = (shifts - raw_moved.unsqueeze(1)).abs().flatten(2).amax(2)  # (B, 9)
    assert bool((error.min(1).values < 1e-4).all())


def test_random_translate_crops_a_shifted_window() -> None:
    images = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    generator = torch.Generator().manual_seed(0)
    moved = random_translate(images, 2, generator)
    padded = F.pad(images, (2, 2, 2, 2))
    for index in range(2):
        windows = [padded[index, :, y : y + 5, x : x + 5] for y in range(5) for x in range(5)]
        assert any(torch.equal(moved[index], window) for window in windows)


# --- synthetic -------------------------------------------------------------------------------


def test_synthetic_defaults_limit_and_size() -> None:
    splits = load_dataset("synthetic")
    info = splits.info
    assert (info.num_classes, info.in_channels, info.input_size) == (4, 3, 16)
    assert info.train_size + info.valid_size == 512 and info.valid_size == 102
    images, labels = first_batch(splits.train_loader(32))
    assert images.shape == (32, 3, 16, 16) and labels.max() < 4
    small = load_dataset("synthetic", limit=100, input_size=24)
    assert small.info.train_size + small.info.valid_size == 100
    assert first_batch(small.valid_loader(10))[0].shape == (10, 3, 24, 24)


def test_synthetic_is_learnable() -> None:
    torch.manual_seed(0)
    splits = load_dataset("synthetic")
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(), torch.nn.Linear(128, 4),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for images, labels in splits.train_loader(32):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    with torch.no_grad():
        correct = sum(
            (model(images).argmax(1) == labels).sum().item()
            for images, labels in splits.valid_loader(64)
        )
    assert correct / splits.info.valid_size > 0.5  # chance is 0.25


def test_synthetic_augmentation_changes_images_keeps_shape() -> None:
    splits = load_dataset("synthetic")
    plain = first_batch(splits.train_loader(16, augment=False))
    moved = first_batch(splits.train_loader(16, augment=True))
    assert torch.equal(plain[1], moved[1]) and plain[0].shape == moved[0].shape
    assert not torch.equal(plain[0], moved[0])


# --- cifar10 ---------------------------------------------------------------------------------


def test_cifar_missing_and_empty_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="data_batch_1..5") as error:
        load_dataset("cifar10", missing)
    assert str(missing) in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as error:
        load_dataset("cifar10", tmp_path / "empty")
    assert str(tmp_path / "empty") in str(error.value)


def test_cifar_default_dir_asks_for_data_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match="--data-dir") as error:
        load_dataset("cifar10")
    assert str(tmp_path / "cifar10") in str(error.value)


@pytest.mark.parametrize(
    "content",
    [
        b"this is not a pickle",
        pickle.dumps({"images": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}),
        pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}),
        pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}),
        pickle.dumps([1, 2, 3]),
    ],
    ids=["not-a-pickle", "wrong-keys", "wrong-shape", "wrong-labels", "not-a-dict"],
)
def test_cifar_malformed_batch(tmp_path: Path, content: bytes) -> None:
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.parent.mkdir()
    batch.write_bytes(content)
    with pytest.raises(DatasetError, match="CIFAR-10 python format") as error:
        load_dataset("cifar10", tmp_path)
    assert str(batch) in str(error.value)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_pickle_cannot_run_code(tmp_path: Path) -> None:
    write_pickle(tmp_path / "data_batch_1", {"data": _Exploit(), "labels": [0]})
    with pytest.raises(DatasetError, match="not allowed"):
        load_dataset("cifar10", tmp_path)


def test_cifar_fake_folder_both_path_forms(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path / "cifar-10-batches-py")
    for path in (tmp_path, tmp_path / "cifar-10-batches-py"):
        splits = load_dataset("cifar10", path, valid_fraction=0.25)
        assert (splits.info.train_size, splits.info.valid_size) == (45, 15)
        assert splits.info.class_names[:2] == ("c0", "c1")
        images, labels = first_batch(splits.train_loader(8))
        assert images.shape == (8, 3, 32, 32) and labels.dtype == torch.int64


def test_cifar_subset_loads_and_splits() -> None:
    needs(CIFAR_SUBSET)
    splits = load_dataset("cifar10", CIFAR_SUBSET)
    info = splits.info
    assert (info.train_size, info.valid_size) == (4068, 1017)
    assert (info.num_classes, info.in_channels, info.input_size) == (10, 3, 32)
    assert info.class_names[0] == "airplane" and info.class_names[-1] == "truck"
    assert splits.train.images.dtype == torch.uint8
    valid = torch.cat([images for images, _ in splits.valid_loader(512)])
    assert valid.shape == (1017, 3, 32, 32)
    assert valid.mean((0, 2, 3)).abs().max() < 0.15
    assert 0.8 < valid.std().item() < 1.2
    plain = first_batch(splits.train_loader(64, augment=False))
    moved = first_batch(splits.train_loader(64, augment=True))
    assert torch.equal(plain[1], moved[1]) and plain[0].shape == moved[0].shape == (64, 3, 32, 32)
    assert not torch.equal(plain[0], moved[0])


def test_cifar_subset_input_size_and_limit() -> None:
    needs(CIFAR_SUBSET)
    folder = CIFAR_SUBSET / "cifar-10-batches-py"
    splits = load_dataset("cifar10", folder, input_size=16, limit=500)
    info = splits.info
    assert (info.input_size, info.train_size, info.valid_size) == (16, 400, 100)
    assert first_batch(splits.train_loader(32))[0].shape == (32, 3, 16, 16)


# --- imagefolder -----------------------------------------------------------------------------


def test_imagefolder_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(DatasetError, match="<class>") as error:
        load_dataset("imagefolder", missing)
    assert str(missing) in str(error.value)

    one_class = tmp_path / "one"
    write_images(one_class / "cats", 3, (255, 0, 0))
    with pytest.raises(DatasetError, match="at least 2") as error:
        load_dataset("imagefolder", one_class)
    assert str(one_class) in str(error.value)

    empty_class = tmp_path / "empty"
    write_images(empty_class / "cats", 3, (255, 0, 0))
    (empty_class / "dogs").mkdir()
    (empty_class / "dogs" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="no images") as error:
        load_dataset("imagefolder", empty_class)
    assert str(empty_class / "dogs") in str(error.value)


def test_imagefolder_train_and_val_folders(tmp_path: Path) -> None:
    for split, count in (("train", 6), ("val", 2)):
        write_images(tmp_path / split / "red", count, (255, 0, 0))
        write_images(tmp_path / split / "blue", count, (0, 0, 255))
    splits = load_dataset("imagefolder", tmp_path, input_size=32)
    info = splits.info
    assert (info.class_names, info.train_size, info.valid_size) == (("blue", "red"), 12, 4)
    images, labels = first_batch(splits.valid_loader(4))
    assert images.shape == (4, 3, 32, 32) and labels.tolist() == [0, 0, 1, 1]
    assert len(splits.train_loader(5)) == 2


def test_hymenoptera_at_64() -> None:
    needs(HYMENOPTERA)
    splits = load_dataset("imagefolder", HYMENOPTERA, input_size=64)
    info = splits.info
    assert info.class_names == ("ants", "bees") and info.input_size == 64
    assert info.train_size + info.valid_size == 245 and info.valid_size == 49
    state = torch.get_rng_state()
    images, labels = first_batch(splits.train_loader(16, seed=2))
    again = first_batch(splits.train_loader(16, seed=2))
    assert torch.equal(state, torch.get_rng_state())
    assert images.shape == (16, 3, 64, 64) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert torch.equal(images, again[0]) and torch.equal(labels, again[1])
    plain = first_batch(splits.train_loader(16, seed=2, augment=False))
    assert torch.equal(plain[1], labels) and not torch.equal(plain[0], images)
    valid = first_batch(splits.valid_loader(32))[0]
    assert valid.shape == (32, 3, 64, 64) and abs(valid.mean().item()) < 0.5
    assert torch.equal(valid, first_batch(splits.valid_loader(32))[0])


def test_torchvision_is_imported_only_when_an_image_folder_is_opened(tmp_path):
    """torchvision costs a process about 160 MiB; a search on digits or CIFAR-10 and the API
    server never need it (a fresh interpreter, as `nas search` and `nas serve` start)."""
    probe = ("import sys, nas.cli, nas.enas, nas.search, server.app; "
             "print('torchvision' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"

"""How a dataset reaches the workers: through the object store when small, else by path."""

from __future__ import annotations

from nas.config import SearchConfig
from nas.data import DataSplits
from nas.data.tensors import TensorSplit

OBJECT_STORE_LIMIT_BYTES = 256 * 2**20


def shared_data(config: SearchConfig, data: DataSplits | None) -> DataSplits | None:
    """`data` when it is held in memory and small enough to ship once through Ray's object store
    (digits, the CIFAR-10 subset); None makes each worker load it from `config.dataset.path`."""
    if data is None:
        return None
    splits = (data.train, data.valid)
    if not all(isinstance(split, TensorSplit) for split in splits):
        return None
    size = sum(tensor.element_size() * tensor.nelement()
               for split in splits for tensor in vars(split).values()
               if hasattr(tensor, "element_size"))
    if size > OBJECT_STORE_LIMIT_BYTES and config.dataset.resolved_path() is not None:
        return None
    return data

"""Keep triton out of a process that has no GPU.

Every PyTorch optimizer's constructor imports `torch._dynamo`, and `torch._dynamo` imports
triton whenever it is installed (it comes with PyTorch's CUDA builds): 75 MiB of resident
memory in each process that trains, for a compiler of GPU kernels that nothing here runs on a
CPU (`nas` does not use `torch.compile`; PyTorch's CPU-only builds ship without triton and work
the same). On a machine without a CUDA device, `hide_triton_without_gpu` makes `import triton`
fail in this process, as it does where triton is not installed. Where a GPU is visible, or the
user sets `NAS_KEEP_TRITON=1`, it changes nothing.
"""

from __future__ import annotations

import logging
import os
import sys


class _DropMissingTritonWarning(logging.Filter):
    """`torch.utils.flop_counter` warns at import that triton kernels cannot be counted."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("triton not found")


def hide_triton_without_gpu() -> bool:
    """Make `import triton` fail in this process unless a CUDA device is visible, triton is
    already imported, or `NAS_KEEP_TRITON` is set; whether it was hidden."""
    if "triton" in sys.modules or os.environ.get("NAS_KEEP_TRITON"):
        return False
    import torch

    if torch.cuda.is_available():
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # import raises ImportError
    logging.getLogger("torch.utils.flop_counter").addFilter(_DropMissingTritonWarning())
    return True

"""Write ``tests/fixtures/tiny_state_dict.bin``: a small, real ``torch.save`` file for the torch-free tests.

The tensors are deterministic (``arange``-based) so tests can check the values without torch; together they cover
what a checkpoint contains: views with storage offsets and strides, tied (shared) storages, float16/bfloat16,
int64 and bool buffers, a parameter, 0-d and empty tensors. Run once with torch installed:

    python scripts/make_torch_bin_fixture.py
"""
from collections import OrderedDict
from pathlib import Path

import torch

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tiny_state_dict.bin"


def tiny_state_dict() -> "OrderedDict[str, torch.Tensor]":
    weight = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return OrderedDict(
        [
            ("embeddings.weight", weight),
            ("tied.weight", weight),  # the same storage, written once
            ("transposed", weight.t()),  # strides (1, 4)
            ("column", weight[1:, 2]),  # storage offset 6, stride 4
            ("half", torch.arange(6, dtype=torch.float16) / 4),
            ("bf16", torch.arange(5, dtype=torch.bfloat16) - 2.5),
            ("position_ids", torch.arange(7, dtype=torch.int64).unsqueeze(0)),
            ("mask", torch.arange(4) % 2 == 0),
            ("param", torch.nn.Parameter(torch.full((2,), 0.5))),
            ("scalar", torch.tensor(3.0)),
            ("empty", torch.zeros(0, 4)),
        ]
    )


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_state_dict(), FIXTURE)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")

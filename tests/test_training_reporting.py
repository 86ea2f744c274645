"""jepa_blocks.training: the single-process Distributed context, checksums, strict-JSON metrics
and the precision names."""

import json
import math

import pytest
import torch
from torch import nn

from jepa_blocks.training import Distributed, finite_or_null, parameter_checksum, precision_dtype


def test_single_process_context(monkeypatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    context = Distributed("cpu")
    assert (context.world_size, context.rank) == (1, 0)
    assert context.is_main and not context.enabled
    assert context.device == torch.device("cpu")
    context.barrier()  # no process group: nothing to wait for
    context.close()


def test_checksum_sees_every_parameter_byte_and_no_buffer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    before = parameter_checksum(model)
    assert len(before) == 16 and parameter_checksum(model) == before
    model[1].running_mean.add_(1.0)  # buffers differ across DDP ranks: not counted
    assert parameter_checksum(model) == before
    with torch.no_grad():
        model[0].weight[0, 0] = torch.nextafter(model[0].weight[0, 0], torch.tensor(2.0))
    assert parameter_checksum(model) != before  # one ulp


def test_finite_or_null_makes_strict_json() -> None:
    value = {"a": [1.0, math.nan, (math.inf, 2)], "b": {"c": -math.inf}, "d": "x"}
    cleaned = finite_or_null(value)
    assert cleaned == {"a": [1.0, None, [None, 2]], "b": {"c": None}, "d": "x"}
    json.dumps(cleaned, allow_nan=False)


def test_precision_names() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert precision_dtype("auto", cpu) is None and precision_dtype("auto", cuda) is torch.bfloat16
    assert precision_dtype("fp16", cpu) is torch.float16 and precision_dtype("fp32", cuda) is None
    with pytest.raises(ValueError, match="precision must be auto, fp32, bf16 or fp16, got 'fp8'"):
        precision_dtype("fp8", cpu)

"""GPU check (run by benchmarks/gpu.sh): SIGReg and LeJEPALoss train with no host sync.

With ``torch.cuda.set_sync_debug_mode("error")`` any device-to-host synchronisation in the
forward, the backward or ``advance()`` raises. The CPU test suite checks the source for
``.item()`` and compiles the module with ``fullgraph=True``; this is the check on the device.
"""

import torch
from torch import nn

from jepa_blocks import LeJEPALoss, SIGReg


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("error: this check needs CUDA.")
    model = nn.Linear(16, 8).cuda()
    loss_fn = LeJEPALoss(sigreg=SIGReg(64, check_finite=False)).cuda()
    x = torch.randn(3, 32, 16, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            out = loss_fn(model(x[:2]), model(x[2:]))
            out.loss.backward()
            loss_fn.advance()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(loss_fn.sigreg.step) == 2
    print("SIGReg / LeJEPALoss: no host sync in forward, backward and advance()")


if __name__ == "__main__":
    main()

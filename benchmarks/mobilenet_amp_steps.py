"""A short MobileNetV2 training-step loop with automatic mixed precision: seconds per step and peak memory.

    python benchmarks/mobilenet_amp_steps.py --device cuda                 # 20 steps, 64 images of 224 px
    python benchmarks/mobilenet_amp_steps.py --device cpu --steps 2 --size 64 --batch-p 4 --batch-k 2

Random images in P x K batches, :class:`dmlbook.models.MobileNetV2` (ImageNet weights from
``$DMLBOOK_DATA/weights`` when present, else random initialisation) and the batch-hard triplet loss; the first
two steps are not timed. Prints one JSON line (``benchmarks/device_check.py`` reads it).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path
from typing import Any


def mobilenet_steps(
    *, device: str, steps: int, size: int, batch_p: int, batch_k: int, warmup: int
) -> dict[str, Any]:
    """A MobileNetV2 + batch-hard triplet training loop on random images with AMP; timings and peak memory.

    On CUDA: float16 autocast with a gradient scaler,
    channels-last; on a CPU: bfloat16 autocast.
    """
    import torch

    from dmlbook.losses import TripletMarginLoss
    from dmlbook.models import MobileNetV2
    from dmlbook.models.mobilenet import default_weights_path

    torch.manual_seed(0)
    weights: Path | None = None
    try:
        path = default_weights_path()
        weights = path if path.is_file() else None
    except (OSError, ValueError, KeyError):  # no $DMLBOOK_DATA
        weights = None
    dev = torch.device(device)
    model = MobileNetV2(128, pretrained=str(weights) if weights else None).to(dev)
    model = model.to(memory_format=torch.channels_last)
    loss_fn = TripletMarginLoss(mining="batch_hard")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    cuda = dev.type == "cuda"
    amp_dtype = torch.float16 if cuda else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    b = batch_p * batch_k
    labels = (torch.arange(b) // batch_k).to(dev)  # (B,)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for step in range(warmup + steps):
        x = torch.rand(b, 3, size, size, device=dev).contiguous(
            memory_format=torch.channels_last
        )  # (B, 3, S, S)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=amp_dtype):
            z = model(x)  # (B, 128)
        loss = loss_fn(z.float(), labels)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if cuda:
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
            losses.append(float(loss))
    s_per_step = statistics.median(times)
    return {
        "device": device,
        "processor": torch.cuda.get_device_name(dev) if cuda else platform.processor() or platform.machine(),
        "weights": str(weights) if weights else "random init",
        "amp": str(amp_dtype).replace("torch.", ""),
        "image_size": size,
        "batch": b,
        "steps": steps,
        "s_per_step": round(s_per_step, 4),
        "images_per_s": round(b / s_per_step, 1),
        "peak_memory_mib": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if cuda else None,
        "losses_finite": all(math.isfinite(v) for v in losses),
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda or cpu (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default: %(default)s)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--batch-p", type=int, default=16, help="classes per batch (default: %(default)s)")
    parser.add_argument("--batch-k", type=int, default=4, help="images per class (default: %(default)s)")
    args = parser.parse_args(argv)
    if min(args.steps, args.size, args.batch_p) < 1 or args.batch_k < 2:
        parser.error("--steps, --size and --batch-p must be >= 1 and --batch-k >= 2")
    figures = mobilenet_steps(
        device=args.device,
        steps=args.steps,
        size=args.size,
        batch_p=args.batch_p,
        batch_k=args.batch_k,
        warmup=2,
    )
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

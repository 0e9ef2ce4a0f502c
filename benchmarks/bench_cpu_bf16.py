"""Is bf16 autocast faster than fp32 on this CPU, and does it stay finite? Prints one table row per precision.

``train.amp: bf16`` trusts a CPU's bf16 only with AVX512-BF16 and no AMX (``brats3d.models.device.cpu_bf16_pays``):
on a Xeon with AMX, oneDNN's AMX bf16 kernels in PyTorch's CPU build returned NaN now and then. This benchmark is
how that was measured and how to check a new CPU or PyTorch build: for each precision, in a fresh process (oneDNN
reads ``ONEDNN_MAX_CPU_ISA`` once), it trains the default recipe's U-Net from the same seed for a few steps on the
same random batch of two 160x160x16 patches, several times, and counts the runs whose loss went NaN; it also calls
``ConvTranspose3d``'s backward (the decoder's upsampling, where the NaN was first seen) many times on the same input.
Identical runs must give identical, finite losses. Run it on an otherwise idle machine: the step times are only
comparable then.

    python bench_cpu_bf16.py                  # fp32, bf16, bf16 with oneDNN capped below AMX
    python bench_cpu_bf16.py --runs 8 --steps 3 --calls 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from _common import print_table

from brats3d.models.device import available_cores, cpu_flags

MODES = {  # name: (the child's precision, extra environment)
    "fp32": ("fp32", {}),
    "bf16": ("bf16", {}),
    "bf16, oneDNN below AMX": ("bf16", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}),
}


def measure(bf16: bool, runs: int, steps: int, calls: int) -> dict:
    """In this process: NaN runs of the U-Net, distinct first losses, median step time, NaN deconvolution calls."""
    from brats3d.models.losses import build_loss
    from brats3d.models.registry import build_network

    torch.set_num_threads(available_cores())
    nan_runs, first_losses, times = 0, set(), []
    for _ in range(runs):
        torch.manual_seed(0)
        net = build_network("unet3d", (160, 160, 16)).to(memory_format=torch.channels_last_3d)
        x = torch.randn(2, 4, 160, 160, 16).contiguous(memory_format=torch.channels_last_3d)
        y = (torch.rand(2, 3, 160, 160, 16) > 0.9).float()
        loss_fn, opt = build_loss("dice_ce"), torch.optim.AdamW(net.parameters(), 1e-3)
        losses = []
        for _ in range(steps):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(x)
            loss = loss_fn(out.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
            losses.append(float(loss.detach()))
        nan_runs += any(v != v for v in losses)
        first_losses.add(round(losses[0], 6))
    torch.manual_seed(0)
    deconv = torch.nn.ConvTranspose3d(384, 64, 3, stride=2, padding=1, output_padding=1)
    x = torch.randn(2, 384, 10, 10, 1)
    nan_calls = 0
    for _ in range(calls):
        xx = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = deconv(xx)
        out.float().sum().backward()
        nan_calls += not bool(torch.isfinite(xx.grad).all())
    steady = sorted(times[1:]) or times
    return {
        "nan_runs": nan_runs,
        "distinct_first_losses": len(first_losses),
        "s_per_step": steady[len(steady) // 2],
        "nan_deconv_calls": nan_calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--child", choices=["fp32", "bf16"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child == "bf16", args.runs, args.steps, args.calls)))
        return
    isa = [f for f in ("avx512_bf16", "amx_bf16") if f in cpu_flags()]
    print(f"CPU bf16 flags: {', '.join(isa) or 'none'}; torch {torch.__version__}")
    rows = []
    for name, (amp, env) in MODES.items():
        cmd = [sys.executable, __file__, "--child", amp]
        cmd += ["--runs", str(args.runs), "--steps", str(args.steps), "--calls", str(args.calls)]
        done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: {r}", flush=True)
        rows.append(
            {
                "precision": name,
                "U-Net runs with NaN loss": f"{r['nan_runs']} of {args.runs}",
                "distinct first losses": r["distinct_first_losses"],
                "s per step (2 patches)": f"{r['s_per_step']:.3f}",
                "NaN deconv grads": f"{r['nan_deconv_calls']} of {args.calls}",
            }
        )
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()

"""Training-step throughput of IsstadModel on this machine (images/s), stage 1 and stage 2, fp32 and bf16 autocast.

    .venv/bin/python benchmarks/bench_train_step.py --image-size 128 --encoder vit_tiny_patch8 --decoder-dim 128
    .venv/bin/python benchmarks/bench_train_step.py --encoder-backbone efficientnet_lite0   # the hybrid encoder

Stage 2 here is the network's forward/backward with a frozen encoder (the corruption has its own benchmark).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F  # noqa: N812

from isstad_plugin import IsstadModel


def step_rate(model: IsstadModel, stage: int, batch: int, size: int, bf16: bool, steps: int) -> float:
    images = torch.randn(batch, 3, size, size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if stage == 1:
                out = model(images, mask_ratio=0.75)
                loss = F.mse_loss(out.reconstruction.float(), images)
            else:
                out = model(images)
                loss = F.mse_loss(out.reconstruction.float(), images) + out.level_logits.float().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--encoder", default="vit_tiny_patch8")
    parser.add_argument("--encoder-depth", type=int, default=None)
    parser.add_argument("--encoder-backbone", default=None, help="a timm CNN: the hybrid encoder (efficientnet_lite0)")
    parser.add_argument("--decoder-dim", type=int, default=128)
    parser.add_argument("--decoder-depth", type=int, default=4)
    parser.add_argument("--decoder-heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"| stage | precision | images/s |  ({args.encoder}, {args.image_size} px, decoder "
        f"{args.decoder_dim}x{args.decoder_depth}, batch {args.batch}, {args.threads} threads)"
    )
    print("|---|---|---|")
    for stage in (1, 2):
        for bf16 in (False, True):
            torch.manual_seed(0)
            model = IsstadModel(
                image_size=args.image_size,
                encoder=args.encoder,
                encoder_depth=args.encoder_depth,
                encoder_backbone=args.encoder_backbone,
                decoder_dim=args.decoder_dim,
                decoder_depth=args.decoder_depth,
                decoder_heads=args.decoder_heads,
            )
            if stage == 2:
                model.freeze_encoder()
            model.train()
            rate = step_rate(model, stage, args.batch, args.image_size, bf16, args.steps)
            print(f"| {stage} | {'bf16' if bf16 else 'fp32'} | {rate:.1f} |")


if __name__ == "__main__":
    main()

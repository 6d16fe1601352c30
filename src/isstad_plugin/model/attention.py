"""Self-attention that picks its kernel per call: SDPA, or explicit matmuls under bf16 autocast on the CPU.

timm's ``Attention`` calls ``F.scaled_dot_product_attention`` whenever it can. On the CPU in bf16 that is the
flash-attention kernel, which at ISSTAD's small head widths (32 in the CPU config) spends most of a training step in
its backward pass; the explicit ``softmax(q kᵀ / √d) v`` uses bf16 matmuls instead and was 1.6x faster per step on an
AVX512-BF16 CPU (``benchmarks/bench_speed.py``, ``docs/speed.md``). Everywhere else (float32, GPUs, export) the layer
is timm's own.
"""

from __future__ import annotations

import torch
from timm.layers import Attention


def explicit_attention_wins(x: torch.Tensor) -> bool:
    """True for CPU tensors under bf16 autocast (or in bf16): where explicit matmuls beat the fused kernel."""
    autocast_bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return x.device.type == "cpu" and (x.dtype == torch.bfloat16 or autocast_bf16)


class IsstadAttention(Attention):
    """timm's multi-head self-attention (same parameters and state-dict keys), explicit on CPU bf16."""

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        """Self-attention of ``(B, N, C)`` tokens; masks and gates go to timm's implementation."""
        if attn_mask is not None or is_causal or getattr(self, "gate", None) is not None:
            return super().forward(x, attn_mask=attn_mask, is_causal=is_causal)
        if not explicit_attention_wins(x):
            return super().forward(x)
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        attn = self.attn_drop(attn)
        out = (attn @ v).transpose(1, 2).reshape(batch, tokens, -1)
        return self.proj_drop(self.proj(self.norm(out)))

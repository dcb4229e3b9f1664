"""Which numeric precision a stage runs in. Pure rules, plus the probe of what the hardware does.

`auto` (the default) picks bf16 where the hardware computes it natively: CUDA GPUs with bf16
support (Ampere and later), and CPUs with AMX or AVX-512 BF16 (Sapphire Rapids and later,
Zen 4 and later), where oneDNN runs bf16 matmuls several times faster than fp32. Elsewhere it
picks fp16 on older GPUs and fp32 on CPUs, where bf16 would be emulated and slower. Training
keeps fp32 master weights and runs its forward pass under autocast, so the loss and the
optimizer's updates keep fp32 accuracy. Inference casts the weights themselves, on CPU as on
GPU (PyTorch's bf16 layer norm and softmax still accumulate in fp32); an explicit `fp32` turns
it all off.
"""

from __future__ import annotations

import functools

NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def resolve(requested: str, device: str, cuda_bf16: bool = False, cpu_flags: frozenset[str] = frozenset()) -> str:
    """The precision to run in: `requested` unless it is `auto`; `device` is "cuda" or "cpu"."""
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bf16" if cuda_bf16 else "fp16"
    return "bf16" if any(f in cpu_flags for f in NATIVE_BF16_CPU_FLAGS) else "fp32"


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, str]:
    """The first CPU's fields in /proc/cpuinfo (`model name`, `flags`, ...); empty where they
    cannot be read (not Linux)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if not sep:
                    if info:  # the blank line that ends the first CPU's record
                        break
                    continue
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_flags() -> frozenset[str]:
    """This machine's CPU feature flags; empty where they cannot be read."""
    return frozenset(cpu_info().get("flags", "").split())


def for_this_process(requested: str, use_gpu: bool) -> str:
    import torch

    if use_gpu and torch.cuda.is_available():
        return resolve(requested, "cuda", cuda_bf16=torch.cuda.is_bf16_supported())
    return resolve(requested, "cpu", cpu_flags=cpu_flags())

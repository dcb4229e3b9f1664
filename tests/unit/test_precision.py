import pytest

from vitpipeline.rules.precision import resolve


@pytest.mark.parametrize(
    "requested, device, cuda_bf16, flags, expected",
    [
        ("auto", "cuda", True, set(), "bf16"),
        ("auto", "cuda", False, set(), "fp16"),  # pre-Ampere GPUs
        ("auto", "cpu", False, {"avx2", "amx_bf16", "amx_tile"}, "bf16"),
        ("auto", "cpu", False, {"avx512f", "avx512_bf16"}, "bf16"),
        ("auto", "cpu", False, {"avx2", "avx512f"}, "fp32"),  # bf16 would be emulated: slower
        ("auto", "cpu", False, set(), "fp32"),  # flags unknown (not Linux)
        ("fp32", "cpu", False, {"amx_bf16"}, "fp32"),  # an explicit choice is kept
        ("bf16", "cpu", False, set(), "bf16"),
        ("fp16", "cuda", True, set(), "fp16"),
    ],
)
def test_resolve(requested, device, cuda_bf16, flags, expected):
    assert resolve(requested, device, cuda_bf16, frozenset(flags)) == expected


def test_cpu_flags_are_the_first_cpus_flags_line():
    """What `auto` decides from on CPU: read here independently of the parser."""
    from vitpipeline.rules.precision import cpu_flags, cpu_info

    with open("/proc/cpuinfo") as f:
        first = next(line for line in f if line.startswith("flags"))
    assert cpu_flags() == frozenset(first.split(":", 1)[1].split()) and cpu_flags()
    assert cpu_info()["model name"]

"""`pipe.enable_fast()` (pipelines/speed.py) and the attention kernels of other packages (models/attention.py):
the choice per device as a pure function, nothing changed on CPU, the external-kernel dispatch with a stand-in."""

import pytest
import torch
import torch.nn.functional as F

from ltx2_diffusers.models import attention as attention_module
from ltx2_diffusers.models.attention import sdpa_backend
from ltx2_diffusers.pipelines.speed import FastSettings, choose_attention_backend
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

HOPPER, AMPERE, ADA = (9, 0), (8, 0), (8, 9)


def present(*names):
    """Stand-in for `kernel_present`: cuDNN in the build, and the named packages."""
    return lambda name: name in ("cudnn", *names)


@pytest.mark.parametrize(
    ("capability", "packages", "expected"),
    [
        (HOPPER, (), "cudnn_first"),
        (HOPPER, ("flash_attn_4", "flash_attn_2"), "cudnn_first"),
        ((10, 0), (), "cudnn_first"),
        (AMPERE, (), "flash_first"),
        (ADA, ("flash_attn_2",), "flash_first"),
        ((7, 5), (), "flash_first"),
    ],
)
def test_auto_choice_per_capability(capability, packages, expected):
    backend, notes = choose_attention_backend("auto", "cuda", capability, present(*packages))
    assert backend == expected
    assert notes[-1].startswith(f"attention: {expected} (fastest available for CUDA capability {capability})")


def test_auto_leaves_old_gpus_to_pytorch_and_explains_skips(monkeypatch):
    assert choose_attention_backend("auto", "cuda", (3, 7)) == (
        None,
        ("attention: PyTorch's own SDPA choice (no listed kernel can run)",),
    )
    monkeypatch.setattr("ltx2_diffusers.pipelines.speed.AUTO_ATTENTION_ORDER", ((HOPPER, ("flash_attn_4", "cudnn")),))
    backend, notes = choose_attention_backend("auto", "cuda", HOPPER, lambda name: name == "cudnn")
    assert backend == "cudnn"
    assert notes[0] == (
        "attention: skipped flash_attn_4: flash_attn_4 needs the flash-attn-4 (flash_attn.cute) package, which does "
        "not import here"
    )


def test_requested_backend_is_used_or_falls_back_with_a_note():
    assert choose_attention_backend("sageattention", "cuda", HOPPER, present("sageattention")) == (
        "sageattention",
        ("attention: sageattention (requested)",),
    )
    backend, notes = choose_attention_backend("flash_attn_4", "cuda", AMPERE, present("flash_attn_4"))
    assert backend == "flash_first"
    assert notes[0] == (
        "attention: flash_attn_4 requested, but flash_attn_4 needs CUDA capability (9, 0) or newer (this GPU: (8, 0)); "
        "falling back to the automatic choice"
    )
    backend, notes = choose_attention_backend("flash_attn_2", "cpu", None, present("flash_attn_2"))
    assert backend is None
    assert notes == (
        "attention: flash_attn_2 requested, but flash_attn_2 needs a CUDA device (this one is cpu); falling back to "
        "the automatic choice",
        "attention: PyTorch's own SDPA choice (cpu: no faster kernel to pick)",
    )
    assert choose_attention_backend("math", "cpu", None) == ("math", ("attention: math (requested)",))
    with pytest.raises(ValueError, match=r"Unknown attention backend 'sage'; choose 'auto' or one of \['cudnn_first'"):
        choose_attention_backend("sage", "cuda", HOPPER)


def test_enable_fast_on_cpu_changes_nothing_and_says_so():
    pipe = build_tiny_pipeline()
    call = dict(height=64, width=64, num_frames=9, num_inference_steps=2, output_type="latent")
    before = pipe("a cat", generator=torch.Generator().manual_seed(0), **call)
    settings = pipe.enable_fast(fp8="rowwise")
    assert settings == FastSettings(
        device="cpu",
        attention_backend=None,
        compiled=False,
        fp8=None,
        notes=(
            "fp8: left off: cpu has no FP8 matmul (needs CUDA capability (8, 9)+), and emulated FP8 is slower than "
            "bf16",
            "attention: PyTorch's own SDPA choice (cpu: no faster kernel to pick)",
        ),
    )
    assert pipe.transformer.sdpa_backend is None and not pipe.transformer.is_fp8
    after = pipe("a cat", generator=torch.Generator().manual_seed(0), **call)
    torch.testing.assert_close(after.frames, before.frames, rtol=0, atol=0)
    torch.testing.assert_close(after.audio, before.audio, rtol=0, atol=0)


def test_enable_fast_compile_wraps_every_block():
    pipe = build_tiny_pipeline()
    settings = pipe.enable_fast(compile=True)  # compiles lazily: nothing runs here
    assert settings.compiled and settings.notes[-1].startswith("compile: every transformer block, fullgraph")
    assert all(block._compiled_call_impl is not None for block in pipe.transformer.transformer_blocks)


@pytest.mark.parametrize("name", ["cudnn_first", "flash_first"])
def test_priority_lists_run_the_first_kernel_that_can(name):
    q, k, v = (torch.randn(1, 2, 5, 8) for _ in range(3))
    expected = F.scaled_dot_product_attention(q, k, v)
    with sdpa_backend(name):  # no cuDNN on CPU: the next kernel of the list takes the call, nothing raises
        got = attention_module.attention(q, k, v, None)
        masked = attention_module.attention(q, k, v, torch.zeros(1, 1, 5, 5))
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(masked, expected)
    with pytest.raises(RuntimeError), sdpa_backend("cudnn"):  # the strict name refuses instead
        attention_module.attention(q, k, v, None)


def test_external_kernel_runs_for_half_precision_calls_without_mask(monkeypatch):
    seen = []

    def stand_in(q, k, v):  # takes and returns (B, T, H, d), as flash-attn does
        seen.append((q.dtype, tuple(q.shape), tuple(k.shape)))
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2) + 1  # +1: the result visibly comes from here

    monkeypatch.setitem(attention_module.EXTERNAL_BACKENDS, "flash_attn_2", (lambda: stand_in, "flash-attn"))
    attention_module.load_external_kernel.cache_clear()
    q, k, v = (torch.randn(1, 2, 5, 8, dtype=torch.bfloat16) for _ in range(3))  # (B, H, T, d)
    try:
        with sdpa_backend("flash_attn_2"):
            out = attention_module.attention(q, k, v, None)
            float32 = attention_module.attention(q.float(), k.float(), v.float(), None)  # SDPA: no half precision
            masked = attention_module.attention(q, k, v, torch.zeros(1, 1, 5, 5, dtype=torch.bfloat16))  # SDPA
        after = attention_module.attention(q, k, v, None)  # outside the block: SDPA again
        with sdpa_backend("flash_attn_2"):  # one graph under fullgraph compilation: the kernel is a custom op
            compiled = torch.compile(attention_module.attention, fullgraph=True, backend="eager")(q, k, v, None)
    finally:
        attention_module.load_external_kernel.cache_clear()
    assert seen[0] == (torch.bfloat16, (1, 5, 2, 8), (1, 5, 2, 8))
    assert len(seen) == 2  # the direct call and the compiled one
    torch.testing.assert_close(compiled, out)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v) + 1)
    torch.testing.assert_close(float32, F.scaled_dot_product_attention(q.float(), k.float(), v.float()))
    torch.testing.assert_close(masked, after)
    torch.testing.assert_close(after, F.scaled_dot_product_attention(q, k, v))


def test_external_kernel_that_does_not_import_is_refused_when_used():
    attention_module.load_external_kernel.cache_clear()
    if attention_module.external_backend_importable("flash_attn_4"):
        pytest.skip("flash_attn.cute is installed here")
    with pytest.raises(ValueError, match=r"'flash_attn_4' needs the flash-attn-4 \(flash_attn.cute\) package"):
        with sdpa_backend("flash_attn_4"):
            pass


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["flash_attn_2", "flash_attn_4", "sageattention"])
def test_external_kernel_matches_sdpa_on_gpu(backend):
    if not attention_module.external_backend_importable(backend):
        pytest.skip(f"{backend}'s package is not installed")
    generator = torch.Generator("cuda").manual_seed(0)
    q, k, v = (torch.randn(2, 32, 1536, 128, device="cuda", generator=generator, dtype=torch.bfloat16) for _ in "qkv")
    expected = F.scaled_dot_product_attention(q, k, v)
    with sdpa_backend(backend):
        got = attention_module.attention(q, k, v, None)
    error = ((got.float() - expected.float()).norm() / expected.float().norm()).item()
    assert error < (0.05 if backend == "sageattention" else 0.01), error


@pytest.mark.gpu
def test_enable_fast_on_gpu_picks_the_kernel_and_compiled_blocks_stay_close():
    from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline

    pipe = build_tiny_two_stage_pipeline().to("cuda", torch.bfloat16)
    call = dict(height=128, width=128, num_frames=9, num_inference_steps=2, output_type="latent")
    eager = pipe("a cat", generator=torch.Generator("cuda").manual_seed(0), **call)
    settings = pipe.enable_fast(compile=True)
    expected = "cudnn_first" if torch.cuda.get_device_capability() >= (9, 0) else "flash_first"
    assert (settings.attention_backend, settings.compiled) == (expected, True)
    fast = pipe("a cat", generator=torch.Generator("cuda").manual_seed(0), **call)
    for got, reference in ((fast.frames, eager.frames), (fast.audio, eager.audio)):
        error = ((got.float() - reference.float()).norm() / reference.float().norm()).item()
        assert error < 0.05, error  # bf16, another attention kernel and fused kernels: not bit-exact

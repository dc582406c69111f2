"""Training memory: `--vram GB` picks the savings a card needs, and `--use_8bit_adam` builds bitsandbytes' AdamW8bit.

`plan_memory` is a pure function of the model's sizes and the largest batch: it predicts the peak of one training
step on one GPU and turns savings on, cheapest first, until the prediction fits the budget:
1. gradient checkpointing (each block's activations recomputed in backward: ~20-30 % slower, ltx-trainer's docs);
2. 8-bit AdamW (the adapters' optimizer state in 8 bits: 16 -> 10 bytes per LoRA parameter);
3. FP8 base weights (`--fp8_base`: the frozen block linears in e4m3, 1 byte a weight plus a float32 scale per output
   channel, instead of 2 in bf16; the adapters stay in float32 and train live over them, models/fp8_lora.py);
4. block offloading (`--offload_blocks N`: the frozen weights of the last N transformer blocks live in pinned host
   memory and stream through two device slots, each block copied in on a side stream before its forward and again
   before its backward (with checkpointing, before its recompute), memory/placement.py `stream_for_training`; the
   adapters, their gradients and optimizer state stay on the device). N is the fewest blocks that fit: the first
   L - N blocks stay resident, which costs no copies. FP8 weights stream as FP8 bytes. Runs with validation
   and under DDP, not FSDP (`models.check_offload_blocks`).
Without bitsandbytes step 2 is skipped, without block sizes step 4. When even 1-4 do not fit (every block streamed),
the plan says what is left on the card and refuses.

The prediction (GiB = 2**30 bytes), per process:
    base weights (their dtype's bytes; with FP8 the block linears' weights 1 byte + 4 per output channel) + LoRA parameters x (4 param + 4 grad + 8 AdamW, or 2 in 8 bits)
    + activations: without checkpointing L blocks x 40 x tokens x width x 2 bytes, with it L x the block inputs
      (tokens x width x 2 bytes) plus one block's 40 x ... recomputed
    + 1 GiB (CUDA context, allocator slack)
    - with N blocks streamed, N - 2 blocks' frozen bytes (N blocks leave, two slots of the largest block come)
where tokens x width sums the video (F'H'W' x video width) and audio (25 per second x audio width) streams of the
largest bucket times the batch. Calibrated on LTX-2 19B, LoRA rank 32 on attention + FFN, 512x768x49 with audio,
checkpointing: 42.8 GiB predicted, 40.9 GiB measured on an H100 (docs/performance, DESIGN §3). The FP8 prediction
is the bf16 one with the block linears' bytes halved (no FP8 training measurement yet): 23.8 GiB for that run with
8-bit AdamW (18.1 GiB of FP8 base weights) (tests/test_training_fp8.py). Streaming moves no activation and no
adapter, so an offloading plan is the FP8 (or bf16) one less N - 2 blocks' bytes, 0.36 GiB a block of the 19B in FP8
(0.72 in bf16): for that run 24 GiB needs no streaming (23.8 GiB), 16 GiB streams 24 of the 48 blocks (15.9 GiB), and
with every block streamed 7.2 GiB are left (1.5 GiB of weights, 2.9 GiB of LoRA training state, 1.8 GiB of
activations, 1 GiB overhead); below that the plan refuses. Not calibrated on a streamed run yet
(tests/test_training_offload.py has a GPU test that checks a measured peak against the plan).
"""

from collections.abc import Iterable
from dataclasses import dataclass

GIB = 2**30
ACTIVATION_FACTOR = 40  # activation tensors one block keeps per token, in units of its width (bf16)
AUDIO_TOKENS_PER_SECOND = 25  # 16 kHz mel, hop 160, 4x downsampled
OVERHEAD_GIB = 1.0
BNB_INSTALL = "pip install bitsandbytes"


@dataclass(frozen=True)
class ModelSizes:
    """What the prediction needs of a model and a run: base_bytes (frozen weights as stored), lora_params (trainable
    adapter parameters), num_layers, video_width / audio_width (the streams' hidden sizes), video_tokens and
    audio_tokens of the largest bucket, batch_size (per process); fp8_base_bytes: the frozen weights with the block
    linears in FP8 (`frozen_bytes`), None where FP8 is not on offer; block_bytes / fp8_block_bytes: the frozen weights of
    the largest transformer block, plain and with FP8 linears (`block_frozen_bytes`), None where block offloading is
    not on offer."""

    base_bytes: int
    lora_params: int
    num_layers: int
    video_width: int
    audio_width: int
    video_tokens: int
    audio_tokens: int
    batch_size: int = 1
    fp8_base_bytes: int | None = None
    block_bytes: int | None = None
    fp8_block_bytes: int | None = None


@dataclass(frozen=True)
class MemoryPlan:
    gradient_checkpointing: bool
    use_8bit_adam: bool
    predicted_gib: float
    fp8_base: bool = False
    streamed_blocks: int = 0  # transformer blocks streamed from host memory (the last ones), 0: all resident
    num_layers: int | None = None

    def describe(self) -> str:
        offload = f"block offloading ({self.streamed_blocks} of {self.num_layers} blocks streamed from host memory)"
        chosen = [name for name, on in (("gradient checkpointing", self.gradient_checkpointing),
                                        ("8-bit AdamW", self.use_8bit_adam),
                                        ("FP8 base weights", self.fp8_base),
                                        (offload, self.streamed_blocks)) if on]  # fmt: skip
        return f"predicted peak {self.predicted_gib:.1f} GiB with {' + '.join(chosen) or 'no memory savings'}"


def predict_gib(sizes: ModelSizes, gradient_checkpointing: bool, use_8bit_adam: bool, fp8_base: bool = False,
                streamed_blocks: int = 0) -> float:  # fmt: skip
    """The predicted peak of one training step (see the module docstring), in GiB."""
    if fp8_base and sizes.fp8_base_bytes is None:
        raise ValueError("fp8_base=True needs ModelSizes.fp8_base_bytes (frozen_bytes gives it)")
    base = sizes.fp8_base_bytes if fp8_base else sizes.base_bytes
    if streamed_blocks:
        base -= (streamed_blocks - 2) * _block_bytes(sizes, fp8_base, streamed_blocks)
    lora_bytes = sizes.lora_params * (4 + 4 + (2 if use_8bit_adam else 8))
    width_tokens = sizes.batch_size * (sizes.video_tokens * sizes.video_width + sizes.audio_tokens * sizes.audio_width)
    block = ACTIVATION_FACTOR * width_tokens * 2
    activations = sizes.num_layers * width_tokens * 2 + block if gradient_checkpointing else sizes.num_layers * block
    return (base + lora_bytes + activations) / GIB + OVERHEAD_GIB


def _block_bytes(sizes: ModelSizes, fp8_base: bool, streamed_blocks: int) -> int:
    block = sizes.fp8_block_bytes if fp8_base else sizes.block_bytes
    if block is None:
        raise ValueError(
            f"streamed_blocks={streamed_blocks} with fp8_base={fp8_base} needs ModelSizes."
            f"{'fp8_block_bytes' if fp8_base else 'block_bytes'} (block_frozen_bytes gives it)"
        )
    if not 0 < streamed_blocks <= sizes.num_layers:
        raise ValueError(f"streamed_blocks={streamed_blocks}: the model has {sizes.num_layers} blocks")
    return block


def plan_memory(vram_gib: float, sizes: ModelSizes, *, gradient_checkpointing: bool = False,
                use_8bit_adam: bool = False, fp8_base: bool = False, can_8bit_adam: bool = True,
                streamed_blocks: int = 0) -> MemoryPlan:  # fmt: skip
    """The cheapest savings (beyond those already asked for) whose prediction fits `vram_gib`; a ValueError saying
    what does not fit otherwise. 8-bit AdamW is a step only where `can_8bit_adam` (bitsandbytes is installed), FP8
    base weights only where `sizes.fp8_base_bytes` is known, block offloading only where the block sizes are (then it
    streams the fewest blocks that fit, at least 3: two slots cost two blocks)."""
    if vram_gib <= 0:
        raise ValueError(f"--vram must be a positive number of GiB, got {vram_gib}")
    asked = streamed_blocks
    steps = [(gradient_checkpointing, use_8bit_adam, fp8_base, asked), (True, use_8bit_adam, fp8_base, asked)]
    if can_8bit_adam:
        steps.append((True, True, fp8_base, asked))
    if sizes.fp8_base_bytes is not None:
        steps.append((True, use_8bit_adam or can_8bit_adam, True, asked))
    _, eight_bit, fp8, _ = steps[-1]
    can_offload = (sizes.fp8_block_bytes if fp8 else sizes.block_bytes) is not None
    if can_offload:
        steps += [(True, eight_bit, fp8, n) for n in range(max(3, asked + 1), sizes.num_layers + 1)]
    for checkpointing, eight_bit, fp8, streamed in steps:
        predicted = predict_gib(sizes, checkpointing, eight_bit, fp8, streamed)
        if predicted <= vram_gib:
            return MemoryPlan(checkpointing, eight_bit, predicted, fp8, streamed, sizes.num_layers)
    savings = ["gradient checkpointing"] + ["8-bit AdamW"] * eight_bit + ["FP8 base weights"] * fp8
    in_fp8 = " in FP8" if fp8 else ""
    bnb = "" if eight_bit else f"8-bit AdamW needs bitsandbytes ({BNB_INSTALL}). "
    advice = "use smaller buckets, a lower --rank or fewer --lora_targets, or a card with more memory"
    if not can_offload:
        base = (sizes.fp8_base_bytes if fp8 else sizes.base_bytes) / GIB
        raise ValueError(
            f"--vram {vram_gib:g}: one training step is predicted at {predicted:.1f} GiB even with "
            f"{', '.join(savings[:-1])} and {savings[-1]} (the frozen base weights alone take {base:.1f} GiB"
            f"{in_fp8}). {bnb}Block offloading is not built into this plan (ModelSizes.block_bytes not given: "
            f"block_frozen_bytes gives it); {advice}"
        )
    weights = (sizes.fp8_base_bytes if fp8 else sizes.base_bytes) / GIB
    left = weights - (sizes.num_layers - 2) * _block_bytes(sizes, fp8, sizes.num_layers) / GIB
    raise ValueError(
        f"--vram {vram_gib:g}: one training step is predicted at {predicted:.1f} GiB even with "
        f"{', '.join(savings)} and block offloading (all {sizes.num_layers} blocks streamed from host memory: the "
        f"weights left on the card, outside the blocks plus two block slots, take {left:.1f} GiB{in_fp8}; the "
        f"activations and the LoRA's training state take {predicted - left - OVERHEAD_GIB:.1f} GiB). {bnb}"
        f"{advice[0].upper()}{advice[1:]}"
    )


def frozen_bytes(transformer, weight_dtype, fp8_layers: Iterable[str]) -> tuple[int, int]:
    """(bytes of the frozen weights in `weight_dtype`, the same with the linears named in `fp8_layers` in FP8: 1 byte
    a weight + a float32 scale per output channel). Counts the parameters that do not require a gradient, by name,
    so it gives the same numbers before and after `enable_fp8` and with peft's adapters in place (`<layer>.base_layer.
    weight`); a meta-device model is enough."""
    fp8_layers = set(fp8_layers)
    base = fp8 = 0
    for name, parameter in transformer.named_parameters():
        if parameter.requires_grad:
            continue
        size = parameter.numel() * weight_dtype.itemsize
        base += size
        layer, _, kind = name.replace(".base_layer.", ".").rpartition(".")
        fp8 += parameter.numel() + 4 * parameter.shape[0] if kind == "weight" and layer in fp8_layers else size
    return base, fp8


def block_frozen_bytes(transformer, weight_dtype, fp8_layers: Iterable[str]) -> tuple[int, int]:
    """`frozen_bytes` of the largest transformer block alone (what one streaming slot holds), plain and with the
    linears named in `fp8_layers` (names in the whole model) in FP8."""
    fp8_layers = set(fp8_layers)
    sizes = []
    for index, block in enumerate(transformer.transformer_blocks):
        prefix = f"transformer_blocks.{index}."
        names = [name.removeprefix(prefix) for name in fp8_layers if name.startswith(prefix)]
        sizes.append(frozen_bytes(block, weight_dtype, names))
    return max(sizes)


def bucket_tokens(width: int, height: int, num_frames: int, with_audio: bool,
                  reference_downscale_factor: int | None = None, fps: float = 24.0) -> tuple[int, int]:  # fmt: skip
    """(video tokens, audio tokens) of one sample of a bucket: F' x H/32 x W/32 (+ an IC-LoRA reference's at 1/factor
    of the size), and 25 audio tokens a second at `fps` when the mode runs audio."""
    video = ((num_frames - 1) // 8 + 1) * (height // 32) * (width // 32)
    if reference_downscale_factor:
        video += video // reference_downscale_factor**2
    audio = round(num_frames / fps * AUDIO_TOKENS_PER_SECOND) if with_audio else 0
    return video, audio




def check_bitsandbytes() -> None:
    """--use_8bit_adam needs bitsandbytes; a ValueError with the install line when it cannot be imported."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValueError(f"--use_8bit_adam needs bitsandbytes, which is not installed: {BNB_INSTALL}") from None


def make_optimizer(params, *, use_8bit_adam: bool, lr: float, betas: tuple[float, float], weight_decay: float,
                   eps: float):  # fmt: skip
    """AdamW (torch) or bitsandbytes' AdamW8bit (ltx-trainer's `adamw8bit`) with the same hyperparameters."""
    if use_8bit_adam:
        check_bitsandbytes()
        import bitsandbytes

        return bitsandbytes.optim.AdamW8bit(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps)
    import torch

    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps, foreach=True)

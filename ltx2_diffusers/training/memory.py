"""Training memory: `--vram GB` picks the savings a card needs, and `--use_8bit_adam` builds bitsandbytes' AdamW8bit.

`plan_memory` is a pure function of the model's sizes and the largest batch: it predicts the peak of one training
step on one GPU and turns savings on, cheapest first, until the prediction fits the budget:
1. gradient checkpointing (each block's activations recomputed in backward: ~20-30 % slower, ltx-trainer's docs);
2. 8-bit AdamW (the adapters' optimizer state in 8 bits: 16 -> 10 bytes per LoRA parameter).
FP8 base weights would come next (half the frozen weights' bytes), but peft cannot put adapters on the package's FP8
layers yet; when even 1-2 do not fit, the plan says what the base weights alone take and refuses.

The prediction (GiB = 2**30 bytes), per process:
    base weights (their dtype's bytes) + LoRA parameters x (4 param + 4 grad + 8 AdamW, or 2 in 8 bits)
    + activations: without checkpointing L blocks x 40 x tokens x width x 2 bytes, with it L x the block inputs
      (tokens x width x 2 bytes) plus one block's 40 x ... recomputed
    + 1 GiB (CUDA context, allocator slack)
where tokens x width sums the video (F'H'W' x video width) and audio (25 per second x audio width) streams of the
largest bucket times the batch. Calibrated on LTX-2 19B, LoRA rank 32 on attention + FFN, 512x768x49 with audio,
checkpointing: 42.8 GiB predicted, 40.9 GiB measured on an H100 (docs/performance, DESIGN §3).
"""

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
    audio_tokens of the largest bucket, batch_size (per process)."""

    base_bytes: int
    lora_params: int
    num_layers: int
    video_width: int
    audio_width: int
    video_tokens: int
    audio_tokens: int
    batch_size: int = 1


@dataclass(frozen=True)
class MemoryPlan:
    gradient_checkpointing: bool
    use_8bit_adam: bool
    predicted_gib: float

    def describe(self) -> str:
        chosen = [name for name, on in (("gradient checkpointing", self.gradient_checkpointing),
                                        ("8-bit AdamW", self.use_8bit_adam)) if on]  # fmt: skip
        return f"predicted peak {self.predicted_gib:.1f} GiB with {' + '.join(chosen) or 'no memory savings'}"


def predict_gib(sizes: ModelSizes, gradient_checkpointing: bool, use_8bit_adam: bool) -> float:
    """The predicted peak of one training step (see the module docstring), in GiB."""
    lora_bytes = sizes.lora_params * (4 + 4 + (2 if use_8bit_adam else 8))
    width_tokens = sizes.batch_size * (sizes.video_tokens * sizes.video_width + sizes.audio_tokens * sizes.audio_width)
    block = ACTIVATION_FACTOR * width_tokens * 2
    activations = sizes.num_layers * width_tokens * 2 + block if gradient_checkpointing else sizes.num_layers * block
    return (sizes.base_bytes + lora_bytes + activations) / GIB + OVERHEAD_GIB


def plan_memory(vram_gib: float, sizes: ModelSizes, *, gradient_checkpointing: bool = False,
                use_8bit_adam: bool = False) -> MemoryPlan:  # fmt: skip
    """The cheapest savings (beyond those already asked for) whose prediction fits `vram_gib`; a ValueError saying
    what does not fit otherwise."""
    if vram_gib <= 0:
        raise ValueError(f"--vram must be a positive number of GiB, got {vram_gib}")
    steps = [(gradient_checkpointing, use_8bit_adam), (True, use_8bit_adam), (True, True)]
    for checkpointing, eight_bit in steps:
        predicted = predict_gib(sizes, checkpointing, eight_bit)
        if predicted <= vram_gib:
            return MemoryPlan(checkpointing, eight_bit, predicted)
    base = sizes.base_bytes / GIB
    raise ValueError(
        f"--vram {vram_gib:g}: one training step is predicted at {predicted:.1f} GiB even with gradient checkpointing "
        f"and 8-bit AdamW (the frozen base weights alone take {base:.1f} GiB). FP8 base weights and block offloading "
        "are not built into the trainer yet; use smaller buckets, a lower --rank or fewer --lora_targets, or a card "
        "with more memory"
    )


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

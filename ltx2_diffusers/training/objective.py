"""The training objective of LTX-2 LoRAs, as ltx-trainer 1.2.0 defines it (ltx-trainer spec §3), in pure functions.

Per generated modality and sample: sigma ~ the shifted logit-normal of the modality's own token count (§3.1),
x_sigma = (1 - sigma) x0 + sigma eps, target = the velocity eps - x0 (§3.2), loss = the masked mean of the squared
error over tokens x channels, normalised by the kept-token fraction (§3.3); the modality losses are summed with weight 1.
A frozen modality is passed clean, with timesteps 0 and sigma 0, and has no loss (§3.4). Conditioning tokens (the first
latent frame in image-to-video) are clean, at timestep 0 and out of the loss, while the sample's sigma is unchanged.

What a mode trains is data (`TrainingMode`), not a subclass: which streams are generated, frozen or absent, and the
probability of first-frame conditioning.
"""

from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor

# ----------------------------------------------------------------------------------------------------------------------
# Modes


class Stream(Enum):
    """What a modality does in a training step."""

    GENERATED = "generated"  # noised, predicted, in the loss
    FROZEN = "frozen"  # clean, timestep 0, sigma 0: conditions the other modality through A<->V attention, no loss
    ABSENT = "absent"  # not passed: the transformer runs single-modality


@dataclass(frozen=True)
class TrainingMode:
    """One `--mode` of `scripts/train_lora.py` (the rows of ltx-trainer spec §1.5).

    first_frame_p: per-sample probability that latent frame 0 of the video is given clean (timestep 0, no loss).
    reference: IC-LoRA: the sample's reference video latents join the video tokens, clean at timestep 0, no loss.
    lora_targets: the `--lora_targets` preset used when none is given: the layers that get a gradient in this mode
    (ltx-trainer's config of the mode, spec §1.5: video-only calls adapt video layers, audio-only calls audio ones).
    """

    name: str
    video: Stream
    audio: Stream
    first_frame_p: float = 0.0
    description: str = ""
    reference: bool = False
    lora_targets: str = "all"

    def __post_init__(self):
        if Stream.GENERATED not in (self.video, self.audio):
            raise ValueError(f"mode {self.name!r} generates neither video nor audio: nothing would be trained")
        if not 0.0 <= self.first_frame_p <= 1.0:
            raise ValueError(f"mode {self.name!r}: first_frame_p={self.first_frame_p} is not a probability")
        if self.first_frame_p > 0 and self.video is not Stream.GENERATED:
            raise ValueError(f"mode {self.name!r}: first-frame conditioning needs a generated video stream")
        if self.reference and self.video is not Stream.GENERATED:
            raise ValueError(f"mode {self.name!r}: a reference video conditions a generated video stream")

    @property
    def needs_audio(self) -> bool:
        return self.audio is not Stream.ABSENT

    @property
    def has_video(self) -> bool:
        return self.video is not Stream.ABSENT


MODES: dict[str, TrainingMode] = {
    "t2v": TrainingMode(
        "t2v",
        Stream.GENERATED,
        Stream.ABSENT,
        description="text to video, video-only model calls",
        lora_targets="video",
    ),  # fmt: skip
    "t2av": TrainingMode("t2av", Stream.GENERATED, Stream.GENERATED, description="text to video with audio, joint"),
    # ltx-trainer's i2v_lora.yaml: first frame given with probability 0.5, audio generated too
    "i2v": TrainingMode(
        "i2v",
        Stream.GENERATED,
        Stream.GENERATED,
        first_frame_p=0.5,
        description="image to video with audio: latent frame 0 given clean (per sample, probability 0.5)",
    ),  # fmt: skip
    "a2v": TrainingMode("a2v", Stream.GENERATED, Stream.FROZEN, description="audio to video: the clip's audio given"),
    "v2a": TrainingMode("v2a", Stream.FROZEN, Stream.GENERATED, description="video to audio (Foley): video given"),
    # ltx-trainer's v2v_ic_lora.yaml: reference always (1.0), first frame 0.2, no audio
    "ic_lora": TrainingMode(
        "ic_lora",
        Stream.GENERATED,
        Stream.ABSENT,
        first_frame_p=0.2,
        reference=True,
        description="IC-LoRA video to video: a reference video's latents condition the clip",
        lora_targets="video",
    ),  # fmt: skip
    # ltx-trainer's t2a_lora.yaml: no video at all, audio attention + FFN adapted
    "audio": TrainingMode(
        "audio",
        Stream.ABSENT,
        Stream.GENERATED,
        description="text to audio, audio-only model calls",
        lora_targets="audio",
    ),  # fmt: skip
}


def get_mode(name: str) -> TrainingMode:
    """The `TrainingMode` called `name`; an unknown name raises a ValueError listing what exists."""
    if name not in MODES:
        raise ValueError(f"unknown --mode {name!r}. Modes that exist: {', '.join(MODES)}.")
    return MODES[name]


# ----------------------------------------------------------------------------------------------------------------------
# Sigma sampling (ltx-trainer spec §3.1)

# The logit-normal's mean is shifted linearly in the token count between these anchors (ltx-trainer's, not clamped).
SHIFT_ANCHORS = ((1024, 0.95), (4096, 2.05))
# Quantiles of N(0, 1) whose sigmoids bound the stretch: 0.5 % and 99.9 %.
LOW_QUANTILE, HIGH_QUANTILE = -2.5758, 3.0902


def logit_normal_shift(num_tokens: int) -> float:
    """mu(n) = 0.95 + (n - 1024) (2.05 - 0.95) / (4096 - 1024), linear and unclamped (spec §3.1, trap T1)."""
    (n0, mu0), (n1, mu1) = SHIFT_ANCHORS
    return mu0 + (num_tokens - n0) * (mu1 - mu0) / (n1 - n0)


def shifted_logit_normal_sigmas(
    batch_size: int,
    num_tokens: int,
    *,
    std: float = 1.0,
    eps: float = 1e-3,
    uniform_prob: float = 0.1,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """One sigma per sample (B,) float32, ltx-trainer's default sampler (spec §3.1). With mu = logit_normal_shift(n):

        s = sigmoid(mu + std z), z ~ N(0, 1)                                       (draw 1: randn(B))
        r = (s - lo) / (hi - lo),  lo, hi = sigmoid(mu - 2.5758 std), sigmoid(mu + 3.0902 std)
        r <- r if r >= eps else 2 eps - r;  r <- clamp(r, 0, 1)
        u = (1 - eps) U + eps                                                       (draw 2: rand(B))
        sigma = r where p > uniform_prob else u,  p ~ U[0, 1)                       (draw 3: rand(B))

    n is the token count of the modality being noised (reference tokens excluded); video and audio draw separately.
    """
    if num_tokens < 1 or batch_size < 1:
        raise ValueError(f"need batch_size >= 1 and num_tokens >= 1, got {batch_size} and {num_tokens}")
    mu = logit_normal_shift(num_tokens)
    z = torch.randn(batch_size, generator=generator, device=device, dtype=torch.float32)
    s = torch.sigmoid(z * std + mu)
    lo = torch.sigmoid(torch.tensor(mu + LOW_QUANTILE * std, dtype=torch.float32))
    hi = torch.sigmoid(torch.tensor(mu + HIGH_QUANTILE * std, dtype=torch.float32))
    r = (s - lo.to(s.device)) / (hi - lo).to(s.device)
    r = torch.where(r >= eps, r, 2 * eps - r).clamp(0.0, 1.0)
    u = (1 - eps) * torch.rand(batch_size, generator=generator, device=device, dtype=torch.float32) + eps
    p = torch.rand(batch_size, generator=generator, device=device, dtype=torch.float32)
    return torch.where(p > uniform_prob, r, u)


def uniform_sigmas(
    batch_size: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> Tensor:
    """sigma ~ U[0, 1), one per sample (B,) float32: ltx-trainer's `uniform` sampler with its defaults."""
    return torch.rand(batch_size, generator=generator, device=device, dtype=torch.float32)


@dataclass(frozen=True)
class SigmaSampler:
    """`--timestep_sampling` and its parameters (ltx-trainer's `flow_matching` section; its defaults)."""

    kind: str = "shifted_logit_normal"
    std: float = 1.0
    eps: float = 1e-3
    uniform_prob: float = 0.1

    def __post_init__(self):
        if self.kind not in ("shifted_logit_normal", "uniform"):
            raise ValueError(f"timestep sampling must be 'shifted_logit_normal' or 'uniform', got {self.kind!r}")
        if self.std <= 0 or not 0 < self.eps < 0.5 or not 0 <= self.uniform_prob <= 1:
            raise ValueError(
                f"need logit_std > 0, 0 < sigma_eps < 0.5 and uniform_prob in [0, 1]; got {self.std}, {self.eps}, "
                f"{self.uniform_prob}"
            )

    def __call__(self, batch_size: int, num_tokens: int, generator: torch.Generator | None, device=None) -> Tensor:
        if self.kind == "uniform":
            return uniform_sigmas(batch_size, generator=generator, device=device)
        return shifted_logit_normal_sigmas(
            batch_size, num_tokens, std=self.std, eps=self.eps, uniform_prob=self.uniform_prob,
            generator=generator, device=device,
        )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------------
# Noising, target, loss (spec §3.2, §3.3)


def noise_latents(x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
    """x_sigma = (1 - sigma) x0 + sigma noise. x0, noise: (B, T, C); sigma: (B,). Promotes to sigma's float32, as
    ltx-trainer's bf16 video latents are promoted (spec §3.2)."""
    s = sigma.view(-1, *([1] * (x0.ndim - 1)))
    return (1 - s) * x0 + s * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The flow-matching target the transformer predicts: v = noise - x0, in the latents' dtype (trap T3)."""
    return noise - x0


def masked_loss(prediction: Tensor, target: Tensor, loss_mask: Tensor) -> Tensor:
    """Per-sample loss (B,) float32: mean_{t,c}((pred - target)^2 M) / max(mean_{t,c}(M), 1e-8) (spec §3.3, trap T4).

    prediction, target: (B, T, C); loss_mask: (B, T) bool, True = in the loss. A sample with an empty mask gives 0.
    """
    mask = loss_mask.to(torch.float32).unsqueeze(-1).expand_as(prediction)
    squared = (prediction.float() - target.float()).pow(2) * mask
    dims = tuple(range(1, prediction.ndim))
    return squared.mean(dim=dims) / mask.mean(dim=dims).clamp(min=1e-8)


@dataclass(frozen=True)
class StreamInputs:
    """One modality's transformer inputs and loss terms for a step.

    latent: (B, T, C) what the transformer sees; timesteps: (B, T) per-token noise level (0 = clean);
    sigma: (B,) the sample's noise level (0 when frozen); target: (B, T, C) or None when frozen;
    loss_mask: (B, T) bool or None when frozen.
    """

    latent: Tensor
    timesteps: Tensor
    sigma: Tensor
    target: Tensor | None
    loss_mask: Tensor | None


def frozen_stream(x0: Tensor) -> StreamInputs:
    """A frozen modality: clean latent, timesteps and sigma 0, no loss (spec §3.4). Draws no random numbers."""
    batch, tokens = x0.shape[:2]
    zeros = torch.zeros(batch, tokens, dtype=torch.float32, device=x0.device)
    return StreamInputs(x0, zeros, zeros[:, 0], None, None)


def generated_stream(
    x0: Tensor,
    sampler: SigmaSampler,
    generator: torch.Generator | None,
    *,
    first_frame_tokens: int = 0,
    first_frame_p: float = 0.0,
) -> StreamInputs:
    """A generated modality, drawing in ltx-trainer's order (spec §3.5): sigma (3 draws), noise (randn of x0's shape),
    then, when `first_frame_p` > 0, one rand(B) for which samples get their first `first_frame_tokens` tokens clean.

    x0: (B, T, C) clean tokens, on the generator's device.
    """
    batch, tokens = x0.shape[:2]
    sigma = sampler(batch, tokens, generator, x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    latent = noise_latents(x0, noise, sigma)
    timesteps = sigma[:, None].expand(batch, tokens).clone()
    loss_mask = torch.ones(batch, tokens, dtype=torch.bool, device=x0.device)
    if first_frame_p > 0:
        if not 0 < first_frame_tokens < tokens:
            raise ValueError(f"first_frame_tokens={first_frame_tokens} must be in (0, {tokens}) for a video stream")
        chosen = torch.rand(batch, generator=generator, device=x0.device) < first_frame_p
        conditioned = torch.zeros(batch, tokens, dtype=torch.bool, device=x0.device)
        conditioned[:, :first_frame_tokens] = chosen[:, None]
        m = conditioned.unsqueeze(-1).to(torch.float32)
        latent = m * x0 + (1 - m) * latent
        timesteps = timesteps * (~conditioned)
        loss_mask = loss_mask & ~conditioned
    return StreamInputs(latent, timesteps, sigma, velocity_target(x0, noise), loss_mask)

"""The LTX-2 / LTX-2.3 audio VAE: log-mel spectrogram (B, 2, T, 64) <-> latent (B, 8, T_a, 16), spec §3.1-§3.2.

A 2-D convolutional VAE over (time, mel) that is causal in time: T mel frames (100 / s) become T_a = (T - 1) // 4 + 1
latent frames (25 / s), and T_a latent frames decode to 4 T_a - 3 mel frames. Both LTX-2 generations share it.

Method semantics follow diffusers' `AutoencoderKLLTX2Audio` (so this class is a drop-in in diffusers' pipelines):
`encode` returns the posterior of the raw latent and `decode` takes a raw latent. The diffusion transformer works on
latents normalised with the per-channel statistics `latents_mean` / `latents_std`; ltx-core applies them inside its
encoder and decoder. Here they are explicit:

    latents = audio_vae.encode_waveform(waveform, sample_rate)            # (B, 8, T_a, 16), normalised
    mel = audio_vae.decode(audio_vae.denormalize_latents(latents)).sample  # (B, 2, 4 T_a - 3, 64)
    waveform = vocoder(mel)                                                # (B, 2, S) at vocoder.config.output_sampling_rate

`pack_audio_latents` / `unpack_audio_latents` convert between (B, 8, T_a, 16) and the transformer's (B, T_a, 128)
tokens; `audio_latent_frames` gives T_a for a video clip, and `fit_audio_latent_frames` trims or pads encoded audio to it.
"""

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import AutoencoderMixin, DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from ..hub import ModelCardMixin
from ..loaders.from_single_file import FromLTX2SingleFileMixin
from .mel import waveform_to_mel

# Both ltx-core and diffusers fix the latent's time (and mel) compression at 4 = two stride-2 stages, whatever ch_mult
# says; decode() crops or zero-pads its output to that size, as the reference does.
LATENT_DOWNSAMPLE_FACTOR = 4
# The STFT size of the released front end (ltx-core's preprocessing.stft.filter_length); not a diffusers config key.
MEL_N_FFT = 1024
CAUSALITY_AXES = ("none", "width", "height", "width-compatibility")
NORM_TYPES = ("group", "pixel")


def audio_latent_frames(
    num_frames: int, fps: float, sample_rate: int = 16000, hop_length: int = 160, downsample_factor: int = 4
) -> int:
    """Latent frames of the audio that goes with `num_frames` video frames at `fps`: round(num_frames / fps * 25).

    25 = sample_rate / hop_length / downsample_factor latent frames per second; Python's round (half to even), as
    ltx-core's `AudioLatentShape.from_duration` (spec §0.1). 121 frames at 24 fps -> 126.
    """
    latents_per_second = float(sample_rate) / float(hop_length) / float(downsample_factor)
    return round(float(num_frames) / float(fps) * latents_per_second)


def pack_audio_latents(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, T, F) -> (B, T, C * F) tokens, channel-major (feature index c * F + f), spec §0.1."""
    if latents.ndim != 4:
        raise ValueError(f"audio latents must be (batch, channels, frames, mel_bins), got {tuple(latents.shape)}")
    return latents.transpose(1, 2).flatten(2)


def unpack_audio_latents(tokens: torch.Tensor, num_channels: int = 8) -> torch.Tensor:
    """(B, T, C * F) tokens -> (B, C, T, F) latents; the inverse of `pack_audio_latents`."""
    if tokens.ndim != 3 or tokens.shape[2] % num_channels != 0:
        raise ValueError(
            f"audio tokens must be (batch, frames, num_channels * mel_bins) with num_channels={num_channels}, got "
            f"{tuple(tokens.shape)}"
        )
    return tokens.unflatten(2, (num_channels, -1)).transpose(1, 2)


def fit_audio_latent_frames(latents: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Trim or zero-pad normalised latents (B, C, T, F) along time to `num_frames` (B, C, num_frames, F).

    For audio-conditioned generation, as ltx-pipelines' retake does: encoded audio rarely has exactly the clip's
    `audio_latent_frames` (a centred STFT adds a frame). Zero is the latents' per-channel mean, not silence.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames} must be at least 1")
    if latents.shape[2] >= num_frames:
        return latents[:, :, :num_frames]
    return F.pad(latents, (0, 0, 0, num_frames - latents.shape[2]))


# ---------------------------------------------------------------------------------------------------------------------
# Layers (parameter names are diffusers', which are also ltx-core's)
# ---------------------------------------------------------------------------------------------------------------------


class AudioCausalConv2d(nn.Module):
    """Conv2d over (time = height, mel = width), padded so that no output depends on a later time step.

    "height": time padded (k - 1, 0), mel centred; "width"/"width-compatibility": the reverse; "none": both centred.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, causality_axis: str):
        super().__init__()
        pad = kernel_size - 1
        centred = (pad // 2, pad - pad // 2)
        if causality_axis == "height":
            self.padding = (*centred, pad, 0)  # F.pad order: (mel left, mel right, time top, time bottom)
        elif causality_axis in ("width", "width-compatibility"):
            self.padding = (pad, 0, *centred)
        else:
            self.padding = (*centred, *centred)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class PixelNorm(nn.Module):
    """x / sqrt(mean over channels of x^2 + 1e-6), at every (time, mel) position; no parameters.

    eps is 1e-6 here, 1e-8 in the video VAE (spec §13.9).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-6)


def make_norm(norm_type: str, channels: int) -> nn.Module:
    if norm_type == "pixel":
        return PixelNorm()
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class AudioResnetBlock(nn.Module):
    """x + conv2(dropout(SiLU(norm2(conv1(SiLU(norm1(x))))))), with a 1x1 `nin_shortcut` when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, norm_type: str, causality_axis: str, dropout: float):
        super().__init__()
        self.norm1 = make_norm(norm_type, in_channels)
        self.conv1 = AudioCausalConv2d(in_channels, out_channels, 3, causality_axis)
        self.norm2 = make_norm(norm_type, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = AudioCausalConv2d(out_channels, out_channels, 3, causality_axis)
        if in_channels != out_channels:
            self.nin_shortcut = AudioCausalConv2d(in_channels, out_channels, 1, causality_axis)
        else:
            self.nin_shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AudioAttnBlock(nn.Module):
    """Single-head self-attention over all (time, mel) positions with 1x1-conv projections, residual.

    Present for config compatibility: the released configs have no attention resolutions and no mid attention.
    """

    def __init__(self, channels: int, norm_type: str):
        super().__init__()
        self.norm = make_norm(norm_type, channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        q, k, v = (proj(h).flatten(2).transpose(1, 2)[:, None] for proj in (self.q, self.k, self.v))  # (B, 1, HW, C)
        out = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2).reshape(x.shape)
        return x + self.proj_out(out)


class AudioDownsample(nn.Module):
    """Stride-2 3x3 conv on both axes after causal zero padding: time T -> (T - 1) // 2 + 1 for "height"."""

    # F.pad order (mel left, mel right, time top, time bottom); the causal axis gets 2 in front, the other 1 behind
    PADDING = {"none": (0, 1, 0, 1), "width": (2, 0, 0, 1), "height": (0, 1, 2, 0), "width-compatibility": (1, 0, 0, 1)}

    def __init__(self, channels: int, causality_axis: str):
        super().__init__()
        self.padding = self.PADDING[causality_axis]
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class AudioUpsample(nn.Module):
    """Nearest x2 on both axes, causal 3x3 conv, then drop the first row of the causal axis.

    The first two rows after x2 both depend only on the first input row; dropping one keeps lengths of the form 2n + 1,
    the inverse of `AudioDownsample` (T_a -> 2 T_a - 1 for "height").
    """

    def __init__(self, channels: int, causality_axis: str):
        super().__init__()
        self.causality_axis = causality_axis
        self.conv = AudioCausalConv2d(channels, channels, 3, causality_axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        if self.causality_axis == "height":
            return x[:, :, 1:]
        if self.causality_axis == "width":
            return x[:, :, :, 1:]
        return x  # "none", and "width-compatibility" as in the reference


class AudioDownStage(nn.Module):
    """One encoder level: `block` ResNet blocks (each followed by its `attn`, if any), then `downsample` if not last."""

    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module], downsample: nn.Module | None):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = run_blocks(self.block, self.attn, x)
        return x if self.downsample is None else self.downsample(x)


class AudioUpStage(nn.Module):
    """One decoder level: `block` ResNet blocks (each followed by its `attn`, if any), then `upsample` if not level 0."""

    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module], upsample: nn.Module | None):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)
        self.upsample = upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = run_blocks(self.block, self.attn, x)
        return x if self.upsample is None else self.upsample(x)


def run_blocks(blocks: nn.ModuleList, attns: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for i, block in enumerate(blocks):
        x = block(x)
        if len(attns) > 0:
            x = attns[i](x)
    return x


class AudioMidBlock(nn.Module):
    def __init__(self, channels: int, norm_type: str, causality_axis: str, dropout: float, add_attention: bool):
        super().__init__()
        self.block_1 = AudioResnetBlock(channels, channels, norm_type, causality_axis, dropout)
        self.attn_1 = AudioAttnBlock(channels, norm_type) if add_attention else nn.Identity()
        self.block_2 = AudioResnetBlock(channels, channels, norm_type, causality_axis, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class LTX2AudioEncoder(nn.Module):
    """Mel (B, in_channels, T, M) -> posterior moments (B, 2 * latent_channels, T_a, M / 4) (means first)."""

    def __init__(self, config: Mapping):
        super().__init__()
        base, ch_mult = config["base_channels"], config["ch_mult"]
        axis, norm = config["causality_axis"], config["norm_type"]
        attn_resolutions = set(config["attn_resolutions"] or ())
        self.conv_in = AudioCausalConv2d(config["in_channels"], base, 3, axis)
        self.down = nn.ModuleList()
        channels, resolution = base, config["resolution"]
        for level, multiplier in enumerate(ch_mult):
            blocks, attns = [], []
            for _ in range(config["num_res_blocks"]):
                blocks.append(AudioResnetBlock(channels, base * multiplier, norm, axis, config["dropout"]))
                channels = base * multiplier
                if resolution in attn_resolutions:
                    attns.append(AudioAttnBlock(channels, norm))
            is_last = level == len(ch_mult) - 1
            self.down.append(AudioDownStage(blocks, attns, None if is_last else AudioDownsample(channels, axis)))
            if not is_last:
                resolution //= 2
        self.mid = AudioMidBlock(channels, norm, axis, config["dropout"], config["mid_block_add_attention"])
        self.norm_out = make_norm(norm, channels)
        self.conv_out = AudioCausalConv2d(channels, 2 * config["latent_channels"], 3, axis)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(mel)
        for stage in self.down:
            h = stage(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class LTX2AudioDecoder(nn.Module):
    """Raw latent (B, latent_channels, T_a, F) -> mel (B, output_channels, 4 T_a - 3, mel_bins): cropped / zero-padded."""

    def __init__(self, config: Mapping):
        super().__init__()
        base, ch_mult = config["base_channels"], config["ch_mult"]
        axis, norm = config["causality_axis"], config["norm_type"]
        attn_resolutions = set(config["attn_resolutions"] or ())
        channels = base * ch_mult[-1]
        self.conv_in = AudioCausalConv2d(config["latent_channels"], channels, 3, axis)
        self.mid = AudioMidBlock(channels, norm, axis, config["dropout"], config["mid_block_add_attention"])
        stages = []  # built deepest first, stored shallowest first (up.0 is the last to run), as in the checkpoint
        resolution = config["resolution"] // 2 ** (len(ch_mult) - 1)
        for level in reversed(range(len(ch_mult))):
            blocks, attns = [], []
            for _ in range(config["num_res_blocks"] + 1):
                blocks.append(AudioResnetBlock(channels, base * ch_mult[level], norm, axis, config["dropout"]))
                channels = base * ch_mult[level]
                if resolution in attn_resolutions:
                    attns.append(AudioAttnBlock(channels, norm))
            stages.insert(0, AudioUpStage(blocks, attns, AudioUpsample(channels, axis) if level > 0 else None))
            if level > 0:
                resolution *= 2
        self.up = nn.ModuleList(stages)
        self.norm_out = make_norm(norm, channels)
        self.conv_out = AudioCausalConv2d(channels, config["output_channels"], 3, axis)
        self.output_channels, self.mel_bins, self.causal = config["output_channels"], config["mel_bins"], axis != "none"

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        num_frames, latent_bins = latents.shape[2:]
        h = self.mid(self.conv_in(latents))
        for stage in reversed(self.up):
            h = stage(h)
        mel = self.conv_out(F.silu(self.norm_out(h)))
        # Crop / zero-pad to the reference's target: the causal decoder's first latent frame holds one mel frame
        target_frames = num_frames * LATENT_DOWNSAMPLE_FACTOR
        if self.causal:
            target_frames = max(target_frames - (LATENT_DOWNSAMPLE_FACTOR - 1), 1)
        target_bins = latent_bins if self.mel_bins is None else self.mel_bins
        mel = mel[:, : self.output_channels, :target_frames, :target_bins]
        return F.pad(mel, (0, target_bins - mel.shape[3], 0, target_frames - mel.shape[2]))


# ---------------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------------


class AutoencoderKLLTX2Audio(FromLTX2SingleFileMixin, ModelCardMixin, ModelMixin, AutoencoderMixin, ConfigMixin):
    """Audio VAE: log-mel (B, 2, T, 64) <-> latent (B, 8, (T - 1) // 4 + 1, 16). Config = diffusers' class's.

    Config (released values in the defaults):
        base_channels: width of the first level (128); level i has base_channels * ch_mult[i] channels.
        output_channels: decoded mel channels (2, stereo). in_channels: encoded mel channels (2).
        ch_mult: width multipliers per level ((1, 2, 4): two stride-2 stages, /4 in time and mel).
        num_res_blocks: ResNet blocks per encoder level (the decoder has one more per level).
        attn_resolutions / resolution: add attention where the running "resolution" (resolution / 2^level) is listed
            (None in released configs). mid_block_add_attention: attention between the two mid blocks (False).
        latent_channels: 8. double_z: the encoder predicts mean and log-variance (must be True).
        norm_type: "pixel" (parameter-free RMS over channels, eps 1e-6) or "group" (GroupNorm(32), non-causal only).
        causality_axis: "height" (time, released), "width", "width-compatibility" or "none".
        dropout: in the ResNet blocks (0.0).
        sample_rate, mel_hop_length, mel_bins: the mel front end (16000, 160, 64); `encode_waveform` uses them, with an
            n_fft of 1024. is_causal (True): the latent frames' timestamps are shifted for the causal encoder; used by
            the pipeline's audio positions, not by this model.
    Buffers latents_mean / latents_std: (base_channels,) statistics of the packed latent (channel-major, spec §0.1).
    diffusers sizes them by base_channels, which equals latent_channels * mel_bins / 4 = 128 in released configs; the
    (de)normalisation raises if a config breaks that equality.
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        base_channels: int = 128,
        output_channels: int = 2,
        ch_mult: tuple[int, ...] = (1, 2, 4),
        num_res_blocks: int = 2,
        attn_resolutions: tuple[int, ...] | None = None,
        in_channels: int = 2,
        resolution: int = 256,
        latent_channels: int = 8,
        norm_type: str = "pixel",
        causality_axis: str = "height",
        dropout: float = 0.0,
        mid_block_add_attention: bool = False,
        sample_rate: int = 16000,
        mel_hop_length: int = 160,
        is_causal: bool = True,
        mel_bins: int | None = 64,
        double_z: bool = True,
    ) -> None:
        super().__init__()
        if causality_axis not in CAUSALITY_AXES:
            raise ValueError(f"causality_axis={causality_axis!r} is not supported; use one of {CAUSALITY_AXES}")
        if norm_type not in NORM_TYPES:
            raise ValueError(f"norm_type={norm_type!r} is not supported; use one of {NORM_TYPES}")
        if norm_type == "group" and causality_axis != "none":
            raise ValueError(
                "norm_type='group' normalises over time, which a causal model must not do; use norm_type='pixel' or "
                "causality_axis='none'."
            )
        if not double_z:
            raise ValueError(
                "double_z=False is not supported: the encoder's output is read as (mean, log-variance) halves, as in "
                "the reference and diffusers. Released configs use double_z=True."
            )
        self.encoder = LTX2AudioEncoder(self.config)
        self.decoder = LTX2AudioDecoder(self.config)
        self.register_buffer("latents_mean", torch.zeros(base_channels))
        self.register_buffer("latents_std", torch.ones(base_channels))
        # read by diffusers' LTX-2 pipelines
        self.temporal_compression_ratio = LATENT_DOWNSAMPLE_FACTOR
        self.mel_compression_ratio = LATENT_DOWNSAMPLE_FACTOR
        self.use_slicing = False

    @property
    def latent_mel_bins(self) -> int | None:
        """Mel bins of the latent (16 for 64): the encoder's stride-2 stages applied to `mel_bins`."""
        if self.config.mel_bins is None:
            return None
        bins = self.config.mel_bins
        mel_padding = sum(AudioDownsample.PADDING[self.config.causality_axis][:2])
        for _ in range(len(self.config.ch_mult) - 1):
            bins = (bins + mel_padding - 3) // 2 + 1
        return bins

    def _check_mel(self, mel: torch.Tensor) -> None:
        expected = (self.config.in_channels, self.config.mel_bins or mel.shape[-1])
        if mel.ndim != 4 or (mel.shape[1], mel.shape[3]) != expected:
            raise ValueError(
                f"the audio VAE encodes log-mel spectrograms of shape (batch, {expected[0]}, frames, {expected[1]}), "
                f"got {tuple(mel.shape)}. Make them with ltx2_diffusers.models.mel.waveform_to_mel (mono is "
                "duplicated to stereo there), or call encode_waveform."
            )

    def _check_latents(self, latents: torch.Tensor) -> None:
        # Two widths are valid: the encoder's (its stride-2 stages applied to mel_bins), and the width diffusers'
        # pipelines make, mel_bins // mel_compression_ratio. They differ only when ch_mult has not 3 levels (diffusers'
        # tiny test configs); the decoder crops / pads its output to mel_bins either way, as diffusers' does.
        channels = self.config.latent_channels
        widths = [self.latent_mel_bins or latents.shape[-1]]
        if self.config.mel_bins is not None and self.config.mel_bins // self.mel_compression_ratio not in widths:
            widths.append(self.config.mel_bins // self.mel_compression_ratio)
        if latents.ndim != 4 or latents.shape[1] != channels or latents.shape[3] not in widths:
            expected = " or ".join(f"(batch, {channels}, frames, {width})" for width in widths)
            raise ValueError(
                f"audio latents must have shape {expected}, got {tuple(latents.shape)}. Transformer tokens "
                f"(batch, frames, {channels * widths[0]}) unpack with unpack_audio_latents."
            )

    @apply_forward_hook
    def encode(self, sample: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        """Log-mel (B, in_channels, T, mel_bins) -> posterior over raw latents (B, latent_channels, (T-1)//4 + 1, F).

        The posterior's `mode()` is ltx-core's latent before normalisation; see `normalize_latents`.
        """
        self._check_mel(sample)
        if self.use_slicing and sample.shape[0] > 1:
            moments = torch.cat([self.encoder(one) for one in sample.split(1)])
        else:
            moments = self.encoder(sample)
        posterior = DiagonalGaussianDistribution(moments)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    @apply_forward_hook
    def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        """Raw latent (B, latent_channels, T_a, F) -> log-mel (B, output_channels, 4 T_a - 3, mel_bins).

        F is the encoder's latent width (`latent_mel_bins`) or, as diffusers' pipelines size their latents,
        mel_bins // mel_compression_ratio; the two differ only for configs without two stride-2 levels.
        """
        self._check_latents(z)
        if self.use_slicing and z.shape[0] > 1:
            mel = torch.cat([self.decoder(one) for one in z.split(1)])
        else:
            mel = self.decoder(z)
        return DecoderOutput(sample=mel) if return_dict else (mel,)

    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ) -> DecoderOutput | tuple:
        """Mel -> mel through the latent (posterior mode, or a sample with `sample_posterior`)."""
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, return_dict=return_dict)

    def _statistics(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """latents_mean / latents_std as (1, C, 1, F), in the latents' dtype: index c * F + f, as when packed."""
        num_channels, num_bins = latents.shape[1], latents.shape[3]
        if self.latents_mean.numel() != num_channels * num_bins:
            raise ValueError(
                f"latents_mean/latents_std hold {self.latents_mean.numel()} values (diffusers sizes them by "
                f"base_channels) but latents of shape {tuple(latents.shape)} need {num_channels} x {num_bins} = "
                f"{num_channels * num_bins}; choose base_channels = latent_channels * mel_bins / 4."
            )
        shape = (1, num_channels, 1, num_bins)
        return self.latents_mean.to(latents).view(shape), self.latents_std.to(latents).view(shape)

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw (B, C, T, F) -> (latents - mean) / std, the transformer's space (ltx-core's encoder output)."""
        self._check_latents(latents)
        mean, std = self._statistics(latents)
        return (latents - mean) / std

    def denormalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The transformer's (B, C, T, F) -> raw latents for `decode`: latents * std + mean."""
        self._check_latents(latents)
        mean, std = self._statistics(latents)
        return latents * std + mean

    @apply_forward_hook  # model CPU offload moves the VAE first, so the mel is made where the encoder runs
    def encode_waveform(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Waveform (B, C, S) at `sample_rate`, C = 1 (duplicated) or 2 -> normalised latents (B, 8, T_a, 16).

        ltx-core's `encode_audio`: resample to config.sample_rate, log-mel (n_fft 1024, hop config.mel_hop_length,
        config.mel_bins Slaney bins), encoder, posterior mean, per-channel normalisation. T_a = (S_16k // 160) // 4 + 1.
        """
        if self.config.mel_bins is None:
            raise ValueError("config.mel_bins is None, so the mel front end's size is unknown; set mel_bins (64).")
        mel = waveform_to_mel(
            waveform.to(self.device),
            sample_rate,
            target_sample_rate=self.config.sample_rate,
            n_fft=MEL_N_FFT,
            hop_length=self.config.mel_hop_length,
            num_mels=self.config.mel_bins,
        )
        latents = self.encode(mel.to(self.dtype)).latent_dist.mode()
        return self.normalize_latents(latents)

"""Vocoders: log-mel spectrograms [B, 2, T, 64] -> stereo waveforms.

- `LTX2Vocoder` (LTX-2): HiFi-GAN v1 generator, x240 upsampling, 100 mel frames/s -> 24 kHz (spec §3.3).
- `LTX2VocoderWithBWE` (LTX-2.3): a BigVGAN-v2 generator (anti-aliased SnakeBeta) to 16 kHz,
  then a bandwidth-extension generator to 48 kHz (spec §3.4). Its generators are `LTX2Vocoder`s with other configs.

Config keys, parameter and buffer names are those of diffusers' classes of the same names, so diffusers' `vocoder/`
folders load unchanged; the numerics follow ltx-core 1.0.0 (`ltx_core.model.audio_vae.vocoder`).
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..hub import ModelCardMixin
from ..loaders.from_single_file import FromLTX2SingleFileMixin

ACT_FNS = ("leaky_relu", "snake", "snakebeta")
FINAL_ACT_FNS = ("tanh", "clamp", None)
# ltx-core builds its LTX-2 `act_post` as `nn.LeakyReLU()`, whose default slope is 0.01, while every other LeakyReLU
# of the generator uses 0.1 (spec §13.9). The checkpoint was trained that way, so the slope is fixed, not a config key.
FINAL_LEAKY_RELU_SLOPE = 0.01


# ---------------------------------------------------------------------------------------------------------------------
# Resampling filters (pure functions; the modules below only store and apply them)
# ---------------------------------------------------------------------------------------------------------------------


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass of `kernel_size` taps, normalised to unit DC gain (BigVGAN's anti-alias filter).

    cutoff: in cycles per sample (0.5 = Nyquist); half_width: transition half-width, sets the Kaiser beta through the
    Kaiser design formula for the attenuation A = 2.285 (N/2 - 1) pi (4 half_width) + 7.95 dB. Returns (kernel_size,).
    """
    if not 0.0 <= cutoff <= 0.5:
        raise ValueError(f"cutoff={cutoff} must lie in [0, 0.5] (cycles per sample; 0.5 is the Nyquist frequency)")
    half_size = kernel_size // 2
    attenuation = 2.285 * (half_size - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    # Taps sit on half-integers for an even length so the filter stays symmetric about the centre.
    if kernel_size % 2 == 0:
        taps = torch.arange(-half_size, half_size) + 0.5
    else:
        taps = torch.arange(kernel_size) - half_size
    if cutoff == 0.0:
        return torch.zeros_like(taps)
    x = 2 * cutoff * taps
    sinc = torch.where(x == 0, torch.ones_like(x), torch.sin(math.pi * x) / math.pi / x)
    lowpass = 2 * cutoff * window * sinc
    return lowpass / lowpass.sum()


def hann_sinc_filter(ratio: int, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> torch.Tensor:
    """The Hann-windowed sinc of torchaudio's default resampler, for integer upsampling by `ratio` (BWE skip path).

    `2 * ceil(lowpass_filter_width / rolloff) * ratio + 1` taps (43 for ratio 3), cutoff `rolloff` x the input Nyquist.
    """
    width = math.ceil(lowpass_filter_width / rolloff)
    kernel_size = 2 * width * ratio + 1
    t = (torch.arange(kernel_size) / ratio - width) * rolloff
    window = torch.cos(t.clamp(-lowpass_filter_width, lowpass_filter_width) * math.pi / lowpass_filter_width / 2) ** 2
    return torch.sinc(t) * window * rolloff / ratio


class UpSample1d(nn.Module):
    """Integer upsampling by zero-stuffing + low-pass (a grouped transposed conv), edges padded by replication.

    window "kaiser": BigVGAN's anti-alias upsampler (default 6*ratio taps, rounded down to even).
    window "hann": torchaudio's sinc resampler kernel (`hann_sinc_filter`), for the BWE's skip connection.
    Buffer `filter` (1, 1, K); persistent for "kaiser" in checkpoints, computed (non-persistent) for "hann".
    """

    def __init__(self, ratio: int = 2, kernel_size: int | None = None, window: str = "kaiser", persistent: bool = True):
        super().__init__()
        self.ratio = ratio
        if window == "hann":
            lowpass = hann_sinc_filter(ratio)
            kernel_size = lowpass.numel()
            self.pad = (kernel_size - 1) // (2 * ratio)  # input samples replicated on each side
            self.crop_left, self.crop_right = kernel_size - 1, kernel_size - ratio
        elif window == "kaiser":
            kernel_size = kernel_size or int(6 * ratio // 2) * 2
            lowpass = kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size)
            self.pad = kernel_size // ratio - 1
            self.crop_left = self.pad * ratio + (kernel_size - ratio) // 2
            self.crop_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        else:
            raise ValueError(f"window={window!r} is not supported; use 'kaiser' (anti-alias) or 'hann' (resampler)")
        self.register_buffer("filter", lowpass.view(1, 1, -1), persistent=persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, C, ratio * L)."""
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        lowpass = self.filter.to(dtype=x.dtype, device=x.device).expand(channels, -1, -1)
        x = self.ratio * F.conv_transpose1d(x, lowpass, stride=self.ratio, groups=channels)
        return x[..., self.crop_left : -self.crop_right]


class DownSample1d(nn.Module):
    """Kaiser-sinc low-pass then keep every `ratio`-th sample, edges padded by replication. Buffer `filter` (1, 1, K)."""

    def __init__(self, ratio: int = 2, kernel_size: int | None = None, persistent: bool = True):
        super().__init__()
        self.ratio = ratio
        kernel_size = kernel_size or int(6 * ratio // 2) * 2
        self.pad_left, self.pad_right = kernel_size // 2 - (1 - kernel_size % 2), kernel_size // 2
        lowpass = kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size)
        self.register_buffer("filter", lowpass.view(1, 1, -1), persistent=persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, C, ceil(L / ratio))."""
        channels = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(channels, -1, -1), stride=self.ratio, groups=channels)


class SnakeBeta(nn.Module):
    """x + sin^2(a x) / (b + 1e-9), per channel, with a = exp(alpha) and b = exp(beta) (log-scale parameters).

    use_beta=False is plain Snake (b = a). Parameters `alpha`, `beta` of shape (channels,).
    """

    def __init__(self, channels: int, use_beta: bool = True):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels)) if use_beta else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, C, L)."""
        alpha = torch.exp(self.alpha)[None, :, None]
        amplitude = alpha if self.beta is None else torch.exp(self.beta)[None, :, None]
        return x + (1.0 / (amplitude + 1e-9)) * torch.sin(x * alpha).pow(2)


class AntiAliasAct1d(nn.Module):
    """An activation run at twice the sample rate (upsample -> act -> downsample) so it does not alias (BigVGAN v2)."""

    def __init__(self, act: nn.Module, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.upsample = UpSample1d(ratio, kernel_size)
        self.act = act
        self.downsample = DownSample1d(ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def make_activation(
    act_fn: str, channels: int, negative_slope: float, antialias: bool, ratio: int, kernel_size: int
) -> nn.Module:
    if act_fn == "leaky_relu":
        act = nn.LeakyReLU(negative_slope)
    else:
        act = SnakeBeta(channels, use_beta=act_fn == "snakebeta")
    return AntiAliasAct1d(act, ratio, kernel_size) if antialias else act


class ResBlock(nn.Module):
    """HiFi-GAN ResBlock1 / BigVGAN AMPBlock1: for each dilation d, x += conv2(act2(conv1_d(act1(x)))).

    Dilated convolutions keep the length ('same' padding). Modules: convs1, acts1, convs2, acts2 (diffusers' names).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        dilations: Sequence[int],
        act_fn: str,
        negative_slope: float,
        antialias: bool,
        antialias_ratio: int,
        antialias_kernel_size: int,
    ):
        super().__init__()

        def conv(dilation: int) -> nn.Conv1d:
            return nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding="same")

        def act() -> nn.Module:
            return make_activation(act_fn, channels, negative_slope, antialias, antialias_ratio, antialias_kernel_size)

        self.convs1 = nn.ModuleList(conv(d) for d in dilations)
        self.acts1 = nn.ModuleList(act() for _ in dilations)
        self.convs2 = nn.ModuleList(conv(1) for _ in dilations)
        self.acts2 = nn.ModuleList(act() for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for act1, conv1, act2, conv2 in zip(self.acts1, self.convs1, self.acts2, self.convs2):
            x = x + conv2(act2(conv1(act1(x))))
        return x


# ---------------------------------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------------------------------


class LTX2Vocoder(FromLTX2SingleFileMixin, ModelCardMixin, ModelMixin, ConfigMixin):
    """HiFi-GAN / BigVGAN-v2 generator: mel spectrogram (B, C, T, M) -> waveform (B, out_channels, T * prod(factors)).

    Config (diffusers' keys; LTX-2 values in the defaults):
        in_channels: C * M of the input, stereo-major (128 = 2 channels x 64 mel bins).
        hidden_channels: width after conv_in; halved by each upsampler (1024 -> 32).
        out_channels: waveform channels (2, stereo).
        upsample_kernel_sizes / upsample_factors: one transposed conv per stage; the factors multiply to the hop
            (6*5*2*2*2 = 240 output samples per mel frame).
        resnet_kernel_sizes / resnet_dilations: the ResBlocks after each upsampler (their outputs are averaged).
        act_fn: "leaky_relu" (HiFi-GAN, LTX-2; also applied before each upsampler), "snakebeta" or "snake" (BigVGAN).
        leaky_relu_negative_slope: slope inside the ResBlocks and before the upsamplers (0.1). The last activation
            before conv_out is a LeakyReLU of slope 0.01 for "leaky_relu" (as trained), an anti-aliased SnakeBeta else.
        antialias, antialias_ratio, antialias_kernel_size: run ResBlock activations at `ratio` x the rate (BigVGAN).
        final_act_fn: "tanh" (LTX-2), "clamp" to [-1, 1], or None (the BWE generator's residual).
        final_bias: whether conv_out has a bias.
        output_sampling_rate: sample rate of the waveform (24000 for LTX-2). Metadata for callers; not used here.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 128,
        hidden_channels: int = 1024,
        out_channels: int = 2,
        upsample_kernel_sizes: Sequence[int] = (16, 15, 8, 4, 4),
        upsample_factors: Sequence[int] = (6, 5, 2, 2, 2),
        resnet_kernel_sizes: Sequence[int] = (3, 7, 11),
        resnet_dilations: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        act_fn: str = "leaky_relu",
        leaky_relu_negative_slope: float = 0.1,
        antialias: bool = False,
        antialias_ratio: int = 2,
        antialias_kernel_size: int = 12,
        final_act_fn: str | None = "tanh",
        final_bias: bool = True,
        output_sampling_rate: int = 24000,
    ):
        super().__init__()
        if len(upsample_kernel_sizes) != len(upsample_factors):
            raise ValueError(
                f"upsample_kernel_sizes {list(upsample_kernel_sizes)} and upsample_factors {list(upsample_factors)} "
                "must have one entry per upsampling stage (the same length)."
            )
        if len(resnet_kernel_sizes) != len(resnet_dilations):
            raise ValueError(
                f"resnet_kernel_sizes {list(resnet_kernel_sizes)} and resnet_dilations {list(resnet_dilations)} must "
                "have one entry per ResBlock (the same length)."
            )
        if act_fn not in ACT_FNS:
            raise ValueError(f"act_fn={act_fn!r} is not supported; use one of {ACT_FNS}")
        if final_act_fn not in FINAL_ACT_FNS:
            raise ValueError(f"final_act_fn={final_act_fn!r} is not supported; use one of {FINAL_ACT_FNS}")
        if hidden_channels % 2 ** len(upsample_factors) != 0:
            raise ValueError(
                f"hidden_channels={hidden_channels} must be divisible by 2**{len(upsample_factors)}: each of the "
                f"{len(upsample_factors)} upsamplers halves the width."
            )

        self.conv_in = nn.Conv1d(in_channels, hidden_channels, kernel_size=7, padding=3)
        self.upsamplers = nn.ModuleList()
        self.resnets = nn.ModuleList()  # len(resnet_kernel_sizes) per upsampler, flat (diffusers' and the file's order)
        channels = hidden_channels
        for kernel_size, factor in zip(upsample_kernel_sizes, upsample_factors):
            # padding (k - u) / 2 makes each stage exactly u times longer
            self.upsamplers.append(
                nn.ConvTranspose1d(
                    channels, channels // 2, kernel_size, stride=factor, padding=(kernel_size - factor) // 2
                )
            )
            channels //= 2
            for resnet_kernel_size, dilations in zip(resnet_kernel_sizes, resnet_dilations):
                self.resnets.append(
                    ResBlock(
                        channels,
                        resnet_kernel_size,
                        list(dilations),
                        act_fn,
                        leaky_relu_negative_slope,
                        antialias,
                        antialias_ratio,
                        antialias_kernel_size,
                    )
                )
        if act_fn == "leaky_relu":
            self.act_out = nn.LeakyReLU(FINAL_LEAKY_RELU_SLOPE)
        else:  # BigVGAN's final activation is always an anti-aliased SnakeBeta, also for act_fn "snake"
            self.act_out = AntiAliasAct1d(SnakeBeta(channels), antialias_ratio, antialias_kernel_size)
        self.conv_out = nn.Conv1d(channels, out_channels, kernel_size=7, padding=3, bias=final_bias)

    def forward(self, hidden_states: torch.Tensor, time_last: bool = False) -> torch.Tensor:
        """Log-mel (B, C, T, M), or (B, C, M, T) with time_last=True -> waveform (B, out_channels, T * prod(factors)).

        C * M must equal in_channels; the features are flattened stereo-major (index = c * M + m), as trained.
        """
        if hidden_states.ndim != 4:
            raise ValueError(
                f"the vocoder expects a log-mel spectrogram of shape (batch, channels, frames, mel_bins), got "
                f"{tuple(hidden_states.shape)}; stereo LTX-2 mels are (B, 2, T, 64)."
            )
        if not time_last:
            hidden_states = hidden_states.transpose(2, 3)  # (B, C, M, T)
        channels, mel_bins = hidden_states.shape[1:3]
        if channels * mel_bins != self.config.in_channels:
            raise ValueError(
                f"the mel spectrogram has {channels} channels x {mel_bins} mel bins = {channels * mel_bins} features "
                f"per frame, but this vocoder's conv_in takes in_channels={self.config.in_channels}. Pass a "
                f"(B, C, T, M) mel with C * M = {self.config.in_channels} (stereo LTX-2: C=2, M=64)"
                + ("" if time_last else ", or set time_last=True for a (B, C, M, T) input")
                + "."
            )
        x = self.conv_in(hidden_states.flatten(1, 2))
        num_resnets = len(self.config.resnet_kernel_sizes)
        for i, upsampler in enumerate(self.upsamplers):
            if self.config.act_fn == "leaky_relu":  # BigVGAN has its activations inside the ResBlocks only
                x = F.leaky_relu(x, self.config.leaky_relu_negative_slope)
            x = upsampler(x)
            # stack-then-mean, as the reference does, so the rounding matches
            x = torch.stack([self.resnets[j](x) for j in range(i * num_resnets, (i + 1) * num_resnets)]).mean(dim=0)
        x = self.conv_out(self.act_out(x))
        if self.config.final_act_fn == "tanh":
            x = torch.tanh(x)
        elif self.config.final_act_fn == "clamp":
            x = x.clamp(-1, 1)
        return x


# ---------------------------------------------------------------------------------------------------------------------
# LTX-2.3: vocoder + bandwidth extension (spec §3.4)
#
# The BWE stage re-analyses the 16 kHz waveform with a causal STFT whose DFT x window bases and mel filterbank are
# checkpoint buffers (bf16 "exactly as trained", so they are loaded, never recomputed), predicts the missing high band
# with a second generator (x240: 200 frames/s -> 48 kHz) and adds it to a sinc-upsampled copy of the 16 kHz signal.
# ---------------------------------------------------------------------------------------------------------------------


class CausalSTFT(nn.Module):
    """STFT as a strided conv1d with stored bases, left-padded so a frame sees only the past (no look-ahead).

    Buffers (from the checkpoint): forward_basis (2F, 1, n_fft) = [real rows; imaginary rows] of the windowed DFT,
    F = n_fft // 2 + 1; inverse_basis, same shape, kept only so checkpoints round-trip (nothing here inverts).
    """

    def __init__(self, filter_length: int = 512, hop_length: int = 80, window_length: int = 512):
        super().__init__()
        self.hop_length = hop_length
        self.left_pad = max(0, window_length - hop_length)
        num_freqs = filter_length // 2 + 1
        self.register_buffer("forward_basis", torch.zeros(2 * num_freqs, 1, filter_length))
        self.register_buffer("inverse_basis", torch.zeros(2 * num_freqs, 1, filter_length))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(N, S) -> magnitude (N, F, S // hop) for S a multiple of hop (one frame per hop, the last ending at S)."""
        spec = F.conv1d(F.pad(waveform[:, None], (self.left_pad, 0)), self.forward_basis, stride=self.hop_length)
        real, imag = spec.chunk(2, dim=1)
        return torch.sqrt(real**2 + imag**2)


class MelSTFT(nn.Module):
    """Causal log-mel spectrogram: log(clamp(mel_basis @ |STFT|, 1e-5)). Buffer mel_basis (n_mels, F) from the file."""

    def __init__(
        self, filter_length: int = 512, hop_length: int = 80, window_length: int = 512, num_mel_channels: int = 64
    ):
        super().__init__()
        self.stft_fn = CausalSTFT(filter_length, hop_length, window_length)
        self.register_buffer("mel_basis", torch.zeros(num_mel_channels, filter_length // 2 + 1))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(N, S) -> (N, n_mels, S // hop)."""
        magnitude = self.stft_fn(waveform)
        mel = torch.matmul(self.mel_basis.to(magnitude.dtype), magnitude)
        return torch.log(torch.clamp(mel, min=1e-5))


class LTX2VocoderWithBWE(FromLTX2SingleFileMixin, ModelCardMixin, ModelMixin, ConfigMixin):
    """Mel (B, 2, T, 64) at 100 frames/s -> stereo waveform (B, 2, 480 T) at output_sampling_rate (48 kHz).

    Config (diffusers' keys; LTX-2.3 values in the defaults): the first block configures `vocoder`, the BigVGAN-v2
    generator to input_sampling_rate (see `LTX2Vocoder`); the `bwe_*` keys configure `bwe_generator` the same way;
    filter_length / hop_length / window_length / num_mel_channels shape `mel_stft`, the causal analysis of the
    vocoder's output (hop 80 at 16 kHz = 200 frames/s); input_sampling_rate -> output_sampling_rate must be an integer
    ratio (16 -> 48 kHz: x3), which is also the skip connection's upsampling factor.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 128,
        hidden_channels: int = 1536,
        out_channels: int = 2,
        upsample_kernel_sizes: Sequence[int] = (11, 4, 4, 4, 4, 4),
        upsample_factors: Sequence[int] = (5, 2, 2, 2, 2, 2),
        resnet_kernel_sizes: Sequence[int] = (3, 7, 11),
        resnet_dilations: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        act_fn: str = "snakebeta",
        leaky_relu_negative_slope: float = 0.1,
        antialias: bool = True,
        antialias_ratio: int = 2,
        antialias_kernel_size: int = 12,
        final_act_fn: str | None = None,
        final_bias: bool = False,
        bwe_in_channels: int = 128,
        bwe_hidden_channels: int = 512,
        bwe_out_channels: int = 2,
        bwe_upsample_kernel_sizes: Sequence[int] = (12, 11, 4, 4, 4),
        bwe_upsample_factors: Sequence[int] = (6, 5, 2, 2, 2),
        bwe_resnet_kernel_sizes: Sequence[int] = (3, 7, 11),
        bwe_resnet_dilations: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        bwe_act_fn: str = "snakebeta",
        bwe_leaky_relu_negative_slope: float = 0.1,
        bwe_antialias: bool = True,
        bwe_antialias_ratio: int = 2,
        bwe_antialias_kernel_size: int = 12,
        bwe_final_act_fn: str | None = None,
        bwe_final_bias: bool = False,
        filter_length: int = 512,
        hop_length: int = 80,
        window_length: int = 512,
        num_mel_channels: int = 64,
        input_sampling_rate: int = 16000,
        output_sampling_rate: int = 48000,
    ):
        super().__init__()
        if output_sampling_rate % input_sampling_rate != 0:
            raise ValueError(
                f"output_sampling_rate={output_sampling_rate} must be an integer multiple of "
                f"input_sampling_rate={input_sampling_rate}: the skip connection upsamples by an integer factor."
            )
        if bwe_in_channels != out_channels * num_mel_channels:
            raise ValueError(
                f"bwe_in_channels={bwe_in_channels} must equal out_channels * num_mel_channels = {out_channels} * "
                f"{num_mel_channels}: the BWE generator reads the mel of every channel of the first vocoder's output."
            )
        self.vocoder = LTX2Vocoder(
            in_channels=in_channels,
            hidden_channels=hidden_channels,
            out_channels=out_channels,
            upsample_kernel_sizes=upsample_kernel_sizes,
            upsample_factors=upsample_factors,
            resnet_kernel_sizes=resnet_kernel_sizes,
            resnet_dilations=resnet_dilations,
            act_fn=act_fn,
            leaky_relu_negative_slope=leaky_relu_negative_slope,
            antialias=antialias,
            antialias_ratio=antialias_ratio,
            antialias_kernel_size=antialias_kernel_size,
            final_act_fn=final_act_fn,
            final_bias=final_bias,
            output_sampling_rate=input_sampling_rate,
        )
        self.bwe_generator = LTX2Vocoder(
            in_channels=bwe_in_channels,
            hidden_channels=bwe_hidden_channels,
            out_channels=bwe_out_channels,
            upsample_kernel_sizes=bwe_upsample_kernel_sizes,
            upsample_factors=bwe_upsample_factors,
            resnet_kernel_sizes=bwe_resnet_kernel_sizes,
            resnet_dilations=bwe_resnet_dilations,
            act_fn=bwe_act_fn,
            leaky_relu_negative_slope=bwe_leaky_relu_negative_slope,
            antialias=bwe_antialias,
            antialias_ratio=bwe_antialias_ratio,
            antialias_kernel_size=bwe_antialias_kernel_size,
            final_act_fn=bwe_final_act_fn,
            final_bias=bwe_final_bias,
            output_sampling_rate=output_sampling_rate,
        )
        self.mel_stft = MelSTFT(filter_length, hop_length, window_length, num_mel_channels)
        # torchaudio's sinc kernel, computed (not a checkpoint tensor), like the reference's resampler
        self.resampler = UpSample1d(output_sampling_rate // input_sampling_rate, window="hann", persistent=False)

    def forward(self, mel_spec: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, C, T, M) -> waveform (B, C, S * out_rate / in_rate) in [-1, 1], S = the first vocoder's length."""
        # 1. Mel -> waveform at input_sampling_rate (16 kHz), clamped to [-1, 1]. ltx-core 1.0.0 always clamps here
        # (its first generator keeps the default final activation, a clamp since use_tanh_at_final is false), while the
        # diffusers-converted configs say final_act_fn=None for this stage; the reference wins (DESIGN §1.1).
        waveform = self.vocoder(mel_spec).clamp(-1, 1)  # (B, C, S)
        batch_size, channels, num_samples = waveform.shape
        output_samples = num_samples * self.config.output_sampling_rate // self.config.input_sampling_rate
        # 2. Right-pad to whole hops so every sample lands in a frame, then re-analyse causally: (B, C, T2, n_mels)
        waveform = F.pad(waveform, (0, -num_samples % self.config.hop_length))
        mel = self.mel_stft(waveform.flatten(0, 1)).unflatten(0, (batch_size, channels)).transpose(2, 3)
        # 3. High band predicted by the BWE generator, added to the band-limited upsampled input
        residual = self.bwe_generator(mel)
        skip = self.resampler(waveform)
        return torch.clamp(residual + skip, -1, 1)[..., :output_samples]

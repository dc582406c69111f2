"""The audio VAE's front end in pure torch: waveform -> 16 kHz -> log-mel spectrogram (B, 2, T, 64), spec §3.1.

ltx-core 1.0.0 (`AudioProcessor`) calls torchaudio: `functional.resample` (sinc interpolation with a Hann window,
6 zero crossings, rolloff 0.99), then `transforms.MelSpectrogram(n_fft=1024, hop_length=160, center=True, reflect
padding, power=1, mel_scale="slaney", norm="slaney")`, then `log(clamp(mel, 1e-5))`. The functions below implement the
same formulas with torch only (this package must not import torchaudio), in the same float32 order of operations, so
they agree with torchaudio to rounding.

Differences from the reference, by design:
- Mono input (B, 1, S) is duplicated to two channels (the encoder is stereo-only; ltx-core rejects mono downstream).
- The mel is computed in float32 (float64 stays float64) and returned in that dtype; ltx-core computes in the waveform's
  dtype and casts back, which for a bf16 waveform means a bf16 resampling kernel. Cast the result where you need it.
"""

import math

import torch
import torch.nn.functional as F

# Slaney's mel scale (Auditory Toolbox / librosa htk=False): linear below 1 kHz, 3 mels per 200 Hz; logarithmic above,
# 27 steps per factor 6.4 in frequency.
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL  # 15
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def hz_to_slaney_mel(freq: float) -> float:
    """A frequency in Hz on Slaney's mel scale."""
    if freq < _SLANEY_BREAK_HZ:
        return freq / _SLANEY_HZ_PER_MEL
    return _SLANEY_BREAK_MEL + math.log(freq / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP


def slaney_mel_to_hz(mels: torch.Tensor) -> torch.Tensor:
    """Inverse of `hz_to_slaney_mel`, elementwise."""
    linear = mels * _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_BREAK_HZ * torch.exp(_SLANEY_LOG_STEP * (mels - _SLANEY_BREAK_MEL))
    return torch.where(mels >= _SLANEY_BREAK_MEL, logarithmic, linear)


def mel_filterbank(
    num_freqs: int, sample_rate: int, num_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Slaney-normalised triangular mel filters on Slaney's mel scale, (num_freqs, num_mels), float32.

    num_freqs: one-sided STFT bins (n_fft // 2 + 1) spanning 0 .. sample_rate // 2. Filter m rises from centre m-1 to
    centre m and falls to centre m+1 (num_mels + 2 centres equally spaced in mel from f_min to f_max), scaled by
    2 / (f_{m+1} - f_{m-1}) so each filter has unit area ("slaney" norm). Equals torchaudio's
    `melscale_fbanks(..., norm="slaney", mel_scale="slaney")`. Apply as `spectrum (..., F) @ filterbank`.
    """
    f_max = sample_rate / 2.0 if f_max is None else f_max
    bin_freqs = torch.linspace(0, sample_rate // 2, num_freqs)
    centres = slaney_mel_to_hz(torch.linspace(hz_to_slaney_mel(f_min), hz_to_slaney_mel(f_max), num_mels + 2))
    widths = centres[1:] - centres[:-1]  # (num_mels + 1,)
    offsets = centres[None, :] - bin_freqs[:, None]  # (num_freqs, num_mels + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    triangles = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return triangles * (2.0 / (centres[2:] - centres[:-2]))[None, :]


def resample_waveform(
    waveform: torch.Tensor,
    orig_sample_rate: int,
    new_sample_rate: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> torch.Tensor:
    """Band-limited resampling (..., S) -> (..., ceil(S * new / orig)): torchaudio's default "sinc_interp_hann".

    Each output sample is a sinc interpolation of the input, low-passed at `rolloff` x the lower Nyquist frequency and
    truncated to `lowpass_filter_width` zero crossings under a Hann window. After reducing new/orig by their gcd, one
    polyphase kernel per output phase runs as a strided conv1d; the input is zero-padded at both ends.
    """
    if int(orig_sample_rate) != orig_sample_rate or int(new_sample_rate) != new_sample_rate:
        raise ValueError(
            f"sample rates must be whole numbers of Hz, got {orig_sample_rate} -> {new_sample_rate}; round them, "
            "keeping their ratio."
        )
    if orig_sample_rate <= 0 or new_sample_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sample_rate} -> {new_sample_rate}")
    if orig_sample_rate == new_sample_rate:
        return waveform
    gcd = math.gcd(int(orig_sample_rate), int(new_sample_rate))
    orig, new = int(orig_sample_rate) // gcd, int(new_sample_rate) // gcd
    dtype = waveform.dtype if waveform.dtype in (torch.float32, torch.float64) else torch.float32
    device = waveform.device

    # 1. Polyphase kernels: phase j (output j + k * new) sees inputs at times (i - j * orig / new) / orig
    cutoff = min(orig, new) * rolloff  # in units of the reduced rates
    width = math.ceil(lowpass_filter_width * orig / cutoff)  # input samples on each side
    taps = torch.arange(-width, width + orig, dtype=dtype, device=device)[None, None] / orig
    t = (torch.arange(0, -new, -1, dtype=dtype, device=device)[:, None, None] / new + taps) * cutoff
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    kernels = torch.where(t == 0, torch.ones_like(t), t.sin() / t) * window * (cutoff / orig)  # (new, 1, K)

    # 2. Strided conv: output frame k holds samples k * new .. k * new + new - 1
    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-1]).to(dtype)
    padded = F.pad(flat, (width, width + orig))
    resampled = F.conv1d(padded[:, None], kernels, stride=orig).transpose(1, 2).reshape(flat.shape[0], -1)
    num_samples = math.ceil(new * shape[-1] / orig)
    return resampled[:, :num_samples].reshape(*shape[:-1], num_samples)


def to_stereo(waveform: torch.Tensor) -> torch.Tensor:
    """(B, C, S) with C = 1 (duplicated to both channels) or 2 (unchanged) -> (B, 2, S)."""
    if waveform.ndim != 3:
        raise ValueError(
            f"expected a waveform of shape (batch, channels, samples), got {tuple(waveform.shape)}; add the missing "
            "axes, e.g. waveform[None] for one (channels, samples) clip or waveform[:, None] for a batch of mono clips."
        )
    channels = waveform.shape[1]
    if channels == 1:
        return waveform.expand(-1, 2, -1)
    if channels != 2:
        raise ValueError(
            f"the audio VAE takes mono or stereo audio, got {channels} channels; downmix to stereo first (e.g. pick "
            "the front left/right channels)."
        )
    return waveform


def waveform_to_mel(
    waveform: torch.Tensor,
    sample_rate: int,
    *,
    target_sample_rate: int = 16000,
    n_fft: int = 1024,
    hop_length: int = 160,
    num_mels: int = 64,
) -> torch.Tensor:
    """Waveform (B, C, S) at `sample_rate`, C = 1 or 2 -> log-mel (B, 2, T, num_mels), T = S_16k // hop_length + 1.

    Resample to `target_sample_rate`, centred STFT (Hann window of n_fft, reflect padding), magnitude, Slaney mel
    filterbank over 0 .. target_sample_rate / 2, natural log of max(mel, 1e-5). Mono is duplicated to stereo.
    Returns float32 (float64 for a float64 waveform); see the module docstring for the dtype note.
    """
    if not waveform.is_floating_point():
        raise TypeError(f"waveform must be a floating-point tensor in [-1, 1], got {waveform.dtype}")
    waveform = to_stereo(waveform)
    waveform = resample_waveform(waveform, sample_rate, target_sample_rate)
    if waveform.dtype not in (torch.float32, torch.float64):
        waveform = waveform.float()
    num_samples = waveform.shape[-1]
    if num_samples <= n_fft // 2:
        raise ValueError(
            f"the waveform is too short: {num_samples} samples at {target_sample_rate} Hz, but the centred STFT "
            f"(n_fft={n_fft}, reflect padding) needs more than {n_fft // 2}. Pass at least "
            f"{(n_fft // 2 + 1) / target_sample_rate * 1000:.0f} ms of audio."
        )
    window = torch.hann_window(n_fft, dtype=waveform.dtype, device=waveform.device)
    spectrum = torch.stft(
        waveform.flatten(0, 1),
        n_fft,
        hop_length=hop_length,
        win_length=n_fft,
        window=window,
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    ).abs()  # (2B, n_fft // 2 + 1, T)
    filterbank = mel_filterbank(n_fft // 2 + 1, target_sample_rate, num_mels).to(spectrum)
    mel = torch.matmul(spectrum.transpose(1, 2), filterbank)  # (2B, T, num_mels)
    return torch.log(torch.clamp(mel, min=1e-5)).unflatten(0, (-1, 2))

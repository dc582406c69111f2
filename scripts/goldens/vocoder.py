"""Golden G14 (spec §10) from ltx-core 1.2.0: the LTX-2.3 vocoder + bandwidth extension with bf16 weights, run as
1.2.0 runs it (the whole forward in float32, the waveform cast back to the input's bf16), for tests/test_vocoder_fp32.py.

    ORACLE_PYTHON scripts/goldens/vocoder.py --out tests/goldens/vocoder

1.2.0's `VocoderWithBWE.forward` upcasts through `torch.autocast(dtype=float32)` on CUDA; on the CPU, autocast has no
float32 mode (torch disables it with a warning), so a bf16 module would meet a float32 input and fail. This script
therefore holds the weights as float32 tensors with bf16-exact values (every parameter and buffer rounded through
bf16, as a bf16 checkpoint loaded and upcast gives them), which is the arithmetic the autocast path performs.

Writes vocoder.safetensors: the weights under the single-file names (`vocoder.*`) in bf16, `input.mel` (1, 2, 7, 64)
bf16 (7 frames: the padded-hop path), `output.waveform` (1, 2, 126) bf16; and golden.json. Only tensors are written;
nothing of ltx-core is copied into this repository.
"""

import argparse
import json
import sys
import warnings
from importlib import metadata
from pathlib import Path

import torch
from ltx_core.model.audio_vae.vocoder import MelSTFT, Vocoder, VocoderWithBWE
from safetensors.torch import save_file

# The tiny layout of tests/test_vocoder.py: generator x6 to "16 kHz", causal STFT n_fft 16 / hop 8, BWE x24 = 3 x hop.
GENERATOR = dict(
    resblock_kernel_sizes=[3, 5], upsample_rates=[3, 2], upsample_kernel_sizes=[7, 4],
    resblock_dilation_sizes=[[1, 3, 5], [1, 2, 3]], upsample_initial_channel=16, resblock="AMP1",
    activation="snakebeta", use_tanh_at_final=False, use_bias_at_final=False,
)  # fmt: skip
BWE = dict(GENERATOR, upsample_rates=[3, 2, 4], upsample_kernel_sizes=[7, 4, 4], resblock_kernel_sizes=[3],
           resblock_dilation_sizes=[[1, 3, 5]])  # fmt: skip
NUM_FRAMES, SEED = 7, 14


def tiny_vocoder() -> VocoderWithBWE:
    vocoder = Vocoder(**GENERATOR, output_sampling_rate=16000)
    bwe_generator = Vocoder(**BWE, apply_final_activation=False, output_sampling_rate=48000)
    mel_stft = MelSTFT(filter_length=16, hop_length=8, win_length=16, n_mel_channels=64)
    model = VocoderWithBWE(vocoder, bwe_generator, mel_stft, 16000, 48000, hop_length=8).eval()
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for param in model.parameters():  # scale: nonlinear but finite activations in the tiny generators
            param.copy_(torch.randn(param.shape, generator=generator) * (0.1 if param.ndim > 1 else 0.2))
        # the STFT bases and the filterbank are checkpoint buffers (zeros at init); the mel basis positive
        mel_stft.stft_fn.forward_basis.copy_(torch.randn(18, 1, 16, generator=generator) * 0.5)
        mel_stft.stft_fn.inverse_basis.copy_(torch.randn(18, 1, 16, generator=generator))
        mel_stft.mel_basis.copy_(torch.rand(64, 9, generator=generator))
    return model.to(torch.bfloat16).to(torch.float32)  # bf16-exact values, float32 storage (module docstring)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write (tests/goldens/vocoder)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    model = tiny_vocoder()
    mel = torch.randn(1, 2, NUM_FRAMES, 64, generator=torch.Generator().manual_seed(SEED + 1)).bfloat16()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*autocast.*")  # CPU: no float32 autocast (module docstring)
        waveform = model(mel)
    if waveform.dtype != torch.bfloat16 or waveform.abs().max() < 0.1:
        raise SystemExit(f"unexpected oracle output: {waveform.dtype}, max |x| {waveform.abs().max():.3g}")
    tensors = {f"vocoder.{name}": value.bfloat16() for name, value in model.state_dict().items()}
    tensors.update({"input.mel": mel, "output.waveform": waveform.contiguous()})
    save_file(tensors, str(args.out / "vocoder.safetensors"))

    golden = {
        "generator": "scripts/goldens/vocoder.py",
        "oracle": {
            "ltx-core": metadata.version("ltx-core"),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        "files": {
            "vocoder.safetensors": {
                "spec": "G14",
                "settings": {"generator": GENERATOR, "bwe": BWE, "num_frames": NUM_FRAMES, "seed": SEED},
                "tolerance": "bf16 output: at most 1 bf16 step (2**-8) per sample, most samples exact",
            }
        },
    }
    (args.out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""What the LTX-2 pipelines return."""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers.utils import BaseOutput


@dataclass
class LTX2PipelineOutput(BaseOutput):
    """Frames and the stereo soundtrack of a generated clip.

    frames: by `output_type`: "pil" -> one list of PIL images per video; "np" -> float array (B, F, H, W, 3) in [0, 1];
        "pt" -> tensor (B, F, 3, H, W) in [0, 1]; "latent" -> normalised video latents (B, 128, F', H/32, W/32).
    audio: waveform (B, 2, samples) in [-1, 1] as a float32 tensor ("latent": normalised audio latents (B, 8, T_a, 16)).
    audio_sample_rate: samples per second of `audio` (24 000 for LTX-2, 48 000 for LTX-2.3); None for "latent".
    """

    frames: list[list[PIL.Image.Image]] | np.ndarray | torch.Tensor
    audio: torch.Tensor
    audio_sample_rate: int | None

"""LTX2AVHDRICLoraPipeline: an SDR Rec.709 video -> the same shot as scene-linear HDR frames, through the HDR IC-LoRA
(ltx-pipelines 1.2.0's `HDRICLoraPipeline`, spec 1.2 §6.1).

The HDR IC-LoRA teaches the distilled model to re-generate its reference video in a log working space (ARRI LogC3, or
ACEScct, as the LoRA file's `hdr_transform` metadata says), so that the decoded codes, inverted by the curve, give
linear light with highlights above 1. Video only: like the reference, no audio tokens are made or denoised (the
transformer runs its video half alone, `VideoOnlyTransformer`), so nothing of the audio stream is computed.
1. The input video's frames (its first `num_frames`, 8k + 1 of them) in [-1, 1], as the reference loads them.
2. Stage 1 at (H/2, W/2): noise, then the reference video's tokens at 1/`reference_downscale_factor` of that size
   appended (`append_reference`), 8 distilled Euler steps with the IC-LoRA, one positive pass per step.
3. Stage 2 at (H, W): x2 latent upsampling, then in overlapping tiles of the latent (2 x 2 x 2 by default, overlaps
   8 / 6 / 6 latent cells, `latent_tiles`): each re-noised to 0.909375 with noise seeded by the call's seed + tile
   index, the reference cut to the tile, WITH the IC-LoRA (unlike `LTX2AVICLoRAPipeline`'s stage 2, as the
   reference's HDR stage 2), two Euler steps (0.909375, 0.725, 0); the tiles blended (`refine_in_tiles`).
4. Decode to codes in [0, 1], invert the curve: (B, F, H, W, 3) float32 scene-linear Rec.709 (`utils.hdr`).
`high_quality`: the reference's `--high-quality`: each input frame twice, 2F - 1 frames generated, every other kept.
Write the frames with `utils.hdr_io.write_exr_frames` (and `write_hlg_mp4` for an HLG master).
Sizes: generated at the next multiples of 64, the input shrunk to fit and reflect-padded at the bottom and right
(`reflect_padded_pixels`), the frames cropped back, and the VAE decodes in float32, as the reference. The stage-2
seed is the generator's `initial_seed()` (what `manual_seed` set).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from diffusers.utils import BaseOutput
from torch import Tensor

from ..loaders.lora import LoRAInput, LTX2LoRA, read_lora
from ..models.latent_upsampler import upsample_latents
from ..utils.hdr import HDR_TRANSFERS, linear_from_codes
from .condition_encoding import encode_references
from .conditioning import Generators, LatentState, generator_seed, unpatchify_video
from .decoding import decode_frames
from .denoising import (  # noqa: F401  (VideoOnlyTransformer: import path kept)
    ReferenceCondition,
    TextContexts,
    VideoOnlyTransformer,
    denoise_video_only,
    latent_grid,
    noised_video_state,
)
from .inputs import VideoInput, video_frames
from .latent_tiles import LatentTile, latent_tiles
from .pipeline_base import LTX2AVTwoStagePipelineBase
from .pipeline_ltx2_av_ic_lora import LTX2AVICLoRAPipeline
from .pipeline_utils import StepCallbacks, as_list, callback_tensor_names, prompt_contexts
from .presets import DEFAULT_REFERENCE, STAGE_2_DISTILLED_SIGMAS, check_reference_for, sampling_preset
from .refinement import check_upsampler
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs, check_frame_count, check_sigmas, check_strength

HDR_NUM_FRAMES = 161  # the reference's default clip length
HDR_STAGE_2_SIGMAS = (*STAGE_2_DISTILLED_SIGMAS[:2], 0.0)  # the reference's HDR stage 2: two steps
HDR_OUTPUT_TYPES = ("pt", "np", "latent")
HDR_STAGE_2_TILES = ((2, 8), (2, 6), (2, 6))  # (count, overlap) per latent axis, frames / height / width (reference)


@dataclass
class LTX2HDRPipelineOutput(BaseOutput):
    """frames: "pt" -> float32 tensor (B, F, H, W, 3), "np" -> the same as an array: scene-linear Rec.709 light,
    1.0 = diffuse white, channel-last as EXR frames are; "latent" -> normalised video latents (B, 128, F', H', W').
    transfer: the working-space curve that was inverted ("logc3" or "acescct")."""

    frames: np.ndarray | Tensor
    transfer: str


def referenced_video_state(
    batch_size: int,
    grid: tuple[int, int, int],
    frame_rate: float,
    references: Sequence[ReferenceCondition],
    *,
    generator: Generators,
    dtype: torch.dtype,
    device: torch.device,
    noise_scale: float = 1.0,
    initial_latent: Tensor | None = None,
    reference: str = DEFAULT_REFERENCE,
) -> LatentState:
    """A video state (zeros, or `initial_latent` (B, C, F', H', W')) with the reference tokens appended, noised to
    `noise_scale` from `generator`: the only draw of a stage, as the reference draws no audio noise here. `reference`:
    the placeholders' and the noiser's rules ("1.2" or "1.0", `conditioning.append_reference` / `add_noise`)."""
    channels = 128 if initial_latent is None else initial_latent.shape[1]
    return noised_video_state(
        batch_size, grid, frame_rate, generator=generator, device=device, dtype=dtype, conditions=references,
        num_channels=channels, noise_scale=noise_scale, initial_latent=initial_latent, reference=reference,
    )  # fmt: skip


def refine_in_tiles(
    transformer: torch.nn.Module,
    latent: Tensor,
    references: Sequence[ReferenceCondition],
    contexts: TextContexts,
    sigmas: Tensor,
    *,
    frame_rate: float,
    seed: int,
    tiles: Sequence[LatentTile],
    progress_bar: Callable | None = None,
    callback: Callable | None = None,
    reference: str = DEFAULT_REFERENCE,
) -> Tensor:
    """The reference's HDR stage 2 (`_run_stage2_phase`): each tile of the upsampled latent (B, C, F', H', W') is
    refined on its own as a clip of the tile's size (positions from 0, the references cut to the tile / their factor),
    re-noised to sigmas[0] with noise from a generator seeded `seed` + tile index, and the results are summed with
    the tiles' blend weights, in the latent's dtype, tile after tile. Returns the refined latent."""
    refined = torch.zeros_like(latent)
    for index, tile in enumerate(tiles):
        cut = []
        for ref in references:
            f = ref.downscale_factor
            rows, columns = (
                slice(tile.height.start // f, tile.height.stop // f),
                slice(tile.width.start // f, tile.width.stop // f),
            )
            cut.append(replace(ref, latent=ref.latent[:, :, tile.frames, rows, columns]))
        state = referenced_video_state(
            latent.shape[0], tile.grid, frame_rate, cut, dtype=latent.dtype, device=latent.device,
            generator=torch.Generator(latent.device).manual_seed(seed + index), noise_scale=float(sigmas[0]),
            initial_latent=latent[:, :, tile.frames, tile.height, tile.width], reference=reference,
        )  # fmt: skip
        state = denoise_video_only(
            transformer, state, contexts, sigmas, progress_bar=progress_bar, callback=callback, reference=reference
        )
        weights = tile.weights.to(device=latent.device, dtype=latent.dtype)
        refined[:, :, tile.frames, tile.height, tile.width] += (
            unpatchify_video(state.output_tokens(), *tile.grid) * weights
        )
    return refined


def check_tiles(tiles: object) -> None:
    """stage_2_tiles: three (count >= 1, overlap >= 0) int pairs, for the latent frames, height and width."""
    ok = isinstance(tiles, tuple | list) and len(tiles) == 3
    ok = ok and all(
        isinstance(t, tuple | list) and len(t) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in t)
        and t[0] >= 1 and t[1] >= 0
        for t in tiles
    )  # fmt: skip
    if not ok:
        raise ValueError(
            f"stage_2_tiles must be three (count >= 1, overlap >= 0) pairs for the latent frames, height and width, "
            f"got {tiles!r}; ((1, 0), (1, 0), (1, 0)) refines the whole latent at once"
        )


def reflect_padded_pixels(frames: np.ndarray, height: int, width: int) -> Tensor:
    """(F, H, W, 3) uint8 frames -> (1, 3, F, height, width) pixels in [-1, 1], as the reference prepares HDR inputs
    (`resize_and_reflect_pad`, `load_video_conditioning_hdr`): shrunk bilinearly to fit inside height x width with the
    aspect kept (never enlarged), then padded at the bottom and right by reflection (by replication when a pad is as
    large as the picture), so the picture keeps its framing at the top-left."""
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32).permute(0, 3, 1, 2)  # (F, 3, H, W)
    source_height, source_width = pixels.shape[2:]
    if height < source_height or width < source_width:
        scale = min(height / source_height, width / source_width)
        size = (round(source_height * scale), round(source_width * scale))
        pixels = torch.nn.functional.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
    pad_bottom, pad_right = height - pixels.shape[2], width - pixels.shape[3]
    if pad_bottom > 0 or pad_right > 0:
        mode = "reflect" if pad_bottom < pixels.shape[2] and pad_right < pixels.shape[3] else "replicate"
        pixels = torch.nn.functional.pad(pixels, (0, pad_right, 0, pad_bottom), mode=mode)
    return ((pixels / 255.0).clamp(0.0, 1.0) * 2.0 - 1.0).permute(1, 0, 2, 3).unsqueeze(0)


def aligned(size: int, multiple: int = 64) -> int:
    """The generated size for an output size: the next multiple of 64 (the output is cropped back)."""
    return -(-size // multiple) * multiple


def decode_linear(
    vae: torch.nn.Module,
    latents: Tensor,
    transfer: str,
    decode_dtype: torch.dtype | None = torch.float32,
    generator: Generators = None,
) -> Tensor:
    """Normalised video latents (B, 128, F', H', W') -> scene-linear Rec.709 (B, F, H, W, 3) float32: the VAE's codes
    in [0, 1] through the inverse curve. The VAE decodes in `decode_dtype` (None: its own) and returns to its dtype;
    bf16 -> float32 -> bf16 is exact, so its weights come back unchanged."""
    vae_dtype = vae.dtype
    vae.to(decode_dtype or vae_dtype)
    try:
        codes = decode_frames(vae, latents, "pt", generator).permute(0, 1, 3, 4, 2)  # (B, F, H, W, 3) in [0, 1]
    finally:
        vae.to(vae_dtype)
    return linear_from_codes(codes, transfer)


def hdr_transfer_of(lora: LTX2LoRA) -> str:
    """The working space an HDR LoRA file declares: `hdr_transform` = "logc3" / "acescct" (or "true", and a bare
    `use_hdr_transform` flag: LogC3); LogC3 when the file says nothing, as the reference assumes."""
    value = str(lora.metadata.get("hdr_transform", "")).lower()
    if value in ("", "true"):
        return "logc3"
    if value not in HDR_TRANSFERS:
        raise ValueError(f"{lora.source} declares hdr_transform={value!r}; the known transfers are {HDR_TRANSFERS}")
    return value


class LTX2AVHDRICLoraPipeline(LTX2AVTwoStagePipelineBase):
    """SDR video -> scene-linear HDR frames with the HDR IC-LoRA, in two stages, video only.

    Components: those of `LTX2AVTwoStagePipeline` (the audio VAE and vocoder are not used). Use the distilled
    checkpoint and scheduler, and load the HDR IC-LoRA with `load_hdr_lora`.
    """

    reference_downscale_factor = LTX2AVICLoRAPipeline.reference_downscale_factor
    _load_ic_lora = LTX2AVICLoRAPipeline.load_ic_lora

    @property
    def hdr_transfer(self) -> str:
        """The working space of the HDR LoRA loaded last ("logc3" when none declares one)."""
        return getattr(self, "_hdr_transfer", "logc3")

    def load_hdr_lora(self, lora: LoRAInput, adapter_name: str = "hdr_lora", strength: float = 1.0) -> str:
        """Load the HDR IC-LoRA as a peft adapter of the transformer (`LTX2AVICLoRAPipeline.load_ic_lora`: its
        `reference_downscale_factor` goes with it) and take its working space from `hdr_transform`. Returns the
        adapter name."""
        lora = lora if isinstance(lora, LTX2LoRA) else read_lora(lora)
        transfer = hdr_transfer_of(lora)
        name = self._load_ic_lora(lora, adapter_name, strength)
        self._hdr_transfer = transfer
        return name

    load_ic_lora = load_hdr_lora  # the name the CLI's `prepare` and `LTX2AVICLoRAPipeline` use

    @torch.no_grad()
    def __call__(
        self,
        video: VideoInput,
        prompt: str | list[str] | None = None,
        *,
        reference_strength: float = 1.0,
        high_quality: bool = False,
        hdr_transfer: str | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int = HDR_NUM_FRAMES,
        frame_rate: float | None = None,
        sigmas: Sequence[float] | None = None,
        stage_2_sigmas: Sequence[float] = HDR_STAGE_2_SIGMAS,
        stage_2_tiles: tuple[tuple[int, int], ...] = HDR_STAGE_2_TILES,
        decode_dtype: torch.dtype | None = torch.float32,
        generator: Generators = None,
        prompt_embeds: PromptEmbeddings | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("video_latents",),
        allow_large: bool = False,
        reference: str = DEFAULT_REFERENCE,
    ) -> LTX2HDRPipelineOutput | tuple:
        """Re-generate `video` (SDR Rec.709: a path, uint8 (F, H, W, 3) frames, ...) as `num_frames` HDR frames.

        prompt / prompt_embeds: the scene description (the reference takes precomputed embeddings of it).
        reference_strength: in [0, 1]; 1 keeps the input's tokens clean. high_quality: see the module docstring.
        hdr_transfer: "logc3" / "acescct"; None -> the loaded HDR LoRA's (`hdr_transfer`).
        height, width: the output size; None -> the video's own. Generated at the next multiples of 64 with the input
            shrunk to fit and reflect-padded (bottom, right), then cropped back, as the reference.
        frame_rate: None -> the file's, else 24.
        decode_dtype: the VAE decodes in it (float32, as the reference: the inverse curve multiplies errors of the
            highest codes by up to ~500), then returns to its dtype; None decodes in the VAE's own dtype.
        At most `num_frames` input frames are used (with high_quality too: each then twice), 8k + 1 of them.
        reference: "1.2" (default) or "1.0", the ltx-pipelines release whose shared numerics to follow
            (`LTX2AVPipeline.__call__`). Video alone, no guidance: only the noiser's rounding (1.2.0 mixes in float32)
            and the tokenization rule can differ, so in float32 both give the same frames up to rounding.
        Returns `LTX2HDRPipelineOutput(frames, transfer)` or `(frames,)`.
        """
        # 1. Arguments, and the input's frames (read here: its size and rate are the defaults), before any model runs
        check_reference_for(self.model_version, reference)
        transfer = self.hdr_transfer if hdr_transfer is None else hdr_transfer
        if transfer not in HDR_TRANSFERS:
            raise ValueError(f"hdr_transfer={transfer!r} is not one of {HDR_TRANSFERS}")
        if decode_dtype is not None and not (isinstance(decode_dtype, torch.dtype) and decode_dtype.is_floating_point):
            raise TypeError(f"decode_dtype must be a floating torch.dtype or None, got {decode_dtype!r}")
        if not isinstance(high_quality, bool):
            raise TypeError(f"high_quality must be True or False, got {high_quality!r}")
        check_strength(reference_strength, "reference_strength")
        check_frame_count(num_frames)
        generated_frames = 2 * num_frames - 1 if high_quality else num_frames
        frames, file_rate = video_frames(video, "video", num_frames)  # high_quality doubles them below
        height = frames.shape[1] if height is None else height
        width = frames.shape[2] if width is None else width
        if frame_rate is None:
            frame_rate = file_rate or sampling_preset(self.model_version, self.kind, reference).frame_rate
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (height, width)):
            raise ValueError(f"height and width must be positive ints, got {height!r} x {width!r}")
        out_height, out_width, height, width = height, width, aligned(height), aligned(width)
        batch_size = check_call_inputs(
            prompt=prompt, prompt_embeds=prompt_embeds, height=height, width=width, num_frames=generated_frames,
            frame_rate=frame_rate, size_multiple=64, sigmas=sigmas, output_type=output_type,
            output_types=HDR_OUTPUT_TYPES, callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            callback_tensor_inputs=("video_latents",), generator=generator, return_dict=return_dict,
            allow_large=allow_large,
        )  # fmt: skip
        check_sigmas(stage_2_sigmas, name="stage_2_sigmas")
        check_tiles(stage_2_tiles)
        check_upsampler(self.latent_upsampler)
        if self.latent_upsampler.spatial_ratio != (2, 1):
            raise ValueError(
                f"the HDR pipeline needs the spatial x2 latent upsampler (its stage 1 runs at half size and its stage-2 "
                f"tiles are the reference's, laid out for x2), got a x{self.latent_upsampler.spatial_scale:g} one: load "
                "ltx-2-spatial-upscaler-x2 as latent_upsampler"
            )
        if sigmas is None and self.scheduler.config.fixed_sigmas is None:
            raise ValueError(
                "the HDR IC-LoRA runs on the distilled checkpoint's fixed sigmas, but this pipeline's scheduler has "
                "none: load it with kind='distilled' (scheduler=LTX2Scheduler.distilled()) or pass sigmas="
            )
        if high_quality:  # each frame twice, as the reference's --high-quality loads them
            frames = np.repeat(frames, 2, axis=0)[:generated_frames]
        check_frame_count(frames.shape[0], f"the input's frame count ({frames.shape[0]} frames are used)")
        factor = self.reference_downscale_factor
        sigmas = self.scheduler.get_sigmas(sigmas=sigmas) if sigmas is not None else self.scheduler.get_sigmas()
        stage_2_sigmas = self.scheduler.get_sigmas(sigmas=stage_2_sigmas)
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype, transformer = self._execution_device, self.transformer.dtype, self.transformer
        callback = StepCallbacks(self, callback_on_step_end, names)

        # 2. The prompt -> the video context (the audio context is not used)
        contexts = prompt_contexts(
            self, as_list(prompt), None, prompt_embeds=prompt_embeds, negative_prompt_embeds=None,
            needs_negative=False, num_videos_per_prompt=1, device=device, dtype=dtype, reference=reference,
        )  # fmt: skip
        contexts = TextContexts(contexts.video, contexts.audio)

        # 3. Stage 1 at half size: the input's tokens at half size / factor, 8 distilled steps with the IC-LoRA
        half = (height // 2, width // 2)
        pixels = reflect_padded_pixels(frames, half[0] // factor, half[1] // factor)
        references = encode_references(
            self.vae, [(pixels, reference_strength)], *half, generated_frames, factor, 1.0, None, device
        )
        grid = latent_grid(*half, generated_frames)
        state = referenced_video_state(
            batch_size, grid, frame_rate, references, generator=generator, dtype=dtype, device=device,
            reference=reference,
        )  # fmt: skip
        state = denoise_video_only(
            transformer, state, contexts, sigmas, progress_bar=self.progress_bar, callback=callback,
            reference=reference,
        )  # fmt: skip
        video_latents = unpatchify_video(state.output_tokens(), *grid)

        # 4. Stage 2 at full size: x2 upsampling, re-noising, the input's tokens at full size / factor, IC-LoRA kept
        upsampled = upsample_latents(self.latent_upsampler, video_latents, self.vae.latents_mean, self.vae.latents_std)
        pixels = reflect_padded_pixels(frames, height // factor, width // factor)
        references = encode_references(
            self.vae, [(pixels, reference_strength)], height, width, generated_frames, factor, 1.0, None, device
        )
        tiles = latent_tiles(latent_grid(height, width, generated_frames), stage_2_tiles)
        video_latents = refine_in_tiles(
            transformer, upsampled.to(dtype), references, contexts, stage_2_sigmas, frame_rate=frame_rate,
            seed=generator_seed(generator), tiles=tiles, progress_bar=self.progress_bar, callback=callback,
            reference=reference,
        )  # fmt: skip

        # 5. Decode to working-space codes, invert the curve; high_quality keeps every other frame
        if output_type == "latent":
            output = video_latents
        else:
            linear = decode_linear(self.vae, video_latents, transfer, decode_dtype, generator)
            output = linear[:, :: 2 if high_quality else 1, :out_height, :out_width].contiguous()  # cropped back
            output = output.numpy() if output_type == "np" else output
        self.maybe_free_model_hooks()
        if not return_dict:
            return (output,)
        return LTX2HDRPipelineOutput(frames=output, transfer=transfer)

"""Key maps of the audio VAE and the vocoder: Lightricks' single file <-> diffusers parameter names.

Only names change, never tensors, so conversion is lossless both ways. The API is shared by every `*_keys.py` module
(see ltx2_diffusers/loaders/): `*_ORIGINAL_PREFIXES`, `*_original_to_diffusers_keys`, `*_diffusers_to_original_keys`.

Audio VAE (`AutoencoderKLLTX2Audio`): the file keeps `audio_vae.encoder.*`, `audio_vae.decoder.*` under the names
diffusers uses, and one pair of latent statistics shared by both halves (`audio_vae.per_channel_statistics.*`).

Vocoder: ltx-core loads the file's `vocoder.*` keys after stripping exactly ONE leading `vocoder.` (spec §8.1), so an
LTX-2 file holds `vocoder.conv_pre.weight` (-> `conv_in.weight` of `LTX2Vocoder`) and an LTX-2.3 file holds
`vocoder.vocoder.conv_pre.weight` (-> `vocoder.conv_in.weight` of `LTX2VocoderWithBWE`), `vocoder.bwe_generator.*` and
`vocoder.mel_stft.*`. Inside a generator the original names are HiFi-GAN's (conv_pre, ups, resblocks, act_post,
conv_post, and BigVGAN's `downsample.lowpass.filter`); diffusers renamed them.
"""

import re
from collections.abc import Iterable

from .renames import rename_keys

AUDIO_VAE_ORIGINAL_PREFIXES: tuple[str, ...] = ("audio_vae.",)
VOCODER_ORIGINAL_PREFIXES: tuple[str, ...] = ("vocoder.",)

# ---------------------------------------------------------------------------------------------------------------------
# Audio VAE
# ---------------------------------------------------------------------------------------------------------------------

AUDIO_VAE_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^audio_vae\.per_channel_statistics\.mean-of-means$", "latents_mean"),
    (r"^audio_vae\.per_channel_statistics\.std-of-means$", "latents_std"),
    (r"^audio_vae\.(encoder|decoder)\.", r"\1."),
)
AUDIO_VAE_INVERSE_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^latents_mean$", "audio_vae.per_channel_statistics.mean-of-means"),
    (r"^latents_std$", "audio_vae.per_channel_statistics.std-of-means"),
    (r"^(encoder|decoder)\.", r"audio_vae.\1."),
)
# Every diffusers name of AutoencoderKLLTX2Audio (attention blocks included, though released configs have none).
_AUDIO_VAE_DIFFUSERS_KEY = re.compile(
    r"^(latents_mean|latents_std"
    r"|(encoder|decoder)\.(conv_in|conv_out|norm_out"
    r"|(down|up)\.\d+\.(block\.\d+\.\w+|attn\.\d+\.\w+|downsample\.conv|upsample\.conv\.conv)"
    r"|mid\.(block_1|block_2|attn_1)\.\w+)(\.conv)?\.(weight|bias))$"
)

# ---------------------------------------------------------------------------------------------------------------------
# Vocoder
# ---------------------------------------------------------------------------------------------------------------------

VOCODER_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^vocoder\.", ""),  # one leading "vocoder." only: "vocoder.vocoder.x" is the 2.3 wrapper's "vocoder.x"
    (r"(^|\.)conv_pre\.", r"\1conv_in."),
    (r"(^|\.)conv_post\.", r"\1conv_out."),
    (r"(^|\.)ups\.", r"\1upsamplers."),
    (r"(^|\.)resblocks\.", r"\1resnets."),
    (r"(^|\.)act_post\.", r"\1act_out."),
    (r"\.downsample\.lowpass\.filter$", ".downsample.filter"),
)
VOCODER_INVERSE_RENAMES: tuple[tuple[str, str], ...] = (
    (r"\.downsample\.filter$", ".downsample.lowpass.filter"),
    (r"(^|\.)act_out\.", r"\1act_post."),
    (r"(^|\.)resnets\.", r"\1resblocks."),
    (r"(^|\.)upsamplers\.", r"\1ups."),
    (r"(^|\.)conv_out\.", r"\1conv_post."),
    (r"(^|\.)conv_in\.", r"\1conv_pre."),
    (r"^", "vocoder."),
)
# One generator (`LTX2Vocoder`), in diffusers' names. An activation's parameters sit on `act.` when it is anti-aliased
# (with the resampling filters beside them) and directly on the activation otherwise.
_GENERATOR = (
    r"(conv_in|conv_out|upsamplers\.\d+)\.(weight|bias)"
    r"|resnets\.\d+\.convs[12]\.\d+\.(weight|bias)"
    r"|(resnets\.\d+\.acts[12]\.\d+|act_out)\.(act\.alpha|act\.beta|alpha|beta|upsample\.filter|downsample\.filter)"
)
_VOCODER_DIFFUSERS_KEY = re.compile(rf"^({_GENERATOR})$")
_VOCODER_BWE_DIFFUSERS_KEY = re.compile(
    rf"^((vocoder|bwe_generator)\.({_GENERATOR})|mel_stft\.(mel_basis|stft_fn\.forward_basis|stft_fn\.inverse_basis))$"
)


def _vocoder_key_pattern(config: dict | None) -> re.Pattern:
    """LTX2VocoderWithBWE's names when the config is one (it has bwe_* keys), LTX2Vocoder's otherwise."""
    if config is None:
        return re.compile(f"{_VOCODER_DIFFUSERS_KEY.pattern}|{_VOCODER_BWE_DIFFUSERS_KEY.pattern}")
    return _VOCODER_BWE_DIFFUSERS_KEY if "bwe_hidden_channels" in config else _VOCODER_DIFFUSERS_KEY


def _checked(mapping: dict[str, str], diffusers_key: re.Pattern, component: str, original_side: str) -> dict[str, str]:
    """Raise on any key whose diffusers name is not one the model has: nothing is dropped or passed through silently."""
    for source, target in mapping.items():
        diffusers_name = target if original_side == "source" else source
        if not diffusers_key.match(diffusers_name):
            raise ValueError(
                f"{source!r} is not a known {component} key (it would be the diffusers name {diffusers_name!r}). "
                f"Pass only this component's keys: original keys start with "
                f"{AUDIO_VAE_ORIGINAL_PREFIXES if component == 'audio VAE' else VOCODER_ORIGINAL_PREFIXES}."
            )
    return mapping


def audio_vae_original_to_diffusers_keys(keys: Iterable[str], config: dict | None = None) -> dict[str, str]:
    """{`audio_vae.*` key of the single file: AutoencoderKLLTX2Audio name}. Unknown keys raise ValueError."""
    return _checked(rename_keys(keys, AUDIO_VAE_RENAMES), _AUDIO_VAE_DIFFUSERS_KEY, "audio VAE", "source")


def audio_vae_diffusers_to_original_keys(keys: Iterable[str], config: dict | None = None) -> dict[str, str]:
    """{AutoencoderKLLTX2Audio name: `audio_vae.*` key of the single file}; the inverse of the map above."""
    return _checked(rename_keys(keys, AUDIO_VAE_INVERSE_RENAMES), _AUDIO_VAE_DIFFUSERS_KEY, "audio VAE", "target")


def vocoder_original_to_diffusers_keys(keys: Iterable[str], config: dict | None = None) -> dict[str, str]:
    """{`vocoder.*` key of the single file: LTX2Vocoder / LTX2VocoderWithBWE name}. Unknown keys raise ValueError.

    `config`: the diffusers vocoder config, to insist on one layout (a config with `bwe_*` keys is the LTX-2.3 one).
    """
    return _checked(rename_keys(keys, VOCODER_RENAMES), _vocoder_key_pattern(config), "vocoder", "source")


def vocoder_diffusers_to_original_keys(keys: Iterable[str], config: dict | None = None) -> dict[str, str]:
    """{LTX2Vocoder / LTX2VocoderWithBWE name: `vocoder.*` key of the single file}; the inverse of the map above."""
    return _checked(rename_keys(keys, VOCODER_INVERSE_RENAMES), _vocoder_key_pattern(config), "vocoder", "target")

"""Lightricks' single-file metadata <-> our configs: the audio VAE and the vocoder (spec §3). Part of `metadata.py`
(which re-exports these functions), kept apart for its size."""

from collections.abc import Mapping
from typing import Any

from .metadata_rules import _one_of, _require, _section

# ---------------------------------------------------------------------------------------------------------------------
# Audio VAE and vocoder (spec §3)


def audio_vae_config_from_original(config: Mapping[str, Any]) -> dict:
    """`config.audio_vae` -> AutoencoderKLLTX2Audio config."""
    a = _section(config, "audio_vae")
    params = a.get("model", {}).get("params", {})
    dd = params.get("ddconfig", {})
    stft = a.get("preprocessing", {}).get("stft", {})
    mel = a.get("preprocessing", {}).get("mel", {})
    if dd.get("resamp_with_conv", True) is not True or dd.get("attn_type", "vanilla") != "vanilla":
        raise ValueError("config.audio_vae: only resamp_with_conv=True and attn_type='vanilla' are supported.")
    attn = dd.get("attn_resolutions", [8, 16, 32])  # ltx-core's default when the key is absent
    mel_bins = dd.get("mel_bins") or mel.get("n_mel_channels") or a.get("variables", {}).get("mel_bins")
    return {
        "base_channels": dd.get("ch", 128),
        "output_channels": dd.get("out_ch", 2),
        "ch_mult": list(dd.get("ch_mult", [1, 2, 4])),
        "num_res_blocks": dd.get("num_res_blocks", 2),
        "attn_resolutions": sorted(attn) if attn else None,
        "in_channels": dd.get("in_channels", 2),
        "resolution": dd.get("resolution", 256),
        "latent_channels": dd.get("z_channels", 8),
        "norm_type": _one_of(dd.get("norm_type", "pixel"), ("pixel", "group"), "norm_type"),
        "causality_axis": dd.get("causality_axis", "height"),
        "dropout": dd.get("dropout", 0.0),
        "mid_block_add_attention": bool(dd.get("mid_block_add_attention", True)),
        "sample_rate": params.get("sampling_rate", 16000),
        "mel_hop_length": stft.get("hop_length", 160),
        "is_causal": bool(stft.get("causal", True)),
        "mel_bins": mel_bins,
        "double_z": bool(dd.get("double_z", True)),
    }


def original_audio_vae_section(audio_vae: Mapping[str, Any]) -> dict:
    a = audio_vae
    return {
        "model": {
            "params": {
                "sampling_rate": a["sample_rate"],
                "ddconfig": {
                    "ch": a["base_channels"],
                    "out_ch": a["output_channels"],
                    "ch_mult": list(a["ch_mult"]),
                    "num_res_blocks": a["num_res_blocks"],
                    "attn_resolutions": list(a["attn_resolutions"] or []),
                    "in_channels": a["in_channels"],
                    "resolution": a["resolution"],
                    "z_channels": a["latent_channels"],
                    "double_z": a["double_z"],
                    "norm_type": a["norm_type"],
                    "causality_axis": a["causality_axis"],
                    "dropout": a["dropout"],
                    "mid_block_add_attention": a["mid_block_add_attention"],
                    "mel_bins": a["mel_bins"],
                },
            }
        },
        "preprocessing": {
            "stft": {"hop_length": a["mel_hop_length"], "causal": a["is_causal"]},
            "mel": {"n_mel_channels": a["mel_bins"]},
        },
    }


def _generator_config(g: Mapping[str, Any], where: str, final_activation: bool) -> dict:
    """One HiFi-GAN / BigVGAN generator (ltx-core `Vocoder`) -> the matching keys of diffusers' vocoder config."""
    if g.get("stereo") is not True:
        raise ValueError(f"config.{where}.stereo is {g.get('stereo', 'missing')!r}; ltx-core 1.0.0 requires True.")
    resblock = _one_of(g.get("resblock", "1"), ("1", "AMP1"), f"config.{where}.resblock")
    amp = resblock == "AMP1"
    if final_activation:
        final = "tanh" if g.get("use_tanh_at_final", True) else "clamp"
    else:
        final = None
    return {
        "in_channels": 128,  # ltx-core hard-codes 2 stereo channels x 64 mel bins
        "hidden_channels": g.get("upsample_initial_channel", 1024),
        "out_channels": 2,
        "upsample_kernel_sizes": list(g.get("upsample_kernel_sizes", [16, 15, 8, 4, 4])),
        "upsample_factors": list(g.get("upsample_rates", [6, 5, 2, 2, 2])),
        "resnet_kernel_sizes": list(g.get("resblock_kernel_sizes", [3, 7, 11])),
        "resnet_dilations": [list(d) for d in g.get("resblock_dilation_sizes", [[1, 3, 5], [1, 3, 5], [1, 3, 5]])],
        "act_fn": _one_of(g.get("activation", "snake"), ("snake", "snakebeta"), "activation") if amp else "leaky_relu",
        "leaky_relu_negative_slope": 0.1,
        "antialias": amp,
        "antialias_ratio": 2,
        "antialias_kernel_size": 12,
        "final_act_fn": final,
        "final_bias": bool(g.get("use_bias_at_final", True)),
    }


def vocoder_config_from_original(config: Mapping[str, Any]) -> tuple[str, dict]:
    """`config.vocoder` -> ("LTX2Vocoder", config) for a flat section (LTX-2), ("LTX2VocoderWithBWE", config) for a
    {vocoder, bwe} one (LTX-2.3)."""
    v = _section(config, "vocoder")
    if "bwe" not in v:
        _require(v, "resblock", "1", "vocoder")
        out = _generator_config(v, "vocoder", final_activation=True)
        out["output_sampling_rate"] = v.get("output_sampling_rate", 24000)
        return "LTX2Vocoder", out
    inner, bwe = v.get("vocoder", {}), v["bwe"]
    for section, where in ((inner, "vocoder.vocoder"), (bwe, "vocoder.bwe")):
        _require(section, "resblock", "AMP1", where)
        _require(section, "activation", "snakebeta", where)
    for key in ("input_sampling_rate", "output_sampling_rate", "hop_length", "n_fft", "num_mels"):
        if key not in bwe:
            raise ValueError(f"config.vocoder.bwe has no {key!r}; ltx-core 1.0.0 requires it.")
    out = _generator_config(inner, "vocoder.vocoder", final_activation=True)
    bwe_out = _generator_config(bwe, "vocoder.bwe", final_activation=False)
    out.update({f"bwe_{k}": val for k, val in bwe_out.items()})
    out.update(
        {
            "filter_length": bwe["n_fft"],
            "hop_length": bwe["hop_length"],
            "window_length": bwe["n_fft"],  # ltx-core builds the STFT with win_length = n_fft
            "num_mel_channels": bwe["num_mels"],
            "input_sampling_rate": bwe["input_sampling_rate"],
            "output_sampling_rate": bwe["output_sampling_rate"],
        }
    )
    return "LTX2VocoderWithBWE", out


def _original_generator(c: Mapping[str, Any], prefix: str = "") -> dict:
    amp = c[f"{prefix}act_fn"] != "leaky_relu"
    g = {
        "resblock": "AMP1" if amp else "1",
        "stereo": True,
        "upsample_initial_channel": c[f"{prefix}hidden_channels"],
        "upsample_rates": list(c[f"{prefix}upsample_factors"]),
        "upsample_kernel_sizes": list(c[f"{prefix}upsample_kernel_sizes"]),
        "resblock_kernel_sizes": list(c[f"{prefix}resnet_kernel_sizes"]),
        "resblock_dilation_sizes": [list(d) for d in c[f"{prefix}resnet_dilations"]],
        "use_bias_at_final": c[f"{prefix}final_bias"],
    }
    if amp:
        g["activation"] = c[f"{prefix}act_fn"]
    if c[f"{prefix}final_act_fn"] is not None:
        g["use_tanh_at_final"] = c[f"{prefix}final_act_fn"] == "tanh"
    return g


def original_vocoder_section(class_name: str, vocoder: Mapping[str, Any]) -> dict:
    if class_name == "LTX2Vocoder":
        return {**_original_generator(vocoder), "output_sampling_rate": vocoder["output_sampling_rate"]}
    if class_name != "LTX2VocoderWithBWE":
        raise ValueError(f"Unknown vocoder class {class_name!r}; expected LTX2Vocoder or LTX2VocoderWithBWE.")
    if vocoder["filter_length"] != vocoder["window_length"]:
        raise ValueError("filter_length != window_length: ltx-core's BWE STFT uses one n_fft for both.")
    bwe = _original_generator(vocoder, "bwe_")
    bwe.update(
        {
            "apply_final_activation": False,
            "input_sampling_rate": vocoder["input_sampling_rate"],
            "output_sampling_rate": vocoder["output_sampling_rate"],
            "hop_length": vocoder["hop_length"],
            "n_fft": vocoder["filter_length"],
            "win_size": vocoder["window_length"],
            "num_mels": vocoder["num_mel_channels"],
        }
    )
    inner = _original_generator(vocoder)
    # diffusers' configs say final_act_fn=None: our forward clamps that stage, so write "no tanh" (ltx-core and our
    # reader take a missing flag as tanh, which would change the audio)
    inner.setdefault("use_tanh_at_final", False)
    return {"vocoder": inner, "bwe": bwe}

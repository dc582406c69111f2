"""Tiny vocoder configs (our / diffusers' parameter names) shared by the vocoder tests."""

TINY_HIFIGAN_OURS = dict(
    hidden_channels=16,
    upsample_kernel_sizes=[7, 4],
    upsample_factors=[3, 2],
    resnet_kernel_sizes=[3, 5],
    resnet_dilations=[[1, 3, 5], [1, 2, 3]],
)
# LTX-2.3 layout, tiny: generator to "16 kHz" (x6), causal STFT n_fft 16 / hop 8, BWE generator x24 = 3 x hop.
TINY_BWE_OURS = dict(
    **TINY_HIFIGAN_OURS,
    act_fn="snakebeta",
    antialias=True,
    final_act_fn=None,
    final_bias=False,
    bwe_hidden_channels=16,
    bwe_upsample_kernel_sizes=[7, 4, 4],
    bwe_upsample_factors=[3, 2, 4],
    bwe_resnet_kernel_sizes=[3],
    bwe_resnet_dilations=[[1, 3, 5]],
    filter_length=16,
    hop_length=8,
    window_length=16,
    num_mel_channels=64,
)

"""jaxgen bench: jaxgen against the PyTorch reference (diffusers), same machine, weights and run.

    jaxgen bench --out bench.json          # CPU mode: DiT-S/2, DiT-B/2, video DiT, VAE, sampler
    jaxgen bench --mode gpu                # bf16, cuDNN attention, full-size Wan 2.1 1.3B at 480p

Each case builds the diffusers module with random weights, `save_pretrained`s it and loads that
directory through `jaxgen.zoo.load`, so both sides run the same weights. Timings interleave the two
sides' repeats and take medians; MFU is against a GEMM peak measured in the same run through the
same framework. torch and diffusers are needed here only (the test extras).
"""

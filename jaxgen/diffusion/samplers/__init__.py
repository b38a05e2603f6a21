"""Samplers: an `init`/`step` pair each, driven by one `lax.scan` in `sample`."""

from jaxgen.diffusion.samplers.loop import make_plan, sample
from jaxgen.diffusion.samplers.registry import SAMPLERS, Sampler, SamplerConfig

__all__ = ["SAMPLERS", "Sampler", "SamplerConfig", "make_plan", "sample"]

"""jaxgen.nn: Flax Linen building blocks of the diffusion transformers.

Params are float32 and carry logical axis names; the compute dtype is a field; norms, softmax and
adaLN modulation run in float32.
"""

from jaxgen.nn.attention import Attention, dot_product_attention, IMPLEMENTATIONS
from jaxgen.nn.axes import constrain
from jaxgen.nn.embeddings import CaptionProjection, LabelEmbedder, TimestepEmbedder
from jaxgen.nn.embeddings import timestep_embedding
from jaxgen.nn.linear import Linear
from jaxgen.nn.mlp import Mlp
from jaxgen.nn.modulation import AdaLNSingle, AdaLNZero, chunks, modulate, ScaleShiftTable
from jaxgen.nn.norms import layer_norm, LayerNorm, RMSNorm
from jaxgen.nn.patch import patchify, PatchEmbed, unpatchify
from jaxgen.nn.positions import sincos_1d, sincos_2d, sincos_3d
from jaxgen.nn.rope import apply_rope, rope_3d
from jaxgen.nn.scan import REMAT_POLICIES, scan_layers

"""jaxgen.zoo: named presets and loaders for diffusers/transformers checkpoints.

    path = "Wan2.1-T2V-1.3B-Diffusers/transformer"                               # a local copy
    config, params = jaxgen.zoo.load(path, dtype="bfloat16")                    # host numpy
    shardings = jaxgen.zoo.param_shardings(jaxgen.zoo.load_config(path), mesh, rules)
    config, params = jaxgen.zoo.load(path, shardings=shardings)                 # onto devices
    jaxgen.zoo.save("wan-1.3b", config, params)                                 # native (Orbax)
    config, params = jaxgen.zoo.restore("wan-1.3b")                             # fast reload
    jaxgen.zoo.registry.get("wan2.1-t2v-1.3b").num_params()

Importing this package loads no model code and does not initialise JAX.
"""

from jaxgen.zoo.checkpoint import load
from jaxgen.zoo.checkpoint import load_config
from jaxgen.zoo.families import param_shardings
from jaxgen.zoo.native import restore
from jaxgen.zoo.native import save
from jaxgen.zoo.registry import get
from jaxgen.zoo.registry import register
from jaxgen.zoo.registry import REGISTRY
from jaxgen.zoo.safetensors_reader import CheckpointError

"""Test setup: 8 simulated CPU devices and a persistent compilation cache.

Both must be configured before JAX initialises its backends, hence here.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)
jax.config.update(
    "jax_compilation_cache_dir",
    os.environ.get("JAXGEN_TEST_CACHE", os.path.expanduser("~/.cache/jaxgen-tests-xla")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

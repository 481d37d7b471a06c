"""jaxcolor: automatic image colorization (Iizuka, Simo-Serra, Ishikawa 2016) in JAX."""
import os

# XLA:CPU sends convolutions to YNNPACK by default, which is slow for them and
# ~16x slow for their weight gradients; keep YNNPACK for dots only. XLA reads
# the flag when the backend starts, so it must be set before first use.
_YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
if _YNN_FLAG not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} {_YNN_FLAG}=individual_dot".strip()

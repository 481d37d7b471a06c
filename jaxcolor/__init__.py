"""jaxcolor: automatic image colorization (Iizuka, Simo-Serra, Ishikawa 2016) in JAX."""
import os

# XLA:CPU's default sends convolutions to YNNPACK, slow for them and ~16x slow
# for their weight gradients; its own large reductions (BatchNorm statistics in
# training) become slow reduce-windows. YNNPACK for dots and reductions only
# makes a training step 1.3x faster (docs/PERFORMANCE.md). XLA reads the flag
# when the backend starts, so it must be set before first use.
_YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
if _YNN_FLAG not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (f"{os.environ.get('XLA_FLAGS', '')} "
                             f'{_YNN_FLAG}=individual_dot,reduce').strip()

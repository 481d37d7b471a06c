"""The model that ships inside the package works offline, with no flag."""
import numpy as np
from PIL import Image

from jaxcolor import checkpoint
from jaxcolor import color
from jaxcolor import images
from jaxcolor import inference

EXAMPLES = sorted((checkpoint.BUNDLED.parent.parent.parent / 'examples').glob('*.jpg'))


def test_bundled_model_colorizes_an_example_with_colour():
  predictor = inference.Predictor.from_checkpoint(checkpoint.BUNDLED)
  assert len(EXAMPLES) >= 1
  for path in EXAMPLES:
    loaded = images.load_luminance(path)
    rgb = predictor(loaded.l).rgb
    assert rgb.shape == loaded.l.shape + (3,)
    assert Image.open(path).size == rgb.shape[1::-1]
    chroma = np.hypot(*np.moveaxis(color.rgb_to_lab(rgb.astype(np.float64))[..., 1:], -1, 0))
    # Mean a*b* distance from grey: ~0 for a grey result; the pale surf scene is ~2.4.
    assert chroma.mean() > 1.0, path

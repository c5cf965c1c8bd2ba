"""Which class a one-sided texture leaves bare (salm_jax/noise/textures/texture_class.py)."""
import numpy as np
import pytest

from salm_jax.noise.textures import texture_class


def test_local_contrast_is_zero_on_flat_images_and_counts_a_dot_and_its_ring():
  flat = np.full((1, 8, 8), 0.3)
  assert texture_class.local_contrast(flat) == [0.0]
  dot = flat.copy()
  dot[0, 4, 4] += 0.8
  # The dot stands 0.8 above its ring; each of its 8 neighbours 0.1 below theirs.
  np.testing.assert_allclose(texture_class.local_contrast(dot), [(0.8 + 8 * 0.1) / 64])
  np.testing.assert_allclose(texture_class.local_contrast(dot[..., None]),
                             texture_class.local_contrast(dot))


def test_busiest_leaves_the_highest_contrast_class_bare_and_never_an_empty_one():
  rng = np.random.default_rng(0)
  images = np.concatenate([np.full((4, 8, 8, 1), 0.5), rng.uniform(0, 1, (3, 8, 8, 1))])
  classes = np.array([0, 0, 0, 0, 2, 2, 2])
  contrast = texture_class.class_contrast(images, classes, 3)
  assert contrast[0] == 0.0 and np.isnan(contrast[1]) and contrast[2] > 0.1
  counts = np.bincount(classes, minlength=3)
  assert texture_class.bare_class(counts, "busiest", contrast) == 2
  assert texture_class.bare_class(counts, "largest") == 0
  assert texture_class.bare_class(counts, "smallest") == 1
  with pytest.raises(ValueError, match="needs each class's local contrast"):
    texture_class.bare_class(counts, "busiest")
  with pytest.raises(ValueError, match="noise.lattice.bare"):
    texture_class.bare_class(counts, "brightest")

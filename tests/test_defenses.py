"""Defenses: spec parsing, and what each augmentation / preprocessing / PGD does."""
import functools
import io

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from salm_jax.evaluation import defenses, victim
from salm_jax.evaluation.defenses import adversarial, augment, jpeg as jpeg_lib, preprocess, spec


# These tests check behaviour, not speed: compile without XLA's costly CPU passes.
fast_jit = functools.partial(jax.jit, compiler_options=victim.FAST_COMPILE_OPTIONS)


def _images(c=3, n=4, size=12, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, size, size, c))


def test_parse_specs():
  assert spec.parse("none") == ()
  parts = spec.parse("hflip+jpeg:quality=30")
  assert [p.name for p in parts] == ["hflip", "jpeg"]
  assert parts[1].kwargs() == {"quality": 30.0}
  assert spec.parse("pgd_at:eps=8/255,steps=3")[0].kwargs()["eps"] == pytest.approx(8 / 255)
  d = defenses.get("jpeg:quality=30")
  assert d.parts == (("jpeg", {"quality": 30, "eval": 0}),)
  assert isinstance(d.parts[0][1]["quality"], int)
  assert defenses.get("pgd_at").adversarial == {"eps": 8 / 255, "steps": 7, "step_size": 2 / 255}
  assert defenses.get("hflip") == defenses.get("hflip:p=0.5")
  assert hash(defenses.get("hflip")) == hash(defenses.get("hflip:p=0.5"))
  assert defenses.get("hflip") != defenses.get("hflip:p=1")


@pytest.mark.parametrize("bad, message", [
    ("blurr", "Unknown defense 'blurr'"),
    ("jpeg:q=30", "no parameter 'q'"),
    ("jpeg:quality=3.5", "must be an integer"),
    ("jpeg:quality=0", "outside"),
    ("jpeg:quality=abc", "not a number"),
    ("jpeg:", "key=value"),
    ("jpeg:quality", "not key=value"),
    ("none+hflip", "cannot be combined"),
    ("pgd_at+pgd_at", "only once"),
    ("Hflip", "not a defense name"),
])
def test_bad_specs_raise_clear_errors(bad, message):
  with pytest.raises(ValueError, match=message):
    defenses.get(bad)
  with pytest.raises(ValueError, match="spec must be a string"):
    defenses.get.__wrapped__(None)


def _run_one(name, x, key):
  d = defenses.get(name)
  t = jax.nn.one_hot(jnp.arange(x.shape[0]) % 2, 2)
  if d.adversarial is not None:
    return d.attack(lambda xa: jnp.sum(xa ** 2), x, key), t
  y = d.preprocess_train(x)
  return d.batch_transform(y, t, key)


@fast_jit
def _run_all(x, key):
  return {name: _run_one(name, x, key) for name in defenses.names()}


def test_every_defense_keeps_shape_range_and_key_determinism():
  # One jitted program runs every registered defense (one compilation, not 14).
  x = _images()
  out1 = _run_all(x, jax.random.key(1))
  out2 = _run_all(x, jax.random.key(1))
  assert set(out1) == set(defenses.names())
  for name, (y1, t1) in out1.items():
    chex.assert_equal_shape([x, y1])
    chex.assert_trees_all_close(y1, out2[name][0])
    assert float(y1.min()) >= 0.0 and float(y1.max()) <= 1.0, name
    np.testing.assert_allclose(t1.sum(-1), 1.0, atol=1e-6, err_msg=name)  # still distributions
    assert float(jnp.abs(y1 - x).max()) > 0, name  # every defense changes something


@fast_jit
def _augmented(x, k):
  return {"flip1": augment.hflip(x, k, p=1.0), "flip0": augment.hflip(x, k, p=0.0),
          "pad0": augment.crop_pad(x, k, padding=0), "pad2": augment.crop_pad(x, k, padding=2),
          "rot0": augment.rotate(x, k, degrees=0.0),
          "cut": augment.cutout(jnp.ones((8, 12, 12, 1)), k, frac=0.5)}


def test_augmentations_do_what_they_say():
  x = _images(c=1, n=8)
  out = jax.tree.map(np.asarray, _augmented(x, jax.random.key(3)))
  x = np.asarray(x)
  np.testing.assert_allclose(out["flip1"], x[:, :, ::-1])
  np.testing.assert_allclose(out["flip0"], x)
  np.testing.assert_allclose(out["pad0"], x)
  # Each crop is the image shifted by at most 2 px: some 8x8 window matches exactly.
  for i in range(8):
    assert any(np.allclose(out["pad2"][i, 2:10, 2:10], x[i, 2 + dy:10 + dy, 2 + dx:10 + dx])
               for dy in range(-2, 3) for dx in range(-2, 3))
  np.testing.assert_allclose(out["rot0"], x, atol=1e-5)
  zeros = (out["cut"] == 0).sum(axis=(1, 2, 3))
  assert zeros.max() <= 36 and zeros.min() >= 9  # a 6x6 box, clipped at the border


@fast_jit
def _mixed(x, t, ml, k):
  return (augment.mixup(x, t, k, alpha=1.0), augment.cutmix(x, t, k, alpha=1.0),
          augment.mixup(x, ml, k))


def test_mixup_and_cutmix_mix_targets_like_pixels():
  x = jnp.concatenate([jnp.zeros((1, 10, 10, 1)), jnp.ones((1, 10, 10, 1))])
  t = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  ml = jnp.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # multi-label (BCE) targets
  mix, cut, (_, tml) = _mixed(x, t, ml, jax.random.key(7))
  for xm, tm in (mix, cut):
    # Image 0 is all zeros and image 1 all ones, so the mean pixel is the share of image 1.
    np.testing.assert_allclose(xm.mean(axis=(1, 2, 3)), tm[:, 1], atol=1e-5)
  assert float(tml.min()) >= 0 and float(tml.max()) <= 1
  np.testing.assert_allclose(tml[:, 2], 1.0, atol=1e-6)


@fast_jit
def _preprocessed(x, flat, salt, disk):
  return {"bits": preprocess.bit_depth(x, bits=1), "gray": preprocess.grayscale(x),
          "crop1": preprocess.center_crop_resize(x, scale=1.0),
          "blur": preprocess.gaussian_blur(flat, 1.0, 3), "median": preprocess.median_filter(salt, 3),
          "zoom": preprocess.center_crop_resize(disk, scale=0.5)}


def test_preprocessing_does_what_it_says():
  x = _images(c=3)
  flat = jnp.full((2, 9, 9, 1), 0.3)
  salt = flat.at[:, 4, 4, 0].set(1.0)
  yy, xx = np.mgrid[:16, :16]
  disk = jnp.asarray(((yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 16).astype(np.float32))[None, ..., None]
  out = jax.tree.map(np.asarray, _preprocessed(x, flat, salt, disk))
  assert set(np.unique(out["bits"])) <= {0.0, 1.0}
  np.testing.assert_allclose(out["gray"][..., 0], out["gray"][..., 2])
  with pytest.raises(ValueError, match="RGB"):
    preprocess.grayscale(x[..., :1])
  np.testing.assert_allclose(out["crop1"], x, atol=1e-6)
  np.testing.assert_allclose(out["blur"][:, 2:-2, 2:-2], flat[:, 2:-2, 2:-2], atol=1e-6)
  np.testing.assert_allclose(out["median"], flat, atol=1e-6)
  assert out["zoom"].mean() > float(disk.mean())  # zoomed in on a centered disk


def _pillow_jpeg(arr, quality):
  mode = "L" if arr.ndim == 2 else "RGB"
  buf = io.BytesIO()
  Image.fromarray(arr, mode).save(buf, "JPEG", quality=quality, subsampling=0)
  return np.asarray(Image.open(buf))


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_matches_pillow(channels):
  rng = np.random.default_rng(0)
  # Smooth images with some texture, like scans.
  base = rng.normal(size=(4, 4, 4, channels))
  img = np.asarray(jax.image.resize(base, (4, 24, 24, channels), "cubic"))
  img = np.clip((img - img.min()) / (img.max() - img.min()) * 255, 0, 255).astype(np.uint8)
  errors = []
  for q in (10, 50, 90):
    ours = np.asarray(fast_jit(lambda x: jpeg_lib.jpeg(x, q))(img / np.float32(255))) * 255
    pil = np.stack([_pillow_jpeg(im.squeeze(-1) if channels == 1 else im, q) for im in img])
    pil = pil.reshape(ours.shape).astype(np.float32)
    assert np.abs(ours - pil).mean() < 1.5, q  # within ~1 gray level on average
    errors.append(np.abs(ours - img).mean())
  assert errors[0] > errors[1] > errors[2]  # lower quality, larger error
  with pytest.raises(ValueError, match="quality"):
    jpeg_lib.quant_table(jpeg_lib.LUMA_TABLE, 0)


def test_pgd_maximizes_within_the_ball():
  x = jnp.full((2, 6, 6, 1), 0.5)
  w = jax.random.normal(jax.random.key(0), x.shape)
  loss = lambda xa: jnp.sum(w * xa)
  # From a random start anywhere in the ball, 9 steps of 2/255 reach its far corner.
  adv = fast_jit(lambda x, k: adversarial.pgd(loss, x, k, eps=8 / 255, steps=9,
                                              step_size=2 / 255))(x, jax.random.key(1))
  assert float(jnp.abs(adv - x).max()) <= 8 / 255 + 1e-6
  # A linear loss is maximized at the corner x + eps * sign(w).
  chex.assert_trees_all_close(adv, x + 8 / 255 * jnp.sign(w), atol=1e-6)


def test_eval_preprocessing_follows_the_eval_flag():
  x = _images(c=3)
  ev = lambda s: np.asarray(fast_jit(defenses.get(s).preprocess_eval)(x))
  np.testing.assert_allclose(ev("jpeg:quality=10"), x)  # training data only by default
  assert np.abs(ev("jpeg:quality=10,eval=1") - x).max() > 0
  g = ev("grayscale")
  np.testing.assert_allclose(g[..., 0], g[..., 1])
  np.testing.assert_allclose(ev("random_crop_resize:min_scale=0.5"),
                             fast_jit(preprocess.center_crop_resize, static_argnums=1)(x, 0.75),
                             atol=1e-6)
  assert not defenses.get("hflip").has_eval_preprocessing
  assert defenses.get("bit_depth").has_train_preprocessing
  assert not defenses.get("hflip").has_train_preprocessing

"""Are the protected images still usable? Distortion figures and diagnostic utility.

Protection is only worth having if the images still show what they showed:
a clinician or an authorized model must read them as before. Two kinds of
evidence are measured here:

* distortion, per image and per dataset: L∞ (in [0, 1] units and in 8-bit
  levels), the fraction of pixels changed (any channel), PSNR and SSIM (via
  dm-pix, on [0, 1] images, SSIM with its usual 11-px Gaussian window, shrunk
  to an odd size ≤ the image side for tiny images);
* diagnostic utility: a model trained on clean data classifies the protected
  copies as well as the clean ones (ACC / AUC on both, and how often its
  predictions agree).

PSNR of an unchanged image is infinite. Per-image arrays keep `inf`; the
dataset figure is the mean PSNR over the images that changed, and is None
(JSON null) when none did, with `n_changed_images` saying how many there were.
"""
from __future__ import annotations

from typing import Callable

import dm_pix
import jax
import numpy as np
from flax import nnx

from salm_jax import tasks
from salm_jax.data.dataset import as_float, rows_per_chunk, to_float
from salm_jax.evaluation import metrics


def _pair(clean_uint8: np.ndarray, protected_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  clean, prot = np.asarray(clean_uint8), np.asarray(protected_uint8)
  if clean.shape != prot.shape:
    raise ValueError(f"Clean images {clean.shape} and protected images {prot.shape} differ in shape.")
  for name, a in (("clean", clean), ("protected", prot)):
    if a.dtype != np.uint8:
      raise ValueError(f"{name} images must be uint8 (MedMNIST layout); got {a.dtype}.")
  if clean.ndim == 3:
    clean, prot = clean[..., None], prot[..., None]
  if clean.ndim != 4:
    raise ValueError(f"Images must be (N, H, W) or (N, H, W, C); got shape {clean.shape}.")
  return clean, prot


@jax.jit
def _psnr_ssim(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
  size = min(11, a.shape[1], a.shape[2])
  size -= 1 - size % 2  # odd window
  return dm_pix.psnr(a, b), dm_pix.ssim(a, b, filter_size=size)


def per_image_stats(clean_uint8: np.ndarray, protected_uint8: np.ndarray,
                    batch_size: int = 1024) -> dict[str, np.ndarray]:
  """Per image: 'linf', 'linf_uint8', 'frac_changed', 'psnr' (dB, inf if unchanged), 'ssim'.

  PSNR and SSIM take at most `batch_size` images, and about 4 Mi pixel values, at a time.
  """
  clean, prot = _pair(clean_uint8, protected_uint8)
  batch_size = max(1, min(batch_size, rows_per_chunk(clean.shape)))
  diff = np.abs(clean.astype(np.int16) - prot.astype(np.int16))
  linf_uint8 = diff.reshape(len(diff), -1).max(axis=1) if diff.size else np.zeros(0, np.int16)
  frac = (diff.max(axis=-1) > 0).reshape(len(diff), -1).mean(axis=1)
  psnr, ssim = [], []
  for i in range(0, len(clean), batch_size):
    p, s = _psnr_ssim(as_float(clean[i:i + batch_size]), as_float(prot[i:i + batch_size]))
    psnr.append(np.asarray(p, np.float64))
    ssim.append(np.asarray(s, np.float64))
  cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)
  psnr = cat(psnr)
  psnr[linf_uint8 == 0] = np.inf
  return {"linf": linf_uint8 / 255.0, "linf_uint8": linf_uint8.astype(np.int64),
          "frac_changed": frac, "psnr": psnr, "ssim": cat(ssim)}


def image_stats(clean_uint8: np.ndarray, protected_uint8: np.ndarray) -> dict:
  """Dataset figures: max L∞, fraction changed (mean, most-changed image), PSNR, SSIM.

  SSIM is given three ways because a one-sided pattern leaves most images
  untouched: the mean over all images (1.0 for each untouched one), the mean
  over the changed images (what a changed image looks like, as PSNR is), and
  the lowest single image (a floor such as 'SSIM ≥ 0.95' is about every image).
  """
  return summarize(per_image_stats(clean_uint8, protected_uint8))


def summarize(per: dict[str, np.ndarray]) -> dict:
  """`image_stats`'s figures from `per_image_stats` (of one array, or of chunks joined)."""
  n = len(per["psnr"])
  changed = np.isfinite(per["psnr"])
  return {
      "n_images": int(n),
      "n_changed_images": int(changed.sum()),
      "linf": float(per["linf"].max()) if n else 0.0,
      "linf_uint8": int(per["linf_uint8"].max()) if n else 0,
      "frac_changed": float(per["frac_changed"].mean()) if n else 0.0,
      "frac_changed_max": float(per["frac_changed"].max()) if n else 0.0,
      "psnr": float(per["psnr"][changed].mean()) if changed.any() else None,
      "ssim": float(per["ssim"].mean()) if n else None,
      "ssim_changed": float(per["ssim"][changed].mean()) if changed.any() else None,
      "ssim_min": float(per["ssim"].min()) if n else None,
  }


def _as_predict_fn(model_or_fn, task: str, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
  if isinstance(model_or_fn, nnx.Module):
    from salm_jax.evaluation import victim  # victim training is heavier; import only when needed
    return victim.make_predict_fn(model_or_fn, task, batch_size)
  if callable(model_or_fn):
    return model_or_fn
  raise ValueError("diagnostic_utility needs an nnx model or a function images -> y_score; "
                   f"got {type(model_or_fn).__name__}.")


def _predictions(y_score: np.ndarray, task: str) -> np.ndarray:
  """The decisions MedMNIST's ACC scores: thresholded labels, positive class, or argmax."""
  if tasks.is_multilabel(task):
    return y_score > 0.5
  if task == tasks.BINARY:
    return (y_score[:, -1] > 0.5)[:, None]
  return np.argmax(y_score, axis=-1)[:, None]


def diagnostic_utility(model_or_predict_fn, clean_images: np.ndarray,
                       protected_images: np.ndarray, labels: np.ndarray, task: str,
                       batch_size: int = 512) -> dict:
  """A clean-trained model on clean vs protected copies of the same images.

  `model_or_predict_fn` is an nnx model (run in eval mode) or a function of
  float NHWC images in [0, 1] returning MedMNIST `y_score`. Images are uint8
  (MedMNIST layout) or already float NHWC. Returns {'clean': {auc, acc},
  'protected': {auc, acc}, 'agreement' (fraction of identical decisions; per
  label for multi-label), 'delta_acc', 'delta_auc' (protected − clean)}.
  """
  tasks.check_task(task)
  predict = _as_predict_fn(model_or_predict_fn, task, batch_size)
  s_clean = np.asarray(predict(to_float(clean_images)))
  s_prot = np.asarray(predict(to_float(protected_images)))
  clean = metrics.evaluate_scores(labels, s_clean, task)
  prot = metrics.evaluate_scores(labels, s_prot, task)
  agree = float(np.mean(_predictions(s_clean, task) == _predictions(s_prot, task)))
  return {"clean": clean, "protected": prot, "agreement": agree,
          "delta_acc": prot["acc"] - clean["acc"], "delta_auc": prot["auc"] - clean["auc"]}


__all__ = ["image_stats", "per_image_stats", "diagnostic_utility"]

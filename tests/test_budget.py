"""The PSNR budget: ±ε on a ratio of pixels has the target PSNR, and protect honours it."""
import math

import numpy as np
import pytest

from configs import salm as salm_config
from salm_jax.noise import budget


@pytest.mark.parametrize("psnr, ratio", [(40.0, 0.1), (40.0, 0.025), (35.0, 1.0)])
def test_epsilon_for_psnr_gives_that_psnr(psnr, ratio):
  eps = budget.epsilon_for_psnr(psnr, ratio)
  assert math.isclose(-10 * math.log10(ratio * eps ** 2), psnr, rel_tol=1e-9)


def test_quarter_of_the_pixels_doubles_epsilon_at_equal_psnr():
  assert math.isclose(budget.epsilon_for_psnr(40, 0.025), 2 * budget.epsilon_for_psnr(40, 0.1))


def test_resolve_keeps_linf_and_scales_step_with_psnr():
  cfg = salm_config.get_config("synthetic,tiny")
  assert budget.resolve(cfg) is cfg
  cfg.noise.update(budget="psnr", target_psnr=40.0, mask_ratio=0.1)
  out = budget.resolve(cfg)
  assert math.isclose(out.noise.epsilon, 10 ** -2 / math.sqrt(0.1))
  assert math.isclose(out.noise.step_size / out.noise.epsilon,
                      cfg.noise.step_size / cfg.noise.epsilon)
  assert cfg.noise.epsilon == 8 / 255  # the caller's config is untouched


@pytest.mark.parametrize("field, value, match", [("budget", "l2", "noise.budget"),
                                                 ("target_psnr", -3.0, "target_psnr")])
def test_bad_budget_settings_are_named(field, value, match):
  cfg = salm_config.get_config("synthetic,tiny")
  cfg.noise.budget = "psnr"
  cfg.noise[field] = value
  with pytest.raises(ValueError, match=match):
    budget.resolve(cfg)


def test_written_file_meets_the_target_psnr(tmp_path):
  from salm_jax import protect  # pylint: disable=g-import-not-at-top
  cfg = salm_config.get_config("synthetic,tiny")
  cfg.noise.update(budget="psnr", target_psnr=40.0, mask_ratio=0.05)
  manifest = protect.protect(cfg, str(tmp_path), progress=False)
  assert manifest["epsilon"] == pytest.approx(budget.epsilon_for_psnr(40.0, 0.05))
  assert manifest["split_stats"]["train"]["psnr"] >= 40.0 - 1e-6
  assert np.isfinite(manifest["split_stats"]["train"]["psnr"])

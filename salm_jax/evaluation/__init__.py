"""The evaluation side: does the protection hold, and are the images still usable?

  victim.py     the unauthorized trainer (MedMNIST's recipe)
  defenses/     the tricks a trainer may use against the noise
  poisoning.py  partial and collaborative poisoning (who protected what)
  metrics.py    MedMNIST's ACC / AUC
  utility.py    PSNR, SSIM, pixels changed, diagnostic utility
  suite.py      the evaluation stage: victims clean vs protected, the tables

The stage's entry points are re-exported here (`evaluation.run_evaluation`).
"""
from salm_jax.evaluation.suite import (default_config, evaluate_datasets, json_safe,
                                       perturbed_splits, results_markdown, run_evaluation,
                                       write_results)

__all__ = ["default_config", "evaluate_datasets", "json_safe", "perturbed_splits",
           "results_markdown", "run_evaluation", "write_results"]

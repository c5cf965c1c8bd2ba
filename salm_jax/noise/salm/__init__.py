"""SALM's core: saliency, top-k masks, masked min-min PGD, the surrogate and the generator.

  saliency.py   per-pixel Σ_c |∇δ L|, the ranking that picks where noise may go
  masks.py      top-k pixel masks: at most ratio·H·W pixels of an image
  pgd.py        one compiled round of masked error-minimizing PGD
  surrogate.py  the Flax model (or ensemble) the noise is optimized against
  generator.py  the bi-level min-min loop (SALM; EM is mask_ratio=1), start and resume
  rounds.py     one round's passes over the rows: train, PGD, accuracy; clean masks
  steps.py      the compiled programs those passes run
  resident.py   images and noise kept on the devices by rows; which rows a process owns
  augment.py    random crops and flips inside a PGD step (noise.eot_samples)
  starts.py     a transferable start: AR or LSP on the top-k pixels (noise.init)
"""

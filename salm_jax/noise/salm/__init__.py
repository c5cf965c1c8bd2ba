"""SALM's core: saliency, top-k masks, masked min-min PGD, the surrogate and the generator.

  saliency.py   per-pixel Σ_c |∇δ L|, the ranking that picks where noise may go
  masks.py      top-k pixel masks: at most ratio·H·W pixels of an image
  pgd.py        one compiled round of masked error-minimizing PGD
  surrogate.py  the Flax model (or ensemble) the noise is optimized against
  generator.py  the bi-level min-min loop (SALM; EM is mask_ratio=1)
  resident.py   the noise kept on the devices from round to round, row-sharded per image
  augment.py    random crops and flips inside a PGD step (noise.eot_samples)
  starts.py     a transferable start: AR or LSP on the top-k pixels (noise.init)
"""

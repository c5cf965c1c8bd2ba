"""Whether a protected copy protects: one word per evaluation, from its victims.

A victim counts as held when training on the protected copy takes away at
least half of its clean test AUC's margin over chance (AUC 0.5): a clean
victim at 0.90 is held at 0.70 or below. The verdict is 'yes' when every
architecture is held, 'partly' when some are, 'no' when none is. It reads
the evaluation's results (last epoch, no defense, the largest poison
fraction; the first defense where 'none' was not run), so the report and
the terminal say the same thing.
"""
from __future__ import annotations


def verdict(results: dict) -> dict:
  """{'word': yes|partly|no, 'held': k, 'victims': [{arch, clean_auc, protected_auc, lost}]}."""
  top = max(r["poison_fraction"] for r in results["rows"])
  defenses = [r["defense"] for r in results["rows"]]
  defense = "none" if "none" in defenses else defenses[0]
  victims = []
  for r in results["rows"]:
    if r["defense"] != defense or r["poison_fraction"] != top:
      continue
    clean, prot = r["clean"]["last"]["auc"], r["protected"]["last"]["auc"]
    lost = (clean - prot) / (clean - 0.5) if None not in (clean, prot) and clean > 0.5 else None
    victims.append({"arch": r["arch"], "clean_auc": clean, "protected_auc": prot, "lost": lost})
  held = sum(v["lost"] is not None and v["lost"] >= 0.5 for v in victims)
  word = "yes" if victims and held == len(victims) else ("partly" if held else "no")
  return {"word": word, "held": held, "victims": victims, "defense": defense}

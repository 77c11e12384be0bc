"""The UDRRA DPO preset and trl's DPOTrainer reach the same exact KL on the same pairs."""
import importlib.util
from pathlib import Path

import torch

torch.set_num_threads(1)


def test_pra_preset_matches_trl_dpo_trainer():
    path = Path(__file__).parents[1] / "benchmarks" / "udrra_trl_dpo_crosscheck.py"
    spec = importlib.util.spec_from_file_location("crosscheck", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    start, ours, trl = mod.crosscheck(steps=30, batch=32, tau=0.1, lr=3e-4, seed=0)
    assert ours < start and trl < start  # both move toward the target
    moved = (start - ours + start - trl) / 2
    assert abs(ours - trl) < 0.25 * moved, (start, ours, trl)

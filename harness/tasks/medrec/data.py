"""The medrec task's dataset object: split samples plus what models and the scorer need
(code vocabularies, the code trees, the drug list, the DDI graph, evaluation slices)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ...api import TaskData
from .codes import CodeTree
from .samples import train_visit_counts

FEATURES = ("conditions", "procedures")


@dataclass
class MedRecInfo:
    """``vocab[feature]`` lists the codes of all samples (train, valid and test, as
    PyHealth's tokenizer does: test-only codes get never-trained rows in a flat table);
    index 0 is reserved for padding, so code ``vocab[f][i]`` has id ``i + 1``.
    ``train_codes[feature]`` are the codes seen in training visits. ``trees[feature]``
    is the true code tree with the data's out-of-tree codes attached."""

    drugs: list[str]
    vocab: dict[str, list[str]]
    train_codes: dict[str, set]
    trees: dict[str, CodeTree]
    ddi: Optional[np.ndarray]
    slices: dict[str, dict[str, np.ndarray]]
    tau: float = 0.5
    secondary_tau: Optional[float] = 0.3
    unplaced: dict[str, list[str]] = field(default_factory=dict)
    #: nodes of each shipped tree; attached out-of-tree codes come after them
    n_tree_nodes: dict[str, int] = field(default_factory=dict)

    def code_ids(self, feature: str) -> dict[str, int]:
        return {c: i + 1 for i, c in enumerate(self.vocab[feature])}


def evaluation_slices(part: Sequence[dict], counts: dict[str, int],
                      signal: Optional[set], rare_max: int = 2) -> dict[str, np.ndarray]:
    """RARE: the target visit holds a signal diagnosis seen at most ``rare_max`` times in
    training visits; UNSEEN: one never seen in training. ``signal=None`` counts every
    diagnosis (real data has no known signal set)."""
    rare, unseen = [], []
    for i, s in enumerate(part):
        codes = [c for c in s["conditions"][-1] if signal is None or c in signal]
        seen = [counts.get(c, 0) for c in codes]
        if any(n <= rare_max for n in seen):
            rare.append(i)
        if any(n == 0 for n in seen):
            unseen.append(i)
    return {"rare": np.asarray(rare, dtype=np.int64), "unseen": np.asarray(unseen, dtype=np.int64)}


def make_medrec_data(name: str, train: list[dict], valid: list[dict], test: list[dict],
                     trees: dict[str, CodeTree], ddi: Optional[np.ndarray],
                     drugs: Optional[list[str]], fingerprint: dict,
                     signal: Optional[set] = None, rare_max: int = 2, tau: float = 0.5,
                     secondary_tau: Optional[float] = 0.3,
                     diagnostics: Optional[dict] = None) -> TaskData:
    """Wrap split samples as a ``medrec`` :class:`TaskData` (``extra["medrec"]``)."""
    everything = train + valid + test
    vocab = {f: sorted({c for s in everything for v in s[f] for c in v}) for f in FEATURES}
    drugs = drugs or sorted({d for s in everything for d in s["drugs"]})
    train_codes = {f: {c for s in train for v in s[f] for c in v} for f in FEATURES}
    attached, unplaced = {}, {}
    for f in FEATURES:
        attached[f], unplaced[f] = trees[f].attach(vocab[f])
    counts = train_visit_counts(train, "conditions")
    slices = {p: evaluation_slices(part, counts, signal, rare_max)
              for p, part in (("valid", valid), ("test", test))}
    info = MedRecInfo(drugs=drugs, vocab=vocab, train_codes=train_codes, trees=attached,
                      ddi=ddi, slices=slices, tau=tau, secondary_tau=secondary_tau,
                      unplaced=unplaced, n_tree_nodes={f: len(t) for f, t in trees.items()})
    diag = {"samples": {"train": len(train), "valid": len(valid), "test": len(test)},
            "patients": {p: len({s["patient_id"] for s in part})
                         for p, part in (("train", train), ("valid", valid), ("test", test))},
            "vocab": {f: len(v) for f, v in vocab.items()}, "drugs": len(drugs),
            "codes_outside_tree": {f: len(u) for f, u in unplaced.items()},
            "slices": {p: {k: len(v) for k, v in sl.items()} for p, sl in slices.items()},
            **(diagnostics or {})}
    protocol = {"split": "by patient", "tau": tau, "secondary_tau": secondary_tau,
                "averaging": "per sample (PyHealth)", "rare_max_train_visits": rare_max,
                "ddi_rate": "pooled over samples"}
    return TaskData(name=name, task="medrec", train=train, valid=valid, test=test,
                    fingerprint=fingerprint, protocol=protocol, diagnostics=diag,
                    extra={"medrec": info})

"""Samples as PyHealth's drug-recommendation task builds them, and the patient split.

A patient is a list of visits in time order; a visit has diagnosis codes
(``conditions``), procedure codes and drug codes (ATC-3 in MIMIC). The task function
(PyHealth ``drug_recommendation_mimic3_fn``):

* drops visits that lack any of the three code lists,
* drops patients with fewer than 2 remaining visits,
* turns every remaining visit i into one sample: ``conditions``/``procedures`` are the
  nested code lists of visits 0..i, ``drugs_hist`` the drug lists of visits 0..i with
  visit i's emptied, and the label ``drugs`` is visit i's drug set.

The generator and the MIMIC loader both produce ``Patient`` lists and go through
:func:`build_samples`, so both give the same sample format.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class Visit:
    visit_id: str
    conditions: list[str]
    procedures: list[str]
    drugs: list[str]


@dataclass
class Patient:
    patient_id: str
    visits: list[Visit] = field(default_factory=list)


def _dedup(codes: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(c for c in codes if c))


def build_samples(patients: Sequence[Patient]) -> list[dict]:
    """One sample per kept visit, with the history of the patient's kept visits."""
    samples = []
    for patient in patients:
        visits = [v for v in patient.visits if v.conditions and v.procedures and v.drugs]
        if len(visits) < 2:
            continue
        for i in range(len(visits)):
            hist = visits[:i + 1]
            samples.append({
                "sample_id": f"{patient.patient_id}:{visits[i].visit_id}",
                "patient_id": patient.patient_id,
                "visit_id": visits[i].visit_id,
                "conditions": [_dedup(v.conditions) for v in hist],
                "procedures": [_dedup(v.procedures) for v in hist],
                "drugs_hist": [_dedup(v.drugs) for v in hist[:-1]] + [[]],
                "drugs": _dedup(visits[i].drugs),
            })
    return samples


def split_by_patient(samples: Sequence[dict], ratios: Sequence[float] = (0.8, 0.1, 0.1),
                     seed: int = 1994) -> tuple[list[dict], list[dict], list[dict]]:
    """Random patient-level split (PyHealth ``split_by_patient``): every sample of a
    patient lands in the same part."""
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-6 or min(ratios) < 0:
        raise ValueError(f"split ratios must be three non-negative numbers summing to 1, got "
                         f"{list(ratios)}")
    patients = sorted({s["patient_id"] for s in samples})
    order = np.random.default_rng(seed).permutation(len(patients))
    n_train = int(len(patients) * ratios[0])
    n_valid = int(len(patients) * (ratios[0] + ratios[1])) - n_train
    part_of = {}
    for rank, i in enumerate(order):
        part_of[patients[i]] = 0 if rank < n_train else (1 if rank < n_train + n_valid else 2)
    parts: tuple[list, list, list] = ([], [], [])
    for s in samples:
        parts[part_of[s["patient_id"]]].append(s)
    return parts


def train_visit_counts(train: Sequence[dict], feature: str = "conditions") -> dict[str, int]:
    """How many training visits hold each code (each visit once: a sample repeats its
    history, so only each sample's target visit is counted)."""
    counts: dict[str, int] = {}
    for s in train:
        for code in s[feature][-1]:
            counts[code] = counts.get(code, 0) + 1
    return counts

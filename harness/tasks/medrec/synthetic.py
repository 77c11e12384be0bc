"""A synthetic EHR on the real ICD-9 trees whose drug labels depend on chosen
hierarchy levels (spec §4.1).

* K active 3-digit diagnosis categories (>= ``min_leaves`` leaves), popularity Zipf(0.8).
* Each category has 2 category-level drugs; each block (the category's parent) 1
  block-level drug; each category is linked to one 3-digit procedure subcategory with 1
  procedure drug.
* Inside a category, leaves follow Zipf(1.5) over a random order: most leaves are rare or
  unseen in training, but their drugs are fully set by their category (what HIER claims
  to exploit).
* Patients have 1-3 chronic conditions and 2-4 visits (one condition swapped with
  probability 0.3 per visit). Per visit and condition: one leaf; each category drug with
  p 0.9, the block drug with p 0.7; with p 0.6 a procedure leaf of the linked
  subcategory whose drug comes with p 0.8. Poisson(2) distractor diagnoses from a fixed
  pool of 400 leaves outside the active categories (no drug signal), one noise drug with
  p 0.5. A random DDI graph of 150 pairs.
* ``hierarchy="permuted"``: the same patients, with every signal leaf relabelled through
  :func:`~harness.tasks.medrec.codes.permute_leaves` (diagnosis leaves across the active
  categories, procedure leaves across the linked subcategories): the true tree and the
  code strings then carry no information about the drugs (the falsification control).
"""
from __future__ import annotations

from typing import Literal, Optional

import numpy as np

from ...api import TaskData
from .codes import CodeTree, load_tree, permute_leaves
from .data import make_medrec_data
from .samples import Patient, Visit, build_samples, split_by_patient


def _zipf(n: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** a
    return w / w.sum()


def generate_patients(dx: CodeTree, px: CodeTree, n_patients: int = 4000,
                      n_categories: int = 120, min_leaves: int = 4, n_drugs: int = 100,
                      category_zipf: float = 0.8, leaf_zipf: float = 1.5,
                      max_conditions: int = 3, min_visits: int = 2, max_visits: int = 4,
                      swap_prob: float = 0.3, drug_prob: float = 0.9,
                      block_drug_prob: float = 0.7, proc_prob: float = 0.6,
                      proc_drug_prob: float = 0.8, distractor_pool: int = 400,
                      distractor_rate: float = 2.0, noise_drug_prob: float = 0.5,
                      n_ddi_pairs: int = 150, seed: int = 0
                      ) -> tuple[list[Patient], np.ndarray, dict]:
    """Patients on the true trees, the DDI adjacency, and the generator's structure
    (signal leaves per feature, category -> drugs, ...)."""
    rng = np.random.default_rng(seed)
    dx_children = dx.children()
    cats = sorted(c for c, ch in dx_children.items() if c.startswith("category:")
                  and sum(x not in dx_children for x in ch) >= min_leaves)
    if len(cats) < n_categories:
        raise ValueError(f"only {len(cats)} categories have >= {min_leaves} leaves")
    active = [cats[i] for i in rng.choice(len(cats), n_categories, replace=False)]
    popularity = _zipf(n_categories, category_zipf)
    leaves = {c: [x for x in dx_children[c] if x not in dx_children] for c in active}
    leaf_order = {c: [leaves[c][i] for i in rng.permutation(len(leaves[c]))] for c in active}
    leaf_p = {c: _zipf(len(leaves[c]), leaf_zipf) for c in active}
    cat_drugs = {c: rng.choice(n_drugs, 2, replace=False).tolist() for c in active}
    blocks = sorted({dx.parent_of(c) for c in active})
    block_drug = {b: int(rng.integers(n_drugs)) for b in blocks}
    px_children = px.children()
    subs = sorted(s for s, ch in px_children.items() if s.startswith("subcategory:")
                  and len(ch) >= 2)
    linked = {c: subs[int(rng.integers(len(subs)))] for c in active}
    sub_drug = {s: int(rng.integers(n_drugs)) for s in sorted(set(linked.values()))}
    active_set = set(active)
    outside = sorted(x for x in dx.leaves() if dx.parent_of(x) not in active_set
                     and not x.startswith("category:"))
    pool = [outside[i] for i in rng.choice(len(outside), distractor_pool, replace=False)]
    drug_names = [f"D{j:03d}" for j in range(n_drugs)]

    patients = []
    for p in range(n_patients):
        k = int(rng.integers(1, max_conditions + 1))
        conds = rng.choice(n_categories, k, replace=False, p=popularity).tolist()
        visits = []
        for v in range(int(rng.integers(min_visits, max_visits + 1))):
            if v > 0 and rng.random() < swap_prob:
                new = int(rng.choice(n_categories, p=popularity))
                if new not in conds:
                    conds[int(rng.integers(len(conds)))] = new
            dxs, pxs, drugs = [], [], set()
            for ci in conds:
                c = active[ci]
                dxs.append(leaf_order[c][int(rng.choice(len(leaf_p[c]), p=leaf_p[c]))])
                drugs.update(d for d in cat_drugs[c] if rng.random() < drug_prob)
                if rng.random() < block_drug_prob:
                    drugs.add(block_drug[dx.parent_of(c)])
                if rng.random() < proc_prob:
                    sub = linked[c]
                    pxs.append(px_children[sub][int(rng.integers(len(px_children[sub])))])
                    if rng.random() < proc_drug_prob:
                        drugs.add(sub_drug[sub])
            dxs += [pool[int(i)] for i in rng.integers(0, len(pool), rng.poisson(distractor_rate))]
            if rng.random() < noise_drug_prob:
                drugs.add(int(rng.integers(n_drugs)))
            visits.append(Visit(f"v{v}", dxs, pxs, [drug_names[d] for d in sorted(drugs)]))
        patients.append(Patient(f"p{p}", visits))
    ddi = np.zeros((n_drugs, n_drugs), dtype=np.int8)
    pairs = set()
    while len(pairs) < min(n_ddi_pairs, n_drugs * (n_drugs - 1) // 2):
        i, j = sorted(rng.choice(n_drugs, 2, replace=False).tolist())
        pairs.add((i, j))
    for i, j in pairs:
        ddi[i, j] = ddi[j, i] = 1
    structure = {
        "active_categories": active, "drug_names": drug_names,
        "signal": {"conditions": sorted(x for c in active for x in leaves[c]),
                   "procedures": sorted({x for s in set(linked.values())
                                         for x in px_children[s]})},
    }
    return patients, ddi, structure


def relabel(patients: list[Patient], dx_map: dict[str, str], px_map: dict[str, str]
            ) -> list[Patient]:
    return [Patient(p.patient_id, [Visit(v.visit_id, [dx_map.get(c, c) for c in v.conditions],
                                         [px_map.get(c, c) for c in v.procedures], v.drugs)
                                   for v in p.visits]) for p in patients]


def make_synthetic_medrec(n_patients: int = 4000,
                          hierarchy: Literal["aligned", "permuted"] = "aligned",
                          seed: int = 0, split_seed: int = 1994, tau: float = 0.5,
                          secondary_tau: Optional[float] = 0.3, rare_max: int = 2,
                          **generator: float) -> TaskData:
    """The generated ``medrec`` dataset on the true (or permuted) hierarchy."""
    if hierarchy not in ("aligned", "permuted"):
        raise ValueError(f"hierarchy must be 'aligned' or 'permuted', got {hierarchy!r}")
    dx, px = load_tree("icd9cm"), load_tree("icd9proc")
    patients, ddi, structure = generate_patients(dx, px, n_patients=n_patients, seed=seed,
                                                 **generator)
    signal = set(structure["signal"]["conditions"])
    diagnostics: dict = {"hierarchy": hierarchy}
    if hierarchy == "permuted":
        prng = np.random.default_rng(seed + 7919)
        perm_dx, dx_map = permute_leaves(dx, structure["signal"]["conditions"], prng)
        perm_px, px_map = permute_leaves(px, structure["signal"]["procedures"], prng)
        patients = relabel(patients, dx_map, px_map)
        signal = {dx_map[c] for c in signal}
        diagnostics["permuted_leaves"] = {
            "conditions": sum(perm_dx.parent_of(c) != dx.parent_of(c) for c in dx_map),
            "procedures": sum(perm_px.parent_of(c) != px.parent_of(c) for c in px_map)}
    samples = build_samples(patients)
    train, valid, test = split_by_patient(samples, (0.8, 0.1, 0.1), split_seed)
    fingerprint = {"generator": "medrec_synth", "n_patients": n_patients,
                   "hierarchy": hierarchy, "seed": seed, "split_seed": split_seed,
                   "tau": tau, "secondary_tau": secondary_tau, "rare_max": rare_max,
                   **generator}
    return make_medrec_data("medrec_synth", train, valid, test,
                            {"conditions": dx, "procedures": px}, ddi,
                            structure["drug_names"], fingerprint, signal=signal,
                            rare_max=rare_max, tau=tau, secondary_tau=secondary_tau,
                            diagnostics=diagnostics)

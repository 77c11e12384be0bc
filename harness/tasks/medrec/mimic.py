"""MIMIC-III / MIMIC-IV CSVs from a local folder -> the medrec task (credentialed data
never leaves the user's machine; nothing is downloaded).

Tables (``.csv`` or ``.csv.gz``; column names matched case-insensitively):

* ``ADMISSIONS``: SUBJECT_ID, HADM_ID, ADMITTIME (visit order)
* ``DIAGNOSES_ICD`` / ``PROCEDURES_ICD``: SUBJECT_ID, HADM_ID, ICD9_CODE (MIMIC-III) or
  icd_code + icd_version (MIMIC-IV, filtered to ``icd_version``)
* ``PRESCRIPTIONS``: SUBJECT_ID, HADM_ID and the drug column (NDC by default)

Labels: PyHealth maps NDC to ATC level 3 through a table it downloads at run time; here
``drug_map`` names a local two-column CSV (drug value -> ATC code) and labels are the
mapped codes cut to ``atc_level`` (level 3 = 4 characters). Without a map the raw drug
column values are the labels. ``ddi``: an optional two-column CSV of interacting label
pairs. Samples are built by the same :func:`build_samples` as the generator's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ...api import BenchError, TaskData
from .codes import load_tree
from .data import make_medrec_data
from .samples import Patient, Visit, build_samples, split_by_patient

ATC_LENGTH = {1: 1, 2: 3, 3: 4, 4: 5, 5: 7}


def _find(root: Path, table: str) -> Path:
    for name in (table, table.lower()):
        for ext in (".csv", ".csv.gz"):
            if (root / f"{name}{ext}").exists():
                return root / f"{name}{ext}"
    raise BenchError(f"mimic_medrec: {root} has no {table}.csv (or .csv.gz, or lower-case "
                     "name), which the medrec task needs.")


def _read(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    """Read ``path`` as strings and return the wanted columns under their canonical
    names (``columns``: canonical -> name in the file, any case)."""
    head = pd.read_csv(path, nrows=0)
    lower = {c.lower(): c for c in head.columns}
    missing = [want for want in columns.values() if want.lower() not in lower]
    if missing:
        raise BenchError(f"mimic_medrec: {path} has no column '{missing[0]}' (columns: "
                         f"{', '.join(head.columns)}).")
    use = {lower[want.lower()]: canon for canon, want in columns.items()}
    df = pd.read_csv(path, usecols=list(use), dtype=str, keep_default_na=False)
    return df.rename(columns=use)


def _pairs(path: Path, what: str) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if df.shape[1] < 2:
        raise BenchError(f"mimic_medrec: {what} file {path} needs two columns, has {df.shape[1]}.")
    return df.iloc[:, :2]


def load_mimic_patients(path: str, version: int = 3, icd_version: int = 9,
                        drug_column: Optional[str] = None, drug_map: Optional[str] = None,
                        atc_level: int = 3) -> list[Patient]:
    """Patients with their admissions in time order (codes dotless, drugs mapped)."""
    root = Path(path)
    if not root.is_dir():
        raise BenchError(f"mimic_medrec: path {root} is not a folder.")
    code_col = "ICD9_CODE" if version == 3 else "icd_code"
    drug_col = drug_column or ("NDC" if version == 3 else "ndc")
    adm = _read(_find(root, "ADMISSIONS"), {"pid": "SUBJECT_ID", "vid": "HADM_ID",
                                            "time": "ADMITTIME"})
    tables = {}
    for feature, table in (("conditions", "DIAGNOSES_ICD"), ("procedures", "PROCEDURES_ICD")):
        cols = {"vid": "HADM_ID", "code": code_col}
        if version == 4:
            cols["icd_version"] = "icd_version"
        df = _read(_find(root, table), cols)
        if version == 4:
            df = df[df["icd_version"].str.strip() == str(icd_version)]
        df = df.assign(code=df["code"].str.replace(".", "", regex=False).str.strip())
        tables[feature] = df[df["code"] != ""]
    rx = _read(_find(root, "PRESCRIPTIONS"), {"vid": "HADM_ID", "drug": drug_col})
    rx = rx.assign(drug=rx["drug"].str.strip())
    rx = rx[(rx["drug"] != "") & (rx["drug"] != "0")]
    if drug_map:
        m = _pairs(Path(drug_map), "drug_map")
        mapping = dict(zip(m.iloc[:, 0].str.strip(), m.iloc[:, 1].str.strip()))
        rx = rx.assign(drug=rx["drug"].map(mapping)).dropna(subset=["drug"])
        rx = rx.assign(drug=rx["drug"].str[:ATC_LENGTH[atc_level]])
    tables["drugs"] = rx.rename(columns={"drug": "code"})
    by_visit = {f: df.groupby("vid", sort=False)["code"].apply(list).to_dict()
                for f, df in tables.items()}
    adm = adm.assign(t=pd.to_datetime(adm["time"], errors="coerce"))
    adm = adm.sort_values(["pid", "t", "vid"], kind="stable")
    patients = []
    for pid, group in adm.groupby("pid", sort=True):
        visits = [Visit(vid, by_visit["conditions"].get(vid, []),
                        by_visit["procedures"].get(vid, []), by_visit["drugs"].get(vid, []))
                  for vid in group["vid"]]
        patients.append(Patient(str(pid), visits))
    return patients


def load_mimic_medrec(path: str, version: int = 3, icd_version: int = 9,
                      drug_column: Optional[str] = None, drug_map: Optional[str] = None,
                      atc_level: int = 3, ddi: Optional[str] = None, split_seed: int = 1994,
                      tau: float = 0.5, secondary_tau: Optional[float] = 0.3,
                      rare_max: int = 2) -> TaskData:
    """The ``mimic_medrec`` dataset: PyHealth's drug-recommendation samples, split by
    patient 80/10/10, on the ICD-9 (or, for MIMIC-IV with ``icd_version: 10``, ICD-10)
    trees with the data's out-of-tree codes attached under their prefix."""
    patients = load_mimic_patients(path, version, icd_version, drug_column, drug_map, atc_level)
    samples = build_samples(patients)
    if not samples:
        raise BenchError(f"mimic_medrec: {path} gives no sample (no patient has 2 admissions "
                         "with diagnoses, procedures and drugs).")
    train, valid, test = split_by_patient(samples, (0.8, 0.1, 0.1), split_seed)
    kinds = ("icd9cm", "icd9proc") if icd_version == 9 else ("icd10cm", "icd10pcs")
    trees = {"conditions": load_tree(kinds[0]), "procedures": load_tree(kinds[1])}
    drugs = sorted({d for s in samples for d in s["drugs"]})
    adj = None
    if ddi:
        pairs = _pairs(Path(ddi), "ddi")
        index = {d: j for j, d in enumerate(drugs)}
        adj = np.zeros((len(drugs), len(drugs)), dtype=np.int8)
        for a, b in zip(pairs.iloc[:, 0].str.strip(), pairs.iloc[:, 1].str.strip()):
            if a in index and b in index and a != b:
                adj[index[a], index[b]] = adj[index[b], index[a]] = 1
    fingerprint = {"loader": "mimic_medrec", "path": str(Path(path).resolve()),
                   "version": version, "icd_version": icd_version, "drug_column": drug_column,
                   "drug_map": drug_map, "atc_level": atc_level, "ddi": ddi,
                   "split_seed": split_seed, "n_samples": len(samples),
                   "n_codes": sum(len(v) for s in samples for v in s["conditions"])}
    return make_medrec_data("mimic_medrec", train, valid, test, trees, adj, drugs, fingerprint,
                            signal=None, rare_max=rare_max, tau=tau, secondary_tau=secondary_tau,
                            diagnostics={"patients_loaded": len(patients)})

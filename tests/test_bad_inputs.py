"Every bad input is refused with a message naming the file and the rows; no tracebacks for user errors."
import pandas as pd
import pytest
from conftest import cli, run, REAL
from image2biomass.data import TARGETS


def corrupt(ds, fn):
    df = pd.read_csv(ds / "train.csv", dtype=str, keep_default_na=False)
    df = fn(df)
    df.to_csv(ds / "train.csv", index=False)


CASES = {
    "missing column": (lambda d: d.drop(columns="Height_Ave_cm"), ["missing column", "Height_Ave_cm"]),
    "unknown target": (lambda d: d.assign(target_name=["Dry_Weed_g"] + list(d.target_name[1:])), ["unknown target_name", "line 2", "Dry_Weed_g"]),
    "duplicated sample_id": (lambda d: pd.concat([d, d.iloc[[4]]], ignore_index=True), ["duplicated sample_id", "line 6", "line 152"]),
    "image lacks targets": (lambda d: d.drop(index=[10, 11]).reset_index(drop=True), ["1 image(s) lack some targets", "lacks ['Dry_Clover_g', 'Dry_Dead_g']"]),
    "NaN target": (lambda d: d.assign(target=["nan"] + list(d.target[1:])), ["non-numeric, infinite or negative", "line 2"]),
    "inf target": (lambda d: d.assign(target=list(d.target[:3]) + ["inf"] + list(d.target[4:])), ["infinite", "line 5"]),
    "negative target": (lambda d: d.assign(target=list(d.target[:7]) + ["-3.5"] + list(d.target[8:])), ["negative", "line 9"]),
    "bad date": (lambda d: d.assign(Sampling_Date=["2015-13-45"] + list(d.Sampling_Date[1:])), ["Sampling_Date", "line 2"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_train_csv_refused(dataset_copy, case):
    fn, expected = CASES[case]
    corrupt(dataset_copy, fn)
    r = run("validate", dataset_copy, check=2)
    assert str(dataset_copy / "train.csv") in r.stderr
    for e in expected: assert e in r.stderr, f"{e!r} not in:\n{r.stderr}"
    assert "Traceback" not in r.stderr


def test_all_missing_images_listed(dataset_copy):
    imgs = sorted((dataset_copy / "train").iterdir())[:3]
    for p in imgs: p.unlink()
    r = run("validate", dataset_copy, check=2)
    assert "3 of 30 image file(s) not found" in r.stderr
    for p in imgs: assert p.name in r.stderr


def test_corrupt_images_named(dataset_copy):
    imgs = sorted((dataset_copy / "train").iterdir())
    imgs[0].write_bytes(b"")
    imgs[1].write_bytes(imgs[1].read_bytes()[:300])
    imgs[2].write_text("hello")
    r = run("validate", dataset_copy, check=2)
    assert "3 of 34 image(s) cannot be decoded" in r.stderr
    for p in imgs[:3]: assert p.name in r.stderr


def test_fewer_dates_than_folds(dataset_copy, tmp_path):
    corrupt(dataset_copy, lambda d: d.assign(Sampling_Date="2015/9/4"))
    r = run("folds", dataset_copy, "--out", tmp_path / "f.csv", check=2)
    assert "all 30 photos are of one sampling date" in r.stderr and "n_splits" not in r.stderr
    corrupt(dataset_copy, lambda d: d.assign(Sampling_Date=d.Sampling_Date.where(d.index < 75, "2015/9/5")))
    r = run("folds", dataset_copy, "--out", tmp_path / "f.csv", check=2)
    assert "only 2 distinct sampling dates for 5 folds" in r.stderr and "--folds 2 or fewer" in r.stderr


def test_real_train_csv_loads_and_reports_mass_balance():
    if not REAL.exists(): pytest.skip("real CSVs not present")
    from image2biomass.data import read_train, describe_dataset, mass_balance
    tr = read_train(REAL / "train.csv")
    assert len(tr) == 357 and tr.State.value_counts().to_dict() == {"Tas": 138, "Vic": 112, "NSW": 75, "WA": 32}
    assert (tr.loc[tr.State == "WA", "Dry_Dead_g"] == 0).all()
    assert "ID2014192906" in describe_dataset(tr)
    assert mass_balance(tr).image_id.tolist() == ["ID2014192906"]


def test_real_csv_missing_images_named(tmp_path):
    if not REAL.exists(): pytest.skip("real CSVs not present")
    import shutil
    shutil.copy(REAL / "train.csv", tmp_path / "train.csv")
    r = run("validate", tmp_path, check=2)
    assert "357 of 357 image file(s) not found" in r.stderr and "and 337 more" in r.stderr

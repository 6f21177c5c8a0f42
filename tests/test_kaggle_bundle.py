"""`image2biomass kaggle-bundle` is safe: options checked before building, the bundle whole or absent, never a
foreign folder replaced."""
import ast, hashlib, json
from pathlib import Path
import pytest
from conftest import run

MARKER = ".image2biomass-bundle"


def digest(folder) -> dict:
    "sha256 of every file under `folder`, by relative path."
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def old_bundle(out) -> dict:
    "A bundle as an earlier kaggle-bundle left it (made by hand: no build); returns its digest."
    for sub in ("wheelhouse", "kernel"): (out / sub).mkdir(parents=True)
    (out / MARKER).write_text("made by image2biomass kaggle-bundle\n")
    (out / "wheelhouse" / "image2biomass-0.0.1-py3-none-any.whl").write_bytes(b"old wheel")
    (out / "wheelhouse" / "dataset-metadata.json").write_text('{"id": "me/image2biomass-wheels"}')
    (out / "kernel" / "image2biomass-infer.ipynb").write_text('{"cells": []}')
    (out / "kernel" / "kernel-metadata.json").write_text('{"id": "me/image2biomass-infer"}')
    return digest(out)


def leftovers(tmp_path) -> list:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial"))


def test_overwrite_refuses_a_folder_of_foreign_files(tmp_path):
    out = tmp_path / "mine"; out.mkdir()
    (out / "notes.txt").write_text("my notes"); (out / "kernel").mkdir(); (out / "kernel" / "x.py").write_text("x")
    before = digest(out)
    for extra in ([], ["--overwrite"]):
        r = run("kaggle-bundle", "--out", out, "--owner", "me", *extra, check=2)
        assert r.stderr.strip() == (f"image2biomass: error: {out} is not a bundle made by kaggle-bundle "
                                    f"(no {MARKER} marker); choose another --out")
    assert digest(out) == before and leftovers(tmp_path) == []


def test_bundle_without_overwrite_and_users_file_in_a_bundle_are_refused(tmp_path):
    out = tmp_path / "bundle"; before = old_bundle(out)
    r = run("kaggle-bundle", "--out", out, check=2)
    assert "already holds a bundle; pass --overwrite" in r.stderr
    (out / "notes.txt").write_text("mine"); before["notes.txt"] = hashlib.sha256(b"mine").hexdigest()
    r = run("kaggle-bundle", "--out", out, "--overwrite", check=2)
    assert "holds files its bundle did not make (notes.txt)" in r.stderr
    assert digest(out) == before and leftovers(tmp_path) == []


def test_failing_extra_package_leaves_the_old_bundle_as_it_was(tmp_path):
    out = tmp_path / "bundle"; before = old_bundle(out)
    r = run("kaggle-bundle", "--out", out, "--owner", "me", "--extra-packages", "not-a-pkg", "--overwrite", check=2)
    msg = r.stderr.strip()
    assert msg.startswith("image2biomass: error: --extra-packages not-a-pkg: pip download failed:"), msg
    assert "\n" not in msg, msg
    assert "not-a-pkg" in msg.split("failed:", 1)[1]            # pip's own error line names it too
    assert digest(out) == before and leftovers(tmp_path) == []


def test_failing_wheel_build_leaves_the_old_bundle_as_it_was(tmp_path, monkeypatch):
    import image2biomass.kaggle as kaggle
    broken = tmp_path / "src"; (broken / "nbs" / "kernels").mkdir(parents=True)
    (broken / "pyproject.toml").write_text("[project\nname = 'x'\n")          # pip cannot even read it
    monkeypatch.setattr(kaggle, "_repo_root", lambda: broken)
    out = tmp_path / "bundle"; before = old_bundle(out)
    r = run("kaggle-bundle", "--out", out, "--owner", "me", "--overwrite", check=2)
    msg = r.stderr.strip()
    assert msg.startswith("image2biomass: error: building the image2biomass wheel failed:") and "\n" not in msg, msg
    assert "TOMLDecodeError" in msg
    assert digest(out) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("params, says", [
    ('{"x=__import__(\\"os\\").system(\\"id\\");y": 1}', "not a parameter of the infer kernel"),
    ('{"nonexistent_param": 3}', "'nonexistent_param': not a parameter of the infer kernel; choose from ['data_dir'"),
    ('{"tta": "bogus"}', "--tta 'bogus': choose one of"),
    ('{"state_threshold": NaN}', "not JSON data"),
    ('{"tta": d4}', "not valid JSON"),
    ('["tta", "d4"]', "a JSON object of kernel parameters"),
])
def test_bad_params_are_refused_and_nothing_written(tmp_path, params, says):
    out = tmp_path / "bundle"
    r = run("kaggle-bundle", "--out", out, "--owner", "me", "--params", params, check=2)
    assert r.stderr.startswith("image2biomass: error: --params ") and says in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, value, says", [
    ("--owner", "../..", "--owner '../..': a Kaggle user name (letters, digits, '-' or '_')"),
    ("--owner", "me/you", "--owner 'me/you': a Kaggle user name"),
    ("--dataset-sources", "not a slug", "--dataset-sources 'not a slug': a Kaggle dataset owner/slug"),
    ("--dataset-sources", "me/../../etc", "--dataset-sources 'me/../../etc'"),
    ("--model-sources", "me/dinov2/pyTorch/base", "--model-sources 'me/dinov2/pyTorch/base': a Kaggle model"),
    ("--wheels-slug", "w; rm -rf ~", "--wheels-slug 'w; rm -rf ~': a Kaggle dataset slug"),
    ("--competition", "../csiro", "--competition '../csiro': a Kaggle competition slug"),
])
def test_bad_kaggle_ids_are_refused_and_nothing_written(tmp_path, option, value, says):
    r = run("kaggle-bundle", "--out", tmp_path / "bundle", option, value, check=2)
    assert r.stderr.startswith(f"image2biomass: error: {says}"), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_good_bundle_replaces_an_old_one_whole(tmp_path):
    out = tmp_path / "bundle"; old_bundle(out)
    (tmp_path / "bundle.partial").mkdir(); (tmp_path / "bundle.partial" / MARKER).touch()   # left by a killed build
    (tmp_path / "bundle.partial" / "half.whl").write_bytes(b"half")
    weird = 'a"; import os; os.system("id") #\n'
    run("kaggle-bundle", "--out", out, "--owner", "me", "--overwrite", "--dataset-sources", "me/dinov2-weights",
        "--model-sources", "metaresearch/dinov2/pyTorch/base/1",
        "--params", json.dumps({"tta": "d4", "submission": weird}), check=0)
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "kernel", "wheelhouse"])
    wheels = [p.name for p in (out / "wheelhouse").glob("*.whl")]
    assert len(wheels) == 1 and wheels[0] != "image2biomass-0.0.1-py3-none-any.whl"     # the new wheel, the old gone
    meta = json.loads((out / "kernel" / "kernel-metadata.json").read_text())
    assert meta["id"] == "me/image2biomass-infer" and meta["model_sources"] == ["metaresearch/dinov2/pyTorch/base/1"]
    assert meta["dataset_sources"] == ["me/image2biomass-wheels", "me/dinov2-weights"]
    nb = json.loads((out / "kernel" / meta["code_file"]).read_text())
    cell = next(c for c in nb["cells"] if c.get("id") == "i2b-kaggle-params")
    tree = ast.parse("".join(cell["source"]))             # the parameters are data: one assignment of a literal each
    assert all(isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant) for s in tree.body)
    values = {s.targets[0].id: s.value.value for s in tree.body}
    assert values["tta"] == "d4" and values["submission"] == weird
    assert values["data_dir"] == "/kaggle/input/csiro-biomass" and "workers" not in values   # by device
    # a second run without --overwrite is refused, the new bundle kept
    assert "pass --overwrite" in run("kaggle-bundle", "--out", out, check=2).stderr

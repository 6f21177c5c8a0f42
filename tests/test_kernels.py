"The papermill kernels on a real Jupyter kernel, and the Kaggle bundle installed offline."
import json, os, subprocess, sys, venv
from pathlib import Path
import pandas as pd
import pytest
from conftest import ROOT, BIN, REAL

KERNELS = KERNELS_DIR = ROOT / "nbs" / "kernels"


def run_nb(name, out_dir, cwd=None, **params):
    "Execute kernel `name` with papermill in `cwd` (default: `out_dir`, where the executed copy goes)."
    import papermill as pm
    return pm.execute_notebook(str(KERNELS / f"{name}.ipynb"), str(out_dir / f"{name}-{params.get('backbone', 'x')}.ipynb"),
                               parameters=params, kernel_name="python3", cwd=str(cwd or out_dir), progress_bar=False)


@pytest.mark.slow
def test_papermill_train_two_backbones_then_infer(tmp_path):
    """Two backbones (the weight-free extractor and a timm ViT) trained by the train kernel, then the infer kernel
    ensembles both; every kernel runs in an empty working folder that stays empty (all output under work_dir), and the
    infer kernel prints its score and where it wrote. Every other family goes through the same code in
    tests/test_backbones.py (extract -> heads -> predict); a third kernel run here added 10 s and no path."""
    work, cwd = tmp_path / "work", tmp_path / "cwd"
    cwd.mkdir()
    run_nb("train", tmp_path, cwd, work_dir=str(work), backbone="vegetation", head="composition", folds=2, epochs=3, tile=64,
           stride=64)
    run_nb("train", tmp_path, cwd, work_dir=str(work), backbone="test_vit", random_init=True, input_size=32, feature="cls+mean",
           views="none", head="mil", folds=2, epochs=3, tile=64, stride=64)
    runs = sorted(p.parent.name for p in Path(work, "runs").glob("*/metrics.json"))
    assert runs == ["test_vit_mil_smoothl1", "vegetation_composition_smoothl1"]
    for r in runs: assert json.loads(Path(work, "runs", r, "metrics.json").read_text())["n_images"] == 24
    nb = run_nb("infer", tmp_path, cwd, work_dir=str(work))
    assert list(cwd.iterdir()) == []
    out = work / "submission.csv"
    sub = pd.read_csv(out)
    assert sub.sample_id.tolist() == pd.read_csv(Path(work, "data", "sample_submission.csv")).sample_id.tolist()
    assert (sub.target >= 0).all()
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)   # papermill really parameterised it
    det = pd.read_csv(Path(work, "detail.csv"))                      # intervals and flags, shown as a table too
    assert len(det) == len(sub) and (det.lower <= det.prediction + 1e-9).all() and (det.prediction <= det.upper + 1e-9).all()
    assert any("ood_reason" in str(o.get("data", {}).get("text/html", "")) for c in nb.cells for o in c.get("outputs", []))
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "held-out weighted R2 on 4 labelled test images" in text and f"submission: {out}" in text
    streams = [o for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert len(streams) <= 1, [o["text"][:200] for o in streams]      # no progress-bar spam with progress off


def test_kernel_parameters_are_generated_from_the_configs():
    import nbformat
    from papermill import inspect_notebook               # what papermill --help-notebook lists
    from image2biomass.kaggle import KERNELS, kernel_parameters, kernel_fields
    for k in KERNELS:
        nb = nbformat.read(KERNELS_DIR / f"{k}.ipynb", as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert cell.source == kernel_parameters(k), f"nbs/kernels/{k}.ipynb: parameters cell drifted from the configs; run make book"
        params = inspect_notebook(str(KERNELS_DIR / f"{k}.ipynb"))
        assert list(params) == [n for n, *_ in kernel_fields(k)], (k, list(params))
        assert all(p["help"] and p["inferred_type_name"] != "None" for p in params.values()), k


def test_papermill_extract_writes_dataset_metadata(tmp_path):
    work = tmp_path / "w"
    run_nb("extract", tmp_path, work_dir=str(work), dataset_id="me/i2b-veg", splits="train")
    meta = json.loads((work / "features" / "dataset-metadata.json").read_text())
    assert meta["id"] == "me/i2b-veg" and len(list((work / "features").glob("train_vegetation_*.h5"))) == 1


@pytest.mark.slow
def test_finetune_kernel_and_parameters_checked_before_work(tmp_path):
    """The fine-tuning kernel runs on tiny data and prints what it used; a rerun is refused, naming overwrite=True;
    a bad parameter is refused before any extraction, named as the parameter (not the CLI flag)."""
    import papermill as pm
    work, p = tmp_path / "w", dict(backbone="test_vit", random_init=True, layout="full", input_size=32, epochs=1, folds=2,
                                   batch_size=4, workers=0)
    nb = run_nb("finetune", tmp_path, work_dir=str(work), **p)
    assert json.loads((work / "runs" / "test_vit_finetune" / "metrics.json").read_text())["n_images"] == 24
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert f"run: {work / 'runs' / 'test_vit_finetune'}" in text
    with pytest.raises(pm.PapermillExecutionError, match="set overwrite=True"): run_nb("finetune", tmp_path, work_dir=str(work), **p)
    # overwrite=True reaches FinetuneConfig.overwrite like every generated parameter (the refusal above names it); what
    # --overwrite replaces, and when, is the CLI's fault table (tests/test_faults.py), not a third fine-tuning run here
    with pytest.raises(pm.PapermillExecutionError) as e: run_nb("train", tmp_path, work_dir=str(tmp_path / "w2"), head="bogus")
    assert "head='bogus'" in str(e.value) and "--head" not in str(e.value)
    assert not (tmp_path / "w2" / "features").exists()                   # refused before extraction


@pytest.mark.slow
def test_kaggle_bundle_installs_offline(tmp_path):
    from conftest import cli
    out = tmp_path / "bundle"
    cli("kaggle-bundle", "--kernel", "infer", "--owner", "me", "--dataset-sources", "me/dinov2-weights", "me/my-runs",
        "--params", '{"tta": "d4"}', "--out", out, check=0, timeout=900)
    meta = json.loads((out / "kernel" / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["language"] == "python" and meta["kernel_type"] == "notebook"
    assert meta["dataset_sources"] == ["me/image2biomass-wheels", "me/dinov2-weights", "me/my-runs"]
    assert meta["competition_sources"] == ["csiro-biomass"] and meta["code_file"] == "image2biomass-infer.ipynb"
    nb = json.loads((out / "kernel" / meta["code_file"]).read_text())
    import nbformat
    nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))          # every cell has an id (nbformat 4.5)
    assert all(c.get("id") for c in nb["cells"])
    assert "pip install -q --no-index --find-links /kaggle/input/image2biomass-wheels image2biomass" in "".join(nb["cells"][0]["source"])
    assert "tta = 'd4'" in "".join(c for cell in nb["cells"] for c in cell["source"])
    assert json.loads((out / "wheelhouse" / "dataset-metadata.json").read_text())["id"] == "me/image2biomass-wheels"
    wheels = list((out / "wheelhouse").glob("image2biomass-*.whl"))
    assert len(wheels) == 1
    # a Kaggle-like environment: its own interpreter, the heavy dependencies preinstalled, no index
    env_dir = tmp_path / "kaggle-env"                 # no pip of its own (ensurepip: 3 s): this pip installs into it
    venv.EnvBuilder(with_pip=False).create(env_dir)
    site = next((env_dir / "lib").glob("python*/site-packages"))
    import torch
    pre = tmp_path / "preinstalled"            # the dependencies, without image2biomass itself
    pre.mkdir()
    for p in Path(torch.__file__).parents[1].iterdir():
        if not p.name.lower().startswith(("image2biomass", "__editable__")): (pre / p.name).symlink_to(p)
    (site / "preinstalled.pth").write_text(str(pre) + "\n")
    py = env_dir / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-index", "--find-links",
                        str(out / "wheelhouse"), "image2biomass"], capture_output=True, text=True)   # setuptools: preinstalled
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(env_dir / "bin" / "image2biomass"), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "predict" in r.stdout, r.stderr[-2000:]
    r = subprocess.run([str(py), "-c", "import image2biomass, sys; print(image2biomass.__file__)"], capture_output=True, text=True, cwd=tmp_path)
    assert str(env_dir) in r.stdout, r.stdout      # the bundled wheel, not the development checkout

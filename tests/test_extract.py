"Feature extraction as users run it: the CLI, crashes, bad images, several processes."
import os, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from conftest import cli, run, BIN
from image2biomass.store import FeatureStore
from image2biomass.files import partial_path

VIT = ["--backbone", "test_vit", "--random-init", "--feature", "cls+mean", "--input-size", "64", "--tile", "128",
       "--stride", "100", "--workers", "0", "--no-progress", "--dtype", "float32"]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from image2biomass.data import make_synthetic_dataset
    return make_synthetic_dataset(tmp_path_factory.mktemp("ex") / "data", n_train=24, n_test=2, size=(200, 400), seed=1, progress=False)


@pytest.fixture(scope="module")
def reference(ds, tmp_path_factory):
    "An uninterrupted single-process run (in this process: the runs compared to it start their own processes)."
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    run("extract", "--data-dir", ds, "--out", out, *VIT, "--views", "d4", check=0)
    return FeatureStore(out)


def same(a: FeatureStore, b: FeatureStore):
    assert a.image_ids == b.image_ids and a.complete and b.complete
    fa, fb = a.load_all(), b.load_all()
    assert np.array_equal(fa["offsets"], fb["offsets"]) and np.array_equal(fa["boxes"], fb["boxes"])
    assert np.array_equal(fa["features"], fb["features"])


@pytest.mark.slow
def test_kill9_then_resume_is_identical(ds, reference, tmp_path):
    out = tmp_path / "s.h5"
    exe = shutil.which("image2biomass", path=str(BIN))
    cmd = [exe, "extract", "--data-dir", str(ds), "--out", str(out), *VIT, "--views", "d4", "--commit-every", "1", "--batch-size", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = None
    t0 = time.time()
    while time.time() - t0 < 120:
        if partial_path(out).exists():
            try: s = FeatureStore(partial_path(out))   # read while it is being written
            except Exception: s = None
            if s is not None and 3 <= s.n_done < len(s):
                seen = (s.image_ids[0], s.bag(s.image_ids[0]).copy())
                break
        if proc.poll() is not None: break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert seen is not None, "extraction finished before it could be killed; make the test dataset larger"
    assert not out.exists(), "a store is under its name only once complete"
    s = FeatureStore(partial_path(out))
    assert not s.complete and s.n_done < len(s)
    r = cli(*cmd[1:], check=0)
    assert not partial_path(out).exists()
    same(FeatureStore(out), reference)
    assert np.array_equal(seen[1], FeatureStore(out).bag(seen[0]))


def test_bad_image_stops_then_skip(ds, tmp_path):
    d = Path(shutil.copytree(ds, tmp_path / "data"))
    from image2biomass.data import read_train
    ids = list(read_train(d / "train.csv").image_id)
    bad = d / "train" / f"{ids[10]}.jpg"
    bad.write_bytes(bad.read_bytes()[:2000])   # truncated: header fine, decoding fails
    out = tmp_path / "s.h5"
    args = ["extract", "--data-dir", d, "--out", out, "--tile", "128", "--stride", "100", "--workers", "0", "--no-progress", "--commit-every", "1"]
    r = run(*args, check=2)
    assert bad.name in r.stderr and "--on-error skip" in r.stderr and "keeps the 10 images" in r.stderr, r.stderr
    assert FeatureStore(partial_path(out)).n_done == 10
    run(*args, "--on-error", "skip", check=0)
    s = FeatureStore(out)
    assert s.complete and list(s.skipped) == [ids[10]] and bad.name in s.skipped[ids[10]]
    with pytest.raises(Exception, match="was skipped"): s.bag(ids[10])
    assert s.bag(ids[11]).shape == (8, 1, 44)
    # the store keeps the loop's figures for the run that finished it: it resumed at image 10 (14 images x 8 tiles)
    assert (s.timing["images"], s.timing["tiles"], s.timing["device"]) == (14, 112, "cpu") and s.timing["seconds"] > 0


@pytest.mark.slow
def test_torchrun_two_processes(ds, reference, tmp_path):
    out = tmp_path / "tr.h5"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "image2biomass.cli", "extract",
                        "--data-dir", str(ds), "--out", str(out), *VIT, "--views", "d4"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    same(FeatureStore(out), reference)
    assert not list(tmp_path.glob("*.shard*")), "shards are removed after the merge"
    before = out.stat().st_mtime_ns   # the same command again: recognised as done, nothing re-extracted (issue Q);
    # with progress on, so that it also says so (one torchrun less: each costs three processes importing torch)
    r = subprocess.run([a for a in r.args if a != "--no-progress"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "already complete (merged from 2 shards)" in r.stdout, r.stdout + r.stderr[-2000:]
    assert out.stat().st_mtime_ns == before and not list(tmp_path.glob("*.shard*")), "nothing extracted again"


def test_manual_shards_and_merge(ds, reference, tmp_path):
    out = tmp_path / "m.h5"
    for k in range(3): run("extract", "--data-dir", ds, "--out", out, *VIT, "--views", "d4", "--shard", f"{k}/3", check=0)
    shards = sorted(tmp_path.glob("m.shard*of3.h5"))
    assert len(shards) == 3
    r = run("merge-stores", *shards[:2], "--out", out, check=2)
    assert "need shards 0..2 of 3" in r.stderr
    run("merge-stores", *shards, "--out", out, check=0)
    same(FeatureStore(out), reference)


def test_refusals(ds, reference, tmp_path):
    r = run("extract", "--data-dir", ds, "--out", reference.path, *VIT, "--views", "flips", check=2)
    assert "views: store has 'd4', asked for 'flips'" in r.stderr and "--overwrite" in r.stderr
    before = reference.path.stat().st_mtime_ns
    r = run("extract", "--data-dir", ds, "--out", reference.path, *VIT, "--views", "d4", check=0)
    assert r.stdout == "" and reference.path.stat().st_mtime_ns == before       # a no-op, quiet with --no-progress
    r = run("extract", "--data-dir", ds, "--out", reference.path, *[a for a in VIT if a != "--no-progress"], "--views", "d4", check=0)
    assert "already complete" in r.stdout and reference.path.stat().st_mtime_ns == before
    env_free = {k: v for k, v in os.environ.items() if k != "IMAGE2BIOMASS_WEIGHTS"}
    r = subprocess.run([str(BIN / "image2biomass"), "extract", "--data-dir", str(ds), "--out", str(tmp_path / "x.h5"), "--backbone", "dinov2_small"],
                       capture_output=True, text=True, env={**env_free, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert r.returncode == 2 and "no weights found for backbone 'dinov2_small'" in r.stderr and "--weights" in r.stderr
    assert not (tmp_path / "x.h5").exists()


def test_weights_file_via_cli(ds, tmp_path):
    import timm, torch, safetensors.torch as st
    torch.manual_seed(1)
    m = timm.create_model("test_vit", num_classes=0, img_size=64)
    (tmp_path / "kaggle" / "test-vit").mkdir(parents=True)
    st.save_file(m.state_dict(), tmp_path / "kaggle" / "test-vit" / "model.safetensors")
    out = tmp_path / "w.h5"
    run("extract", "--data-dir", ds, "--out", out, "--backbone", "test_vit", "--weights", tmp_path / "kaggle", "--input-size", 64,
        "--layout", "full", "--workers", "0", "--no-progress", check=0)
    s = FeatureStore(out)
    from image2biomass.backbones import sha256_file
    assert s.fingerprint["weights"] == sha256_file(tmp_path / "kaggle" / "test-vit" / "model.safetensors")
    assert s.shape[0] == 24


def test_a_copy_keeping_size_and_mtime_is_read_again(tmp_path):
    """The stamp that skips a finished extraction holds inode and ctime too: a photo replaced by a copy with its
    size and mtime (`cp -p` of another photo of the same size) is extracted again, not taken as done."""
    from PIL import Image
    from image2biomass.data import make_synthetic_dataset, read_train
    from image2biomass.extract import extract
    d = make_synthetic_dataset(tmp_path / "data", n_train=6, n_test=1, size=(100, 200), seed=3, progress=False)
    photo = d / read_train(d / "train.csv").image_path[0]
    rng = np.random.default_rng(0)
    bmp = lambda: Image.fromarray(rng.integers(0, 255, (100, 200, 3), dtype=np.uint8)).save(tmp_path / "p.bmp")
    bmp(); shutil.copyfile(tmp_path / "p.bmp", photo)   # BMP bytes: the same size for any pixels of that shape
    st = os.stat(photo)
    kw = dict(data_dir=d, out=tmp_path / "s.h5", tile=64, stride=64, workers=0, progress=False)
    before = FeatureStore(extract(**kw)).load_all()["features"][0].copy()
    bmp(); shutil.copyfile(tmp_path / "p.bmp", tmp_path / "q")
    os.utime(tmp_path / "q", ns=(st.st_atime_ns, st.st_mtime_ns)); os.replace(tmp_path / "q", photo)
    assert os.stat(photo).st_size == st.st_size and os.stat(photo).st_mtime_ns == st.st_mtime_ns
    r = run("extract", "--data-dir", d, "--out", tmp_path / "s.h5", "--tile", 64, "--stride", 64, "--workers", 0,
            "--no-progress", "--overwrite", check=0)
    after = FeatureStore(tmp_path / "s.h5").load_all()["features"][0]
    assert not np.allclose(before, after), r.stdout

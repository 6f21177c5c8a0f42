"""The fault table of issue I: hostile and unlucky inputs against the `image2biomass` command, each with what must
happen. `tests/test_faults.py` asserts every case; `benchmarks/bench_faults.py` runs the table and counts outcomes
(clear errors, tracebacks, silent wrong results, lost data, security holes)."""
import contextlib, dataclasses, hashlib, io, json, os, resource, shutil, signal, subprocess, sys, traceback
from pathlib import Path
import numpy as np, pandas as pd

BIN = Path(sys.executable).parent
TARGETS = ["Dry_Clover_g", "Dry_Dead_g", "Dry_Green_g", "Dry_Total_g", "GDM_g"]


def invoke(args, proc=False, env=None, preexec=None, timeout=600):
    "(exit code, stdout, stderr) of the command, in this process or (proc=True) a new one."
    args = [str(a) for a in args]
    if proc:
        exe = shutil.which("image2biomass", path=str(BIN))
        r = subprocess.run([exe, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, preexec_fn=preexec, timeout=timeout)
        return r.returncode, r.stdout, r.stderr
    from image2biomass.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: code = main(args)
        except SystemExit as e: code = e.code if isinstance(e.code, int) else 2
        except BaseException: code = 1; err.write(traceback.format_exc())
    return code, out.getvalue(), err.getvalue()


def digest(paths) -> dict:
    "sha256 of every file under the given paths (to detect lost or damaged outputs)."
    out = {}
    for p in map(Path, paths):
        for f in ([p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else []):
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@dataclasses.dataclass
class Case:
    name: str
    kind: str  # data | option | store | run | security | output | kill
    make: object  # (world, tmp) -> dict(args=[...], protect=[paths], marker=path, proc=bool, env={}, preexec=fn)
    expect: str = "error"  # error | ok
    contains: tuple = ()  # substrings of stderr (error) or stdout (ok)
    check: object = None  # (world, tmp, stdout) -> None or the silent-wrong explanation


def classify(case: Case, world, tmp) -> tuple: # (outcome, detail)
    "clear error | ok | traceback | silent wrong | loss | hole."
    try: spec = case.make(world, tmp)
    except Skip as e: return "skipped", str(e)
    before = digest(spec.get("protect", []))
    try: code, out, err = invoke(spec["args"], spec.get("proc", False), spec.get("env"), spec.get("preexec"))
    finally:
        if spec.get("cleanup"): spec["cleanup"](tmp)
    if spec.get("marker") and Path(spec["marker"]).exists(): return "hole", f"payload ran: {spec['marker']}"
    if any(Path(p).exists() for p in spec.get("outside", [])): return "hole", f"wrote outside: {spec['outside']}"
    after = digest(spec.get("protect", []))
    if before != after: return "loss", f"changed or removed: {sorted(set(before.items()) ^ set(after.items()))[:2]}"
    if case.expect == "killed":
        return ("kept", "killed; the previous output is intact") if code == -signal.SIGKILL else ("unexpected", f"exit {code}: {err[-300:]}")
    if "Traceback" in err or code not in (0, 2): return "traceback", (err or out)[-600:]
    if case.expect == "error":
        if code == 0: return "silent wrong", f"exit 0, expected an error; stdout {out[-300:]}"
        lines = [l for l in err.strip().splitlines() if l.strip()]
        missing = [c for c in case.contains if c not in err]
        if missing: return "unclear error", f"{missing} not in: {err[-400:]}"
        if case.check is not None and (why := case.check(world, tmp, err)): return "loss", why
        return "clear error", lines[-1][:200]
    if code != 0: return "unexpected error", err[-400:]
    if missing := [c for c in case.contains if c not in out]: return "silent wrong", f"{missing} not in stdout: {out[-300:]}"
    if case.check is not None and (why := case.check(world, tmp, out)): return "silent wrong", why
    return "ok", out.strip().splitlines()[-1][:200] if out.strip() else ""


def make_world(root) -> dict:
    "The small project every case starts from: a dataset, a store, two heads runs, an ensemble, a good submission."
    from image2biomass.data import make_synthetic_dataset
    root = Path(root)
    ds = make_synthetic_dataset(root / "data", n_train=24, n_test=3, size=(100, 200), seed=5, progress=False)
    st = root / "features" / "veg.h5"
    for a in [["extract", "--data-dir", ds, "--out", st, "--tile", 64, "--stride", 50, "--workers", 0, "--no-progress"],
              *[["train-heads", "--store", st, "--data-dir", ds, "--head", h, "--folds", 3, "--epochs", 3, "--out", root / "runs" / h,
                 "--no-progress", "--no-ridge"] for h in ("mil", "composition")],
              ["ensemble", root / "runs" / "mil", root / "runs" / "composition", "--out", root / "runs" / "ens.json"],
              ["predict", "--ensemble", root / "runs" / "ens.json", "--data-dir", ds, "--out", root / "sub.csv", "--workers", 0, "--no-progress"]]:
        code, out, err = invoke(a)
        assert code == 0, err
    return dict(root=root, ds=ds, st=st, mil=root / "runs" / "mil", comp=root / "runs" / "composition", ens=root / "runs" / "ens.json",
                sub=root / "sub.csv")


def _data(w, tmp, fn=None) -> Path:
    "A copy of the dataset, its train.csv edited by fn(DataFrame of strings)."
    d = Path(shutil.copytree(w["ds"], tmp / "data"))
    if fn is not None:
        df = pd.read_csv(d / "train.csv", dtype=str, keep_default_na=False)
        fn(df).to_csv(d / "train.csv", index=False)
    return d

def _img(d, k=0, split="train") -> Path: return sorted((d / split).iterdir())[k]

def _bomb(path, w=20000, h=20000):
    "A PNG whose header claims w x h pixels but holds almost nothing: a lying decompression bomb."
    import struct, zlib
    def chunk(t, data): return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))

def _extract(d, out, *extra): return ["extract", "--data-dir", d, "--out", out, "--tile", 64, "--stride", 50, "--workers", 0, "--no-progress", *extra]

def _heads(w, out, *extra): return ["train-heads", "--store", w["st"], "--data-dir", w["ds"], "--out", out, "--folds", 3, "--epochs", 2, "--no-progress", "--no-ridge", *extra]

def _predict(w, out, *extra, runs=None): return ["predict", "--runs", *(runs or [w["mil"]]), "--data-dir", w["ds"], "--out", out, "--workers", 0, "--no-progress", *extra]

def _flip(path, offset):
    b = bytearray(Path(path).read_bytes()); b[offset] ^= 0xFF; Path(path).write_bytes(bytes(b))

def _feature_offset(store):
    import h5py
    with h5py.File(store, "r") as f: return f["features"].id.get_chunk_info(0).byte_offset + 11

def _copy_run(w, tmp, name="mil") -> Path: return Path(shutil.copytree(w[name], tmp / name))

def _store_copy(w, tmp) -> Path: return Path(shutil.copy(w["st"], tmp / "veg.h5"))

def _fsize_limit(n):
    def f():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return f


def _stale_folds(w, tmp, out):
    r = tmp / "r"
    return None if sorted(p.name for p in r.glob("fold*")) == ["fold0.safetensors", "fold1.safetensors"] else \
        f"stale folds left: {sorted(p.name for p in r.glob('fold*'))}"

def _na_ids(w, tmp, out):
    sub = pd.read_csv(tmp / "s.csv", keep_default_na=False)
    return None if {"NA__GDM_g", "null__GDM_g"} <= set(sub.sample_id) else f"ids lost: {sub.sample_id.tolist()[:6]}"

def _rename_test(d, new):
    "Rename the first test images to `new` ids (files, test.csv, sample_submission.csv)."
    t = pd.read_csv(d / "test.csv", dtype=str, keep_default_na=False)
    s = pd.read_csv(d / "sample_submission.csv", dtype=str, keep_default_na=False)
    for old, n in zip(t.image_path.str.split("/").str[1].str[:-4].unique(), new):
        (d / "test" / f"{old}.jpg").rename(d / "test" / f"{n}.jpg")
        for df in (t, s): df.replace({c: {f"{old}__{x}": f"{n}__{x}" for x in TARGETS} for c in ["sample_id"]}, inplace=True)
        t.image_path = t.image_path.replace(f"test/{old}.jpg", f"test/{n}.jpg")
    t.to_csv(d / "test.csv", index=False); s.to_csv(d / "sample_submission.csv", index=False)
    return d

def _evil_pickle(path, marker):
    import torch
    class Evil:
        def __reduce__(self): return (os.system, (f"touch {marker}",))
    torch.save({"cls_token": torch.zeros(1, 1, 8), "payload": Evil()}, path)

def _bad_spec(w, tmp, edit):
    spec = json.loads(Path(w["ens"]).read_text()); spec.update(edit(spec))
    p = w["ens"].parent / f"bad_{len(list(w['ens'].parent.glob('bad_*')))}.json"; p.write_text(json.dumps(spec)); return p


def _symlinked(w, t) -> Path:
    "A dataset copy whose first training image is a symlink to a file outside it."
    d = _data(w, t); img = _img(d)
    (t / "outside.jpg").write_bytes(img.read_bytes()); img.unlink(); os.symlink(t / "outside.jpg", img)
    return d

def _other_data(w, t) -> Path:
    from image2biomass.data import make_synthetic_dataset
    return make_synthetic_dataset(t / "other", n_train=12, n_test=1, size=(100, 200), seed=9, progress=False)

def _heads_folds(w, out, folds, *extra):
    return ["train-heads", "--store", w["st"], "--data-dir", w["ds"], "--out", out, "--folds", folds, "--epochs", 2,
            "--no-progress", "--no-ridge", *extra]

class Skip(Exception):
    "This case cannot be set up on this machine."

def _readonly(t) -> Path:
    "A folder nobody may write in: mode 555, and for root (whom modes do not stop) the immutable attribute."
    d = t / "ro"; d.mkdir(); d.chmod(0o555)
    if os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode != 0:
        raise Skip("running as root without chattr: no folder is read-only to this process")
    return d

def _unreadonly(t):
    if (t / "ro").exists(): subprocess.run(["chattr", "-i", str(t / "ro")], capture_output=True); (t / "ro").chmod(0o755)

def _spec(w, edit) -> Path:
    spec = json.loads(Path(w["ens"]).read_text()); spec.update(edit(spec))
    p = w["ens"].parent / f"edited_{len(list(w['ens'].parent.glob('edited_*')))}.json"
    p.write_text(json.dumps(spec)); return p

def _predict_spec(w, t, spec): return ["predict", "--ensemble", spec, "--data-dir", w["ds"], "--out", t / "s.csv", "--workers", 0, "--no-progress"]

def _tampered_backbone(w, t) -> Path:
    r = _copy_run(w, t); c = json.loads((r / "config.json").read_text())
    c["store_fingerprint"]["backbone"] = "../../../../escaped"; (r / "config.json").write_text(json.dumps(c)); return r

def _corrupt_cache(w, t) -> Path:
    r = _copy_run(w, t)
    code, _, err = invoke(_predict(w, t / "first.csv", runs=[r])); assert code == 0, err
    for st in (r / "features").glob("*.h5"): _flip(st, _feature_offset(st))
    return r

def _store_run(s, w, t): return ["train-heads", "--store", s, "--data-dir", w["ds"], "--out", t / "r", "--epochs", 1, "--folds", 3, "--no-progress"]


CASES = [
    # bad data
    Case("train.csv without a column", "data", lambda w, t: dict(args=["validate", _data(w, t, lambda d: d.drop(columns="State"))]), contains=("missing column",)),
    Case("unknown target name", "data", lambda w, t: dict(args=["validate", _data(w, t, lambda d: d.assign(target_name=["Dry_Weed_g"] + list(d.target_name[1:])))]), contains=("line 2",)),
    Case("NaN target", "data", lambda w, t: dict(args=["validate", _data(w, t, lambda d: d.assign(target=["nan"] + list(d.target[1:])))]), contains=("line 2",)),
    Case("negative target", "data", lambda w, t: dict(args=["validate", _data(w, t, lambda d: d.assign(target=["-1"] + list(d.target[1:])))]), contains=("negative",)),
    Case("bad date", "data", lambda w, t: dict(args=["validate", _data(w, t, lambda d: d.assign(Sampling_Date=["2015-13-45"] + list(d.Sampling_Date[1:])))]), contains=("Sampling_Date",)),
    Case("one date for five folds", "data", lambda w, t: dict(args=["folds", _data(w, t, lambda d: d.assign(Sampling_Date="2015/9/4")), "--out", t / "f.csv"]), contains=("one sampling date",)),
    Case("image missing", "data", lambda w, t: (d := _data(w, t), _img(d).unlink(), dict(args=_extract(d, t / "s.h5")))[-1], contains=("not found",)),
    Case("truncated image", "data", lambda w, t: (d := _data(w, t), _img(d).write_bytes(_img(d).read_bytes()[:500]), dict(args=_extract(d, t / "s.h5")))[-1], contains=("--on-error skip",)),
    Case("truncated image, --on-error skip", "data", lambda w, t: (d := _data(w, t), _img(d).write_bytes(_img(d).read_bytes()[:500]), dict(args=_extract(d, t / "s.h5", "--on-error", "skip")))[-1], expect="ok"),
    Case("text file named .jpg", "data", lambda w, t: (d := _data(w, t), _img(d).write_text("hello"), dict(args=_extract(d, t / "s.h5")))[-1], contains=("not a recognised image",)),
    Case("decompression bomb (lying header)", "data", lambda w, t: (d := _data(w, t), _bomb(_img(d)), dict(args=_extract(d, t / "s.h5")))[-1], contains=("decompression bomb",)),
    Case("decompression bomb, --on-error skip", "data", lambda w, t: (d := _data(w, t), _bomb(_img(d)), dict(args=_extract(d, t / "s.h5", "--on-error", "skip")))[-1], expect="ok"),
    Case("image path leaving the data folder", "data", lambda w, t: dict(args=["validate", _data(w, t, lambda d: d.assign(image_path=d.image_path.str.replace("train/", "train/../../outside/", n=1)))]), contains=("lead outside",)),
    Case("symlink out of the data folder", "data", lambda w, t: dict(args=_extract(_symlinked(w, t), t / "s.h5")), contains=("lead outside", "--allow-outside-paths")),
    Case("symlink, --allow-outside-paths", "data", lambda w, t: dict(args=_extract(_symlinked(w, t), t / "s.h5", "--allow-outside-paths")), expect="ok"),
    Case("test image ids 'NA' and 'null'", "data", lambda w, t: dict(args=["predict", "--runs", w["mil"], "--data-dir", _rename_test(_data(w, t), ["NA", "null"]), "--out", t / "s.csv", "--workers", 0, "--no-progress", "--features-dir", t / "f"]), expect="ok", check=_na_ids),
    # typos and impossible values
    Case("predict --split tset", "option", lambda w, t: dict(args=_predict(w, t / "s.csv", "--split", "tset")), contains=("invalid choice",)),
    Case("predict --postprocess clp", "option", lambda w, t: dict(args=_predict(w, t / "s.csv", "--postprocess", "clp")), contains=("invalid choice",)),
    Case("predict --tta d4 on a heads run", "option", lambda w, t: dict(args=_predict(w, t / "s.csv", "--tta", "d4")), contains=("applies to fine-tuned runs",)),
    Case("predict --state-threshold 2", "option", lambda w, t: dict(args=_predict(w, t / "s.csv", "--state-threshold", "2")), contains=("must be <= 1",)),
    Case("predict --postprocess clip with two runs", "option", lambda w, t: dict(args=_predict(w, t / "s.csv", "--postprocess", "clip", runs=[w["mil"], w["comp"]])), expect="ok"),
    Case("train-heads --device cuda without CUDA", "option", lambda w, t: dict(args=_heads(w, t / "r", "--device", "cuda")), contains=("no CUDA device",)),
    Case("train-heads --loss ziln with the density default", "option", lambda w, t: dict(args=_heads(w, t / "r", "--loss", "ziln")), contains=("--loss ziln with --head density",)),
    Case("train-heads --batch-size 0", "option", lambda w, t: dict(args=_heads(w, t / "r", "--batch-size", 0)), contains=("--batch-size 0",)),
    Case("train-heads --epochs 0", "option", lambda w, t: dict(args=_heads(w, t / "r", "--epochs", 0)), contains=("--epochs 0",)),
    Case("train-heads --pca -3", "option", lambda w, t: dict(args=_heads(w, t / "r", "--pca", "-3")), contains=("--pca -3",)),
    Case("train-heads --slices matching nothing", "option", lambda w, t: dict(args=_heads(w, t / "r", "--slices", "*/gem")), contains=("matches no slice",)),
    Case("extract --input-size -5", "option", lambda w, t: dict(args=_extract(w["ds"], t / "s.h5", "--input-size", "-5")), contains=("--input-size -5",)),
    Case("extract --workers -2", "option", lambda w, t: dict(args=_extract(w["ds"], t / "s.h5", "--workers", "-2")), contains=("--workers -2",)),
    Case("extract --stride > --tile", "option", lambda w, t: dict(args=_extract(w["ds"], t / "s.h5", "--stride", 90)), contains=("gaps",)),
    Case("extract --feature avg", "option", lambda w, t: dict(args=_extract(w["ds"], t / "s.h5", "--backbone", "test_vit", "--random-init", "--feature", "avg")), contains=("unknown feature kind",)),
    Case("train --unfreeze nonsense", "option", lambda w, t: dict(args=["train", "--data-dir", w["ds"], "--out", t / "ft", "--unfreeze", "x"]), contains=("--unfreeze 'x'",)),
    Case("train --lora-rank with --train-blocks", "option", lambda w, t: dict(args=["train", "--data-dir", w["ds"], "--out", t / "ft", "--lora-rank", 4, "--train-blocks", 2]), contains=("drop --train-blocks",)),
    # stores
    Case("a flipped byte in the features", "store", lambda w, t: (s := _store_copy(w, t), _flip(s, _feature_offset(s)), dict(args=_store_run(s, w, t)))[-1], contains=("corrupt", "veg.h5")),
    Case("damaged store metadata", "store", lambda w, t: (s := _store_copy(w, t), [_flip(s, o) for o in (600, 700, 900)], dict(args=_store_run(s, w, t)))[-1], contains=("veg.h5",)),
    Case("truncated store", "store", lambda w, t: (s := _store_copy(w, t), s.write_bytes(s.read_bytes()[:5000]), dict(args=_store_run(s, w, t)))[-1], contains=("veg.h5",)),
    Case("a store of other images", "store", lambda w, t: dict(args=["train-heads", "--store", w["st"], "--data-dir", _other_data(w, t), "--out", t / "r", "--no-progress"]), contains=("lacks",)),
    Case("a corrupt cached test store (rebuilt)", "store", lambda w, t: dict(args=_predict(w, t / "s.csv", runs=[_corrupt_cache(w, t)])), expect="ok"),
    # runs and specs
    Case("spec weights not summing to 1", "run", lambda w, t: dict(args=_predict_spec(w, t, _spec(w, lambda s: {"weights": {k: [0.9, 0.9] for k in s["weights"]}}))), contains=("summing to 1",)),
    Case("spec with absolute run paths", "run", lambda w, t: dict(args=_predict_spec(w, t, _spec(w, lambda s: {"runs": [str(w["mil"].resolve()), str(w["comp"].resolve())]}))), contains=("absolute path",)),
    Case("spec pointing outside the project", "run", lambda w, t: dict(args=_predict_spec(w, t, _spec(w, lambda s: {"runs": ["../../../../../etc", "composition"]}))), contains=("outside",)),
    Case("train-heads --overwrite with fewer folds", "run", lambda w, t: (invoke(_heads_folds(w, t / "r", 3)), dict(args=_heads_folds(w, t / "r", 2, "--overwrite")))[-1], expect="ok", check=_stale_folds),
    Case("ensemble of a run without oof.csv", "run", lambda w, t: (r := _copy_run(w, t), (r / "oof.csv").unlink(), dict(args=["ensemble", w["mil"], r, "--out", t / "e.json"]))[-1], contains=("no oof.csv",)),
    # security
    Case("run config naming a backbone path", "security", lambda w, t: dict(args=_predict(w, t / "s.csv", runs=[_tampered_backbone(w, t)]), outside=[t.parent / "escaped", t.parent.parent / "escaped"]), contains=("unknown backbone",)),
    Case("pickle planted as a resume file", "security", lambda w, t: ((t / "ft.partial").mkdir(), _evil_pickle(t / "ft.partial" / "fold0.last.pt", t / "pwned"), dict(args=["train", "--data-dir", w["ds"], "--out", t / "ft", "--resume", "--backbone", "test_vit", "--random-init"], marker=t / "pwned"))[-1], contains=("is a pickle",)),
    Case("pickle planted as weights", "security", lambda w, t: (_evil_pickle(t / "dinov2_vits14_pretrain.pth", t / "pwned"), dict(args=_extract(w["ds"], t / "s.h5", "--backbone", "auto", "--weights", t / "dinov2_vits14_pretrain.pth"), marker=t / "pwned"))[-1], contains=("refused",)),
    Case("pickle planted for train-ensemble", "security", lambda w, t: ((t / "ens" / "test_vit.partial").mkdir(parents=True), _evil_pickle(t / "ens" / "test_vit.partial" / "fold0.last.pt", t / "pwned"), dict(args=["train-ensemble", "test_vit", "--data-dir", w["ds"], "--out", t / "ens", "--random-init", "--no-progress"], marker=t / "pwned"))[-1], contains=("is a pickle",)),
    # outputs
    Case("submission exists, no --overwrite", "output", lambda w, t: (shutil.copy(w["sub"], t / "s.csv"), dict(args=_predict(w, t / "s.csv"), protect=[t / "s.csv"]))[-1], contains=("--overwrite",)),
    Case("output folder read-only", "output", lambda w, t: dict(args=_predict(w, _readonly(t) / "s.csv", "--features-dir", t / "f"), cleanup=_unreadonly), contains=("not writable",)),
    Case("output under a file", "output", lambda w, t: ((t / "afile").write_text("x"), dict(args=_predict(w, t / "afile" / "s.csv")))[-1], contains=("afile",)),
    Case("disk full while predicting over a good submission", "output", lambda w, t: (shutil.copy(w["sub"], t / "s.csv"), dict(args=_predict(w, t / "s.csv", "--overwrite", "--features-dir", t / "f"), protect=[t / "s.csv"], proc=True, preexec=_fsize_limit(300)))[-1], contains=("no space left",)),
    # kills
    Case("killed while writing a submission over a good one", "kill", lambda w, t: (shutil.copy(w["sub"], t / "s.csv"), dict(args=_predict(w, t / "s.csv", "--overwrite"), protect=[t / "s.csv"], proc=True, env={"IMAGE2BIOMASS_FAULT": "write:1"}))[-1], expect="killed"),
    Case("killed while an --overwrite run is written", "kill", lambda w, t: (r := _copy_run(w, t), dict(args=_heads(w, r, "--overwrite"), protect=[r], proc=True, env={"IMAGE2BIOMASS_FAULT": "write:3"}))[-1], expect="killed"),
    Case("killed while an ensemble spec is rewritten", "kill", lambda w, t: (shutil.copy(w["ens"], w["ens"].parent / "copy.json"), dict(args=["ensemble", w["mil"], w["comp"], "--out", w["ens"].parent / "copy.json", "--overwrite"], protect=[w["ens"].parent / "copy.json"], proc=True, env={"IMAGE2BIOMASS_FAULT": "write:1"}))[-1], expect="killed"),
]


# ---- issue M: round two (data losses, holes, silent results, tracebacks, misleading messages) ----
def _notes(t) -> Path:
    d = t / "notes"; d.mkdir(); (d / "notes.txt").write_text("my field notes"); return d

def _state(w, out, *extra, data=None):
    return ["state", "--store", w["st"], "--data-dir", data or w["ds"], "--out", out, "--folds", 3, "--no-progress", *extra]

def _pseudo_csv(t, path) -> Path:
    f = t / "pl.csv"
    pd.DataFrame({"image_id": ["X1"], "image_path": [path], **{k: [1.0] for k in TARGETS}}).to_csv(f, index=False)
    return f

def _external_store(w, t) -> Path:
    "A copy of the store whose `errors` dataset lives in a raw file outside it (HDF5 external storage)."
    import h5py
    raw = t / "outside.bin"; raw.write_bytes(b"\0" * 4096)
    s = t / "ext.h5"
    with h5py.File(w["st"], "r") as f, h5py.File(s, "w") as g:
        for k in f: f.copy(k, g)
        g.attrs.update(dict(f.attrs))
        n = len(g["errors"]); del g["errors"]
        g.create_dataset("errors", shape=(n,), dtype="S1", external=[(str(raw), 0, n)])
    return s

def _fold_edit(w, t, fn) -> Path:
    "A copy of the mil run with fold0.safetensors changed by fn(path)."
    r = _copy_run(w, t); fn(r / "fold0.safetensors"); return r

def _inf_weights(p):
    from image2biomass.files import load_tensors, save_tensors
    sd = load_tensors(p)[0]; k = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    sd[k] = sd[k].clone(); sd[k].view(-1)[0] = float("inf"); save_tensors(sd, p)   # a valid checksum, bad weights

def _flip_tail(p, n=64):
    b = bytearray(Path(p).read_bytes())
    for i in range(1, n + 1): b[-i * 7] ^= 0x55
    Path(p).write_bytes(bytes(b))

def _nan_store(w, t) -> Path:
    import h5py
    s = _store_copy(w, t)
    with h5py.File(s, "r+") as f: f["features"][...] = np.nan
    return s

def _changed_test_image(w, t) -> dict:
    "Predict once (the test features are cached), then give a test image other content under the same name."
    d = _data(w, t); fd = t / "f"
    code, _, err = invoke(_predict_d(w, d, t / "first.csv", "--features-dir", fd)); assert code == 0, err
    a, b = _img(d, 0, "test"), _img(d, 1, "test"); a.write_bytes(b.read_bytes())
    return dict(args=_predict_d(w, d, t / "second.csv", "--features-dir", fd))

_TINY_FT = ["--backbone", "test_vit", "--random-init", "--input-size", 32, "--layout", "full", "--batch-size", 4, "--workers", 0, "--no-progress"]

def _no_clover(df):
    df.loc[df.target_name == "Dry_Clover_g", "target"] = "0"; return df

def _strict_metrics(w, t, out):
    "metrics.json parses as strict JSON (no bare NaN), with the undefined R2 as null and a note."
    def refuse(c): raise ValueError(c)
    try: m = json.loads((t / "r" / "metrics.json").read_text(), parse_constant=refuse)
    except ValueError as e: return f"metrics.json is not strict JSON: {e}"
    return None if m["per_target_r2"]["Dry_Clover_g"] is None and m.get("notes") else f"Clover R2 {m['per_target_r2']}"

def _relabelled_ensemble(w, t) -> dict:
    "A copy of a run whose oof.csv holds other labels (x 1e9) for the same images and folds."
    r = _copy_run(w, t); oof = pd.read_csv(r / "oof.csv")
    for c in TARGETS: oof[c] = oof[c] * 1e9
    oof.to_csv(r / "oof.csv", index=False)
    return dict(args=["ensemble", w["mil"], r, "--out", t / "e.json"])

def _blank_test_row(w, t) -> dict:
    d = _data(w, t); lines = (d / "test.csv").read_text().splitlines()
    (d / "test.csv").write_text("\n".join([lines[0], lines[1], ",,", *lines[2:]]) + "\n")
    return dict(args=_predict_d(w, d, t / "s.csv"))

def _predict_d(w, d, out, *extra): return ["predict", "--runs", w["mil"], "--data-dir", d, "--out", out, "--workers", 0, "--no-progress", *extra]

def _changed_train_image(w, t) -> dict:
    d = _data(w, t)
    code, _, err = invoke(_extract(d, t / "s.h5")); assert code == 0, err
    _img(d, 0).write_bytes(_img(d, 1).read_bytes())
    return dict(args=_extract(d, t / "s.h5"))

def _readonly_run(w, t) -> dict:
    "A run folder nobody may write in, as runs attached under /kaggle/input are."
    r = _copy_run(w, t); shutil.rmtree(r / "features", ignore_errors=True); r.chmod(0o555)   # no test features yet
    if os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(r)], capture_output=True).returncode != 0:
        raise Skip("running as root without chattr: no folder is read-only to this process")
    undo = lambda t: (subprocess.run(["chattr", "-i", str(r)], capture_output=True), r.chmod(0o755))
    return dict(args=_predict(w, t / "s.csv", runs=[r]), cleanup=undo)

def _state_run(w, t) -> Path:
    code, _, err = invoke(_state(w, t / "st")); assert code == 0, err
    return t / "st"

def _stale_partial(w, t, out):
    return None if not list(t.glob("*.partial")) else f"left behind: {list(t.glob('*.partial'))}"


CASES += [
    # data losses: --overwrite replaces only what the tool made; no output is or holds an input
    Case("train-heads --out DATA --overwrite", "output", lambda w, t: (d := _data(w, t), dict(args=_heads(w, d, "--overwrite"), protect=[d]))[-1], contains=("not a run folder",)),
    Case("train-heads --out a folder of notes --overwrite", "output", lambda w, t: (d := _notes(t), dict(args=_heads(w, d, "--overwrite"), protect=[d]))[-1], contains=("not a run folder",)),
    Case("state --out notes and data --overwrite", "output", lambda w, t: (d := _notes(t), shutil.copy(w["ds"] / "train.csv", d), dict(args=_state(w, d, "--overwrite"), protect=[d]))[-1], contains=("not a run folder",)),
    Case("a run with the user's file in it, --overwrite", "output", lambda w, t: (r := _copy_run(w, t), (r / "mine.txt").write_text("x"), dict(args=_heads(w, r, "--overwrite"), protect=[r]))[-1], contains=("mine.txt",)),
    Case("folds --out DATA/train.csv --overwrite", "output", lambda w, t: (d := _data(w, t), dict(args=["folds", d, "--out", d / "train.csv", "--overwrite"], protect=[d]))[-1], contains=("the input",)),
    Case("extract --out DATA/train.csv --overwrite", "output", lambda w, t: (d := _data(w, t), dict(args=_extract(d, d / "train.csv", "--overwrite"), protect=[d]))[-1], contains=("the input",)),
    Case("extract --out a notes file --overwrite", "output", lambda w, t: ((t / "n.h5").write_text("notes"), dict(args=_extract(w["ds"], t / "n.h5", "--overwrite"), protect=[t / "n.h5"]))[-1], contains=("not a feature store",)),
    Case("predict --out DATA/test.csv --overwrite", "output", lambda w, t: (d := _data(w, t), dict(args=_predict_d(w, d, d / "test.csv", "--overwrite", "--features-dir", t / "f"), protect=[d]))[-1], contains=("the input",)),
    Case("ensemble --out RUN/config.json --overwrite", "output", lambda w, t: (r := _copy_run(w, t), dict(args=["ensemble", r, w["comp"], "--out", r / "config.json", "--overwrite"], protect=[r]))[-1], contains=("inside the run",)),
    # holes
    Case("pseudo-labels naming /etc/passwd", "security", lambda w, t: dict(args=["train", "--data-dir", w["ds"], "--out", t / "ft", "--backbone", "test_vit", "--random-init", "--epochs", 1, "--folds", 2, "--workers", 0, "--no-progress", "--pseudo-labels", _pseudo_csv(t, "/etc/passwd")]), contains=("lead outside",)),
    Case("pseudo-labels naming ../outside", "security", lambda w, t: ((t / "outside").mkdir(), shutil.copy(_img(w["ds"], 0, "test"), t / "outside" / "x.jpg"), dict(args=["train", "--data-dir", w["ds"], "--out", t / "ft", "--backbone", "test_vit", "--random-init", "--epochs", 1, "--folds", 2, "--workers", 0, "--no-progress", "--pseudo-labels", _pseudo_csv(t, os.path.relpath(t / "outside" / "x.jpg", w["ds"]))]))[-1], contains=("lead outside",)),
    Case("a store with HDF5 external storage", "security", lambda w, t: dict(args=_store_run(_external_store(w, t), w, t)), contains=("outside the file",)),
    # silently wrong
    Case("state on an unknown State", "data", lambda w, t: (d := _data(w, t, lambda d: d.assign(State=d.State.where(d.image_path != d.image_path.iloc[0], "Mars"))), dict(args=["state", "--store", w["st"], "--data-dir", d, "--out", t / "s", "--folds", 3, "--no-progress"]))[-1], contains=("Mars",)),
    Case("validate an empty State", "data", lambda w, t: dict(args=["validate", _data(w, t, lambda d: d.assign(State=d.State.where(d.image_path != d.image_path.iloc[0], "")))]), contains=("State empty",)),
    Case("validate a negative height", "data", lambda w, t: dict(args=["validate", _data(w, t, lambda d: d.assign(Height_Ave_cm=["-5"] + list(d.Height_Ave_cm[1:])))]), contains=("Height_Ave_cm",)),
    Case("a run missing fold1", "run", lambda w, t: (r := _copy_run(w, t), (r / "fold1.safetensors").unlink(), dict(args=_predict(w, t / "s.csv", runs=[r])))[-1], contains=("fold1.safetensors missing",)),
    Case("a checkpoint with inf weights", "run", lambda w, t: dict(args=_predict(w, t / "s.csv", runs=[_fold_edit(w, t, _inf_weights)])), contains=("not finite",)),
    Case("64 flipped bytes in a fold checkpoint", "run", lambda w, t: dict(args=_predict(w, t / "s.csv", runs=[_fold_edit(w, t, _flip_tail)])), contains=("checksum",)),
    Case("a test image changed under the same name", "data", _changed_test_image, expect="ok", contains=("changed since",)),
    Case("a training image changed, extract rerun", "data", _changed_train_image, expect="ok", contains=("changed since",)),
    Case("pseudo-label --tta d4 on a heads run", "option", lambda w, t: dict(args=["pseudo-label", "--runs", w["mil"], "--data-dir", w["ds"], "--out", t / "p", "--tta", "d4", "--no-progress"]), contains=("--tta d4",)),
    Case("pseudo-label --epochs 5 on a heads run", "option", lambda w, t: dict(args=["pseudo-label", "--runs", w["mil"], "--data-dir", w["ds"], "--out", t / "p", "--epochs", 5, "--no-progress"]), contains=("--epochs 5",)),
    Case("predict --maps on a mil run", "option", lambda w, t: dict(args=_predict(w, t / "s.csv", "--maps", t / "m")), contains=("density",)),
    Case("train-heads --pseudo-store without --pseudo-labels", "option", lambda w, t: dict(args=_heads(w, t / "r", "--pseudo-store", w["st"])), contains=("--pseudo-labels",)),
    Case("predict --weights on a vegetation run", "option", lambda w, t: dict(args=_predict(w, t / "s.csv", "--weights", t)), contains=("no weights",)),
    Case("train-heads --frofa-noise nan", "option", lambda w, t: dict(args=_heads(w, t / "r", "--frofa-noise", "nan")), contains=("finite",)),
    Case("synth --quality 500", "option", lambda w, t: dict(args=["synth", t / "s", "--quality", 500, "--no-progress"]), contains=("--quality 500",)),
    Case("synth --stamps 2", "option", lambda w, t: dict(args=["synth", t / "s", "--stamps", 2, "--no-progress"]), contains=("--stamps 2",)),
    Case("synth --workers -1", "option", lambda w, t: dict(args=["synth", t / "s", "--workers", -1, "--no-progress"]), contains=("--workers -1",)),
    # tracebacks
    Case("a truncated fold checkpoint", "run", lambda w, t: dict(args=_predict(w, t / "s.csv", runs=[_fold_edit(w, t, lambda p: p.write_bytes(p.read_bytes()[:300]))])), contains=("not a readable safetensors",)),
    Case("a truncated State checkpoint", "run", lambda w, t: (s := _state_run(w, t), (s / "state.safetensors").write_bytes((s / "state.safetensors").read_bytes()[:200]), dict(args=_predict(w, t / "s.csv", "--postprocess", "state-rules", "--state-run", s)))[-1], contains=("state.safetensors",)),
    Case("spec with runs [1, 2]", "run", lambda w, t: dict(args=_predict_spec(w, t, _spec(w, lambda s: {"runs": [1, 2]}))), contains=("field runs",)),
    Case("spec with weights 'abc'", "run", lambda w, t: dict(args=_predict_spec(w, t, _spec(w, lambda s: {"weights": "abc"}))), contains=("field weights",)),
    Case("predict --out an existing folder --overwrite", "output", lambda w, t: ((t / "dir").mkdir(), dict(args=_predict(w, t / "dir", "--overwrite")))[-1], contains=("is a folder",)),
    Case("folds --out an existing folder --overwrite", "output", lambda w, t: ((t / "dir").mkdir(), dict(args=["folds", w["ds"], "--out", t / "dir", "--overwrite"]))[-1], contains=("is a folder",)),
    Case("ensemble --out an existing folder --overwrite", "output", lambda w, t: ((t / "dir").mkdir(), dict(args=["ensemble", w["mil"], w["comp"], "--out", t / "dir", "--overwrite"]))[-1], contains=("is a folder",)),
    Case("garbage study.db", "run", lambda w, t: ((t / "sw").mkdir(), (t / "sw" / "study.db").write_bytes(b"not a database" * 100), dict(args=["sweep", "--store", w["st"], "--data-dir", w["ds"], "--out", t / "sw", "--trials", 1, "--no-progress"]))[-1], contains=("not a readable Optuna study",)),
    Case("a store of all-NaN features", "store", lambda w, t: dict(args=_store_run(_nan_store(w, t), w, t)), contains=("non-finite",)),
    # misleading messages
    Case("extract --tile 100000", "option", lambda w, t: dict(args=_extract(w["ds"], t / "s.h5", "--tile", 100000, "--stride", 100)), contains=("larger than every image",)),
    Case("predict on an unreadable test image", "data", lambda w, t: (d := _data(w, t), _img(d, 0, "test").write_text("x"), dict(args=_predict_d(w, d, t / "s.csv", "--features-dir", t / "f")))[-1], contains=("every image",)),
    Case("a read-only run folder (Kaggle input)", "output", _readonly_run, contains=("--features-dir",)),
    Case("--max-pixels above PIL's own cap", "option", lambda w, t: (d := _data(w, t), _bomb(_img(d), 15000, 15000), dict(args=_extract(d, t / "s.h5", "--max-pixels", 300_000_000)))[-1], contains=("is truncated",)),
    Case("train-heads --out .", "output", lambda w, t: dict(args=_heads(w, ".", "--overwrite")), contains=("name a run folder",)),
    Case("predict --out .", "output", lambda w, t: dict(args=_predict(w, ".", "--overwrite")), contains=("name a file",)),
    # (it also stands for "disk full while training heads over a run": the same command, which protected the old run)
    Case("train-heads disk full leaves no .partial", "output", lambda w, t: (r := _copy_run(w, t), dict(args=_heads(w, r, "--overwrite"), protect=[r], proc=True, preexec=_fsize_limit(20000)))[-1], contains=("no space left",), check=_stale_partial),
    # issue R §4: degenerate data, each class for every command it reaches
    Case("train-heads on all-zero targets", "data", lambda w, t: dict(args=["train-heads", "--store", w["st"], "--data-dir", _data(w, t, lambda df: df.assign(target="0")), "--out", t / "r", "--folds", 3, "--epochs", 1, "--no-progress"]), contains=("nothing to learn",)),
    Case("train on all-zero targets", "data", lambda w, t: dict(args=["train", "--data-dir", _data(w, t, lambda df: df.assign(target="0")), "--out", t / "r", "--folds", 3, "--epochs", 1, *_TINY_FT]), contains=("nothing to learn",)),
    Case("a constant Clover target: strict JSON, null R2", "data", lambda w, t: dict(args=["train-heads", "--store", w["st"], "--data-dir", _data(w, t, _no_clover), "--out", t / "r", "--folds", 3, "--epochs", 1, "--no-progress"]), expect="ok", check=_strict_metrics),
    Case("state on a train.csv of one State", "data", lambda w, t: dict(args=_state(w, t / "s", data=_data(w, t, lambda df: df.assign(State="Tas")))), contains=("one State",)),
    Case("ensemble of runs with other labels", "run", _relabelled_ensemble, contains=("other labels",)),
    Case("folds on 2 photos", "data", lambda w, t: dict(args=["folds", _data(w, t, lambda df: df[df.image_path.isin(sorted(set(df.image_path))[:2])]), "--out", t / "f.csv", "--folds", 2]), contains=("folds",)),
    Case("kaggle-bundle under a file-size limit", "output", lambda w, t: dict(args=["kaggle-bundle", "--out", t / "b"], proc=True, preexec=_fsize_limit(20000)), contains=("file size limit",)),
    Case("state on a store of all-NaN features", "store", lambda w, t: dict(args=["state", "--store", _nan_store(w, t), "--data-dir", w["ds"], "--out", t / "s", "--folds", 3, "--no-progress"]), contains=("non-finite",)),
    Case("an empty ,, row in test.csv", "data", _blank_test_row, contains=("empty (only commas)", "line 3")),
]

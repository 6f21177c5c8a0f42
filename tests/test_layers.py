"""The map of the house as a test: each module lives on a floor and imports (at module level or inside a function) only
from lower floors. A new module must be placed here; an upward import fails with the line that does it."""
import ast
from conftest import ROOT
from pathlib import Path

PKG = ROOT / "image2biomass"
FLOORS = [  # README "How the package is built" explains each floor
    ["__init__", "config"],                                           # 0 the options and their words: no imports
    ["files", "tiling", "clean", "backbones"],                        # 1 foundations: files, tiles, backbones
    ["data", "runtime", "runs", "store", "reference"],               # 2 data, devices, run folders, the HDF5 store
    ["extract", "losses", "intervals"],                               # 3 features; numbers on targets
    ["models"],                                                       # 4 heads
    ["train_heads"],                                                  # 5 cross-validated heads on cached features
    ["finetune", "state", "sweep"],                                   # 6 stages built on head training
    ["ensemble"],                                                     # 7 blends of runs
    ["inference"],                                                    # 8 predict
    ["pseudo", "demo", "kaggle", "cli"],                              # 9 what users run
]
FLOOR = {m: k for k, ms in enumerate(FLOORS) for m in ms}


def imports(module: str) -> list:
    "(line, imported package module) for every import of the package in `module`, lazy ones included."
    out = []
    for n in ast.walk(ast.parse((PKG / f"{module}.py").read_text())):
        if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module: out.append((n.lineno, n.module.split(".")[0]))
        elif isinstance(n, ast.ImportFrom) and n.module == "image2biomass":
            out += [(n.lineno, a.name) for a in n.names if (PKG / f"{a.name}.py").exists()]
        elif isinstance(n, ast.ImportFrom) and (n.module or "").startswith("image2biomass."):
            out.append((n.lineno, n.module.split(".")[1]))
        elif isinstance(n, ast.Import):
            out += [(n.lineno, a.name.split(".")[1]) for a in n.names if a.name.startswith("image2biomass.")]
    return [(line, m) for line, m in out if m != module]


def test_every_module_is_on_the_map():
    modules = {p.stem for p in PKG.glob("*.py") if p.stem != "_modidx"}
    assert modules == set(FLOOR), f"not on the map: {sorted(modules - set(FLOOR))}; gone: {sorted(set(FLOOR) - modules)}"


def test_imports_only_go_down():
    up = [f"image2biomass/{m}.py:{line} imports {d} (floor {FLOOR[d]}) from floor {FLOOR[m]}"
          for m in FLOOR for line, d in imports(m) if FLOOR[d] >= FLOOR[m]]
    assert not up, "\n".join(up)


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    "The test above would fail: a planted upward import is found."
    fake = tmp_path / "image2biomass"; fake.mkdir()
    (fake / "data.py").write_text("def f():\n    from image2biomass.inference import predict\n")
    monkeypatch.setattr(__import__(__name__), "PKG", fake)
    assert imports("data") == [(2, "inference")] and FLOOR["inference"] > FLOOR["data"]


LONG_LINES_LEFT = 0   # issue O: no package line over 120 characters; keep it so


def test_no_new_long_lines():
    "Package lines stay within 120 characters (module docstrings and __all__ are written by nbdev); a ratchet."
    long = [f"{p.name}:{i}" for p in sorted(PKG.glob("*.py")) if p.stem != "_modidx"
            for i, l in enumerate(p.read_text().splitlines(), 1)
            if len(l) > 120 and not l.startswith(('"""', "__all__", "# %%"))]
    assert len(long) <= LONG_LINES_LEFT, f"{len(long)} lines over 120 characters (at most {LONG_LINES_LEFT}): {long}"


def long_functions(pkg=PKG, limit=40) -> set:
    "module.function of every package function over `limit` lines (def to last line, nested ones counted apart)."
    import ast
    return {f"{p.stem}.{n.name}" for p in sorted(pkg.glob("*.py")) if p.stem != "_modidx"
            for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit}


def test_no_long_functions(tmp_path):
    "Issue V item 3: every package function is at most 40 lines; the check sees a planted long one."
    assert not long_functions(), f"functions over 40 lines: {sorted(long_functions())}; split them at their seams"
    (tmp_path / "planted.py").write_text("def f():\n" + "    x = 1\n" * 41)
    assert long_functions(tmp_path) == {"planted.f"}


STAGE_CONFIGS = [("extract", "ExtractConfig"), ("train_heads", "TrainConfig"), ("finetune", "FinetuneConfig"),
                 ("inference", "PredictConfig"), ("pseudo", "PseudoConfig"), ("state", "StateConfig"),
                 ("sweep", "SweepConfig")]


def test_stage_configs_are_built_from_groups():
    """Issue O item 2: options several stages share are declared once, in a group (config.ImageOptions, ...), and a
    stage declares at most 25 options itself; a stage that redeclares a group's option changes its default or
    choices (else it should not redeclare it), and no two groups declare one option."""
    import dataclasses, importlib
    from image2biomass import config
    groups = [c for c in vars(config).values() if isinstance(c, type) and c.__name__.endswith("Options")]
    declared = {}
    for g in groups:
        for n in vars(g).get("__annotations__", {}):
            if n != "bounds": declared.setdefault(n, []).append(g.__name__)
    assert all(len(v) == 1 for v in declared.values()), {k: v for k, v in declared.items() if len(v) > 1}
    own = {}
    for module, name in STAGE_CONFIGS:
        cls = getattr(importlib.import_module(f"image2biomass.{module}"), name)
        own[name] = [n for n in vars(cls)["__annotations__"] if n != "bounds"]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for g in cls.__mro__[1:]:
            if g.__name__ not in {x.__name__ for x in groups}: continue
            gf = {f.name: f for f in dataclasses.fields(g)}
            for n in set(own[name]) & set(gf):
                same = fields[n].default == gf[n].default and cls.__annotations__[n] == g.__annotations__.get(n)
                assert not same, f"{name}.{n} redeclares {g.__name__}.{n} unchanged"
    assert max(map(len, own.values())) <= 25, {k: len(v) for k, v in own.items()}
    assert {"ImageOptions", "LayoutOptions", "BackboneOptions"} <= {c.__name__ for c in
                                                                    importlib.import_module("image2biomass.extract").ExtractConfig.__mro__}


CHOICES = ["Head", "Loss", "Layout", "Views"]   # config's Literal aliases: each list of choices is written once


def test_choices_are_written_once():
    """Issue O item 2: a list of choices (heads, losses, layouts, views) is spelled out only in config; every stage
    option that takes one uses the alias, and a device or comma-separated list is checked by its `Form`."""
    import importlib, re
    from typing import get_args
    from image2biomass import config
    spelled = {a: "Literal[" + ", ".join(map(repr, get_args(getattr(config, a)))).replace("'", '"') for a in CHOICES}
    again = [f"{p.name}: {a}" for p in PKG.glob("*.py") if p.stem not in ("config", "_modidx")
             for a, s in spelled.items() if s[:-1] in p.read_text()]
    assert not again, f"choices restated outside config: {again}"
    for module, name in STAGE_CONFIGS:
        cls = getattr(importlib.import_module(f"image2biomass.{module}"), name)
        for bad in [dict(device="gpu"), dict(device="cuda:x"), dict(heads="mlp,foo"), dict(losses="ziln,")]:
            k = next(iter(bad))
            if k not in {f.name for f in __import__("dataclasses").fields(cls)}: continue
            try: cls(**bad)
            except config.ConfigError as e: assert re.match(f"--{k} ", str(e)), e
            else: raise AssertionError(f"{name}({bad}) accepted")


def _declared() -> set:
    "Distribution names the package declares (dependencies and extras), normalised."
    import re, tomllib
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = proj["dependencies"] + [r for extra in proj["optional-dependencies"].values() for r in extra]
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def _imported(pkg_dir) -> set:
    "Top-level modules the package's files import (absolute imports, anywhere in a file)."
    import ast
    mods = set()
    for f in Path(pkg_dir).glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import): mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return mods


def undeclared(pkg_dir, declared) -> list:
    """Imported third-party modules whose distribution is not declared (issue V item 5: cv2 arrived only through
    albumentations)."""
    import sys
    from importlib.metadata import packages_distributions
    dists = packages_distributions()
    third = [m for m in _imported(pkg_dir) if m not in sys.stdlib_module_names and m != "image2biomass"]
    return sorted(m for m in third if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & declared)


def test_every_imported_package_is_declared():
    assert undeclared(ROOT / "image2biomass", _declared()) == []
    assert undeclared(ROOT / "image2biomass", _declared() - {"opencv-python-headless"}) == ["cv2"]   # the check sees it

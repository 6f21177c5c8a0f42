"Issue I: every case of the fault table ends as it must: a clear one-line error, or a correct result; nothing lost."
import os, tempfile
from pathlib import Path
import pytest
from faults import CASES, make_world, classify

GOOD = {"error": "clear error", "ok": "ok", "killed": "kept"}


@pytest.fixture(scope="module")
def world():
    root = Path(tempfile.mkdtemp(prefix="i2b-faults-")); root.chmod(0o755)   # readable by the unprivileged case
    return make_world(root)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case, world):
    tmp = Path(tempfile.mkdtemp(dir=world["root"])); tmp.chmod(0o755)
    outcome, detail = classify(case, world, tmp)
    if outcome == "skipped": pytest.skip(detail)
    assert outcome == GOOD[case.expect], f"{case.name}: {outcome}: {detail}"

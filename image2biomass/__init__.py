__version__ = "0.1.0"

import os as _os, sys as _sys
# Idle OpenMP threads sleep instead of spinning: with a second busy process (a Jupyter kernel, a DataLoader worker)
# spinning threads steal the cores (see nbs/00d_runtime.ipynb, "Threads"). Only effective before torch is imported.
if "torch" not in _sys.modules: _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""Root conftest: one torch thread everywhere, and the shared platform fixtures."""

import os

# On 2 cores shared with worker subprocesses, torch's default thread pool oversubscribes
# the machine badly (measured 10-30x slower steps); subprocesses inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

pytest_plugins = ["tests.platform_fixtures"]

import tempfile
from pathlib import Path

import pytest

from gatehouse_harness import Gateway


@pytest.fixture(scope="session")
def gateway():
    with tempfile.TemporaryDirectory(prefix="gatehouse-e2e-") as tmp:
        # The suite's own negative tests (wrong keys, wrong codes) all come
        # from 127.0.0.1; exempt it from per-source penalties so they cannot
        # lock the shared daemon. test_hardening.py tests penalties from
        # 127.0.0.2 on daemons of its own.
        gw = Gateway(Path(tmp) / "state", config={"perSourcePenaltyExempt": "127.0.0.1"}).start()
        try:
            yield gw
        finally:
            gw.stop()

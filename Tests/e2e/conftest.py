import tempfile
from pathlib import Path

import pytest

from gatehouse_harness import Gateway


@pytest.fixture(scope="session")
def gateway():
    with tempfile.TemporaryDirectory(prefix="gatehouse-e2e-") as tmp:
        gw = Gateway(Path(tmp) / "state").start()
        try:
            yield gw
        finally:
            gw.stop()

import pytest

from tests.core.interfaces import AlarmInterface, EchoInterface


@pytest.fixture(autouse=True)
def _reset_interface_logs():
    EchoInterface.log = []
    AlarmInterface.fired = []
    yield


# TEMPORARY until tests/conftest.py lands
import asyncio as _asyncio

from simsi.host.runtime import AsyncioRuntime as _AR


class _H:
    def __init__(self):
        self.runtime = None

    def run(self, body):
        async def main():
            self.runtime = _AR(0)
            return await body(self.runtime)

        return _asyncio.run(main())


@pytest.fixture
def runtime_harness():
    return _H()

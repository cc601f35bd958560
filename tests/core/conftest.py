import pytest

from tests.core.interfaces import AlarmInterface, EchoInterface


@pytest.fixture(autouse=True)
def _reset_interface_logs():
    EchoInterface.log = []
    AlarmInterface.fired = []
    yield

"""One sandbox per test module (sized by the module's EVENTS and END), and no fault left behind."""

import pytest
import requests

from sandbox.process import run_sandbox


@pytest.fixture(scope="module")
def sandbox(request, tmp_path_factory):
    module = request.module
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=module.EVENTS, end=module.END) as handle:
        yield handle


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture(autouse=True)
def _no_faults_left(request):
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").clear_faults()

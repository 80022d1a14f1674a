"""kinedge interop suite: drives the real binary with boto3 / raw HTTP on 127.0.0.1.

    pip install -r tests/interop/requirements.txt
    python -m pytest tests/interop -q          # from the repo root

KINEDGE_BIN picks the binary (default target/debug/kinedge, relative to the repo root).
Each gateway writes its config and log under pytest's tmp dir; a failing test's report carries
the tail of every live gateway's log.
"""
import atexit

import pytest

import kutil
from kutil import GatewayFactory

atexit.register(kutil.kill_all_leftovers)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when in ("setup", "call") and rep.failed:
        for gw in list(kutil.LIVE_GATEWAYS):
            rep.sections.append((f"kinedge log [{gw.name}] {gw.log_path}", gw.log_tail(120)))


@pytest.fixture
def gateway_factory(tmp_path):
    """Function-scoped: gateway_factory(extra_config="", env=None, credentials=False) -> Gateway."""
    f = GatewayFactory(lambda name: tmp_path / name)
    yield f
    f.close()


@pytest.fixture(scope="module")
def module_gateway_factory(tmp_path_factory):
    f = GatewayFactory(lambda name: tmp_path_factory.mktemp(name))
    yield f
    f.close()


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    """A plain gateway (no credentials, no configured streams) shared by a test module."""
    return module_gateway_factory(name="shared")


@pytest.fixture(scope="module")
def client(gw):
    return gw.client()


@pytest.fixture(scope="module")
def raw_client(gw):
    """boto3 without client-side parameter validation, for inputs botocore would refuse."""
    return gw.client(validate=False)


# ---- delivery streams (issue 4) -------------------------------------------------------------
@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """moto's server (S3, Kinesis, Firehose) on a loopback port, shared by the whole session;
    tests use their own bucket / stream names."""
    from motoutil import MotoServer
    m = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield m
    m.stop()


@pytest.fixture
def receiver():
    """receiver(**kw) -> a started FirehoseReceiver (see firehose_receiver.py); all are
    stopped at the end of the test."""
    from firehose_receiver import FirehoseReceiver
    made = []

    def make(**kw):
        rx = FirehoseReceiver(**kw)
        made.append(rx)
        return rx

    yield make
    for rx in made:
        rx.close()

"""Fixtures for the SDK conformance tests: a `lifeboat sim --tls` process per
test module, Microsoft's msal for the token and Microsoft's msgraph-sdk as the
client, unchanged except for the base URL (and trusting the simulator's
self-signed certificate)."""

import asyncio
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import msal
import pytest
import requests
from azure.core.credentials import AccessToken
from kiota_abstractions.serialization import AdditionalDataHolder
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory

ROOT = Path(__file__).resolve().parents[3]
SCOPE = "https://graph.microsoft.com/.default"


def lifeboat_bin() -> str:
    explicit = os.environ.get("LIFEBOAT_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(Path(target) / "debug" / "lifeboat")


class Sim:
    """A running simulator and what a client needs to reach it."""

    def __init__(self, tmp: Path, users: int, seed: int):
        self.ca_file = str(tmp / "sim-ca.pem")
        self.proc = subprocess.Popen(
            [lifeboat_bin(), "sim", "--listen", "127.0.0.1:0", "--tls", "--cert-out", self.ca_file,
             "--users", str(users), "--seed", str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        fields = {}
        deadline = time.time() + 30
        while time.time() < deadline and "certificate" not in fields:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.match(r"^graph-sim listening on (\S+)", line)
            if m:
                fields["url"] = m.group(1)
            m = re.match(r"^([a-z ]+):\s+(\S+)", line)
            if m:
                fields[m.group(1).strip()] = m.group(2)
        if "url" not in fields or "certificate" not in fields:
            self.proc.kill()
            raise RuntimeError(f"simulator did not start: {fields}")
        self.url = fields["url"]
        self.graph_url = self.url + "/v1.0"
        self.tenant_id = fields["tenant id"]
        self.client_id = fields["client id"]
        self.client_secret = fields["client secret"]
        self.msal = self.msal_app(self.client_secret)
        self._http = httpx.Client(verify=self.ca_file, timeout=60)

    def msal_app(self, secret: str) -> msal.ConfidentialClientApplication:
        # requests lets REQUESTS_CA_BUNDLE override a session's `verify`; a
        # session that ignores the environment trusts exactly our CA.
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_file
        return msal.ConfidentialClientApplication(
            self.client_id,
            client_credential=secret,
            authority=f"{self.url}/{self.tenant_id}",
            instance_discovery=False,
            http_client=session,
        )

    def token(self) -> dict:
        result = self.msal.acquire_token_for_client(scopes=[SCOPE])
        if "access_token" not in result:
            raise RuntimeError(f"no token: {result}")
        return result

    def control(self, method: str, path: str, json=None):
        r = self._http.request(method, self.url + path, json=json if json is not None else {})
        r.raise_for_status()
        return r.json() if r.content else None

    def raw(self, method: str, path_or_url: str, **kwargs) -> httpx.Response:
        url = path_or_url if path_or_url.startswith("http") else self.graph_url + path_or_url
        headers = dict(kwargs.pop("headers", {}) or {})
        headers["Authorization"] = "Bearer " + self.token()["access_token"]
        return self._http.request(method, url, headers=headers, **kwargs)

    def close(self):
        self._http.close()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class MsalCredential:
    """An azure-core style async credential backed by msal's client-credentials flow."""

    def __init__(self, sim: Sim):
        self.sim = sim

    async def get_token(self, *scopes, **kwargs) -> AccessToken:
        result = self.sim.token()
        return AccessToken(result["access_token"], int(time.time()) + int(result.get("expires_in", 3599)))

    async def close(self):
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *args):
        pass


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = Sim(tmp_path_factory.mktemp("sim"), users=int(os.environ.get("SIM_USERS", "30")), seed=7)
    yield s
    s.close()


@pytest.fixture(scope="module")
def run():
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()


@pytest.fixture(scope="module")
def graph(sim, run):
    auth = AzureIdentityAuthenticationProvider(
        MsalCredential(sim), scopes=[SCOPE], allowed_hosts=["127.0.0.1", "localhost"]
    )
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=sim.ca_file, timeout=120)
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = sim.graph_url
    client = GraphServiceClient(request_adapter=adapter)
    yield client


def assert_known(model, path="$"):
    """Fails if the SDK found properties it does not know (they land in
    `additional_data`): our JSON must use Graph's real property names."""
    if model is None or isinstance(model, (str, int, float, bool, bytes)):
        return
    if isinstance(model, (list, tuple)):
        for i, m in enumerate(model):
            assert_known(m, f"{path}[{i}]")
        return
    if isinstance(model, AdditionalDataHolder) or hasattr(model, "additional_data"):
        extra = {k: v for k, v in (getattr(model, "additional_data", None) or {}).items() if not k.startswith("@")}
        assert not extra, f"{path} ({type(model).__name__}) has properties the SDK does not know: {sorted(extra)}"
    if hasattr(model, "__dataclass_fields__"):
        for name in model.__dataclass_fields__:
            if name in ("additional_data", "backing_store"):
                continue
            value = getattr(model, name, None)
            if hasattr(value, "__dataclass_fields__") or isinstance(value, (list, tuple)):
                assert_known(value, f"{path}.{name}")

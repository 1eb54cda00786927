"""The run manifest: dataset hashes, versions, hardware, and an endpoint without credentials."""

import hashlib
import json

import pytest

from raypipe.eval.manifest import public_endpoint, run_manifest, write_manifest

pytestmark = pytest.mark.unit


def test_manifest_hashes_datasets_and_records_the_run(tmp_path):
    data = tmp_path / "items.jsonl"
    data.write_text('{"id": "a"}\n', encoding="utf-8")
    m = run_manifest(kind="bfcl", datasets=[str(tmp_path)], scorer="v1", template={"name": "tools-dt"},
                     system_prompt="be brief", model="tiny", endpoint="http://u:pw@127.0.0.1:9/v1?key=sk-1",
                     sampling={"temperature": 0.0}, seeds=[0, 1])
    (entry,) = m["datasets"]
    assert entry["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest() and entry["bytes"] == 12
    assert m["endpoint"] == "http://127.0.0.1:9/v1"
    assert m["system_prompt_sha256"] == hashlib.sha256(b"be brief").hexdigest()
    assert m["versions"]["python"] and "ray" in m["versions"] and m["hardware"]["cpu_count"]
    path = write_manifest(str(tmp_path / "out"), m)
    assert json.loads(open(path, encoding="utf-8").read())["seeds"] == [0, 1]


@pytest.mark.parametrize("url,expected", [
    ("https://api.example.com/v1", "https://api.example.com/v1"),
    ("https://user:sk-secret@api.example.com:8443/v1?api-key=sk-secret#x", "https://api.example.com:8443/v1"),
    (None, None),
])
def test_public_endpoint_drops_credentials(url, expected):
    assert public_endpoint(url) == expected

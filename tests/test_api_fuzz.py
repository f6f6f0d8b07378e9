"""A schema-driven fuzz run: random requests built from the app's own OpenAPI document must never
get a 500 (or anything but a JSON error body on failure)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_api import Api, make_api

# Values of every JSON type, including the awkward ones (huge numbers, control characters, nesting).
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
                         st.sampled_from(["2026-12-01", "2026/12/1", "13800138000", "+8613800138000",
                                          "own", "租赁", "zh-CN", "", " ", "\x00", "9999-12-31", "0000-00-00"]))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
PATH_TEXT = st.one_of(st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and s not in (".", "..")),
                      st.sampled_from(["E1", "import", "%00", "E1%2F..", "工号1"]))


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from worker.store.db import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    upgrade(url)
    api = make_api(url, api_rate_per_minute=10**9, api_burst=10**9)
    api.client.post("/v1/holders", json={"external_id": "E1", "phone": "13800138000", "expires_on": "2027-01-20"},
                    headers=api.a)
    yield api
    api.runtime.engine.dispose()


def operations(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    doc = api.client.get("/openapi.json").json()
    return [(method.upper(), path, op) for path, item in doc["paths"].items() for method, op in item.items()]


def body_properties(doc_op: dict[str, Any], components: dict[str, Any]) -> list[str]:
    schema = doc_op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    target = components.get(ref.rsplit("/", 1)[-1], {}) if ref else schema
    return sorted(target.get("properties", {}))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_request_built_from_the_schema_gets_a_500(fuzz_api: Api, data: st.DataObject) -> None:
    api = fuzz_api
    doc = api.client.get("/openapi.json").json()
    method, path, op = data.draw(st.sampled_from(operations(api)))
    url = path
    for name in [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]:
        url = url.replace("{" + name + "}", quote(data.draw(PATH_TEXT), safe=""))  # as a client would send it
    query_names = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
    query = data.draw(st.dictionaries(st.sampled_from(query_names or ["x"]), st.text(max_size=12), max_size=3))
    props = body_properties(op, doc.get("components", {}).get("schemas", {}))
    body = data.draw(st.one_of(
        st.dictionaries(st.sampled_from(props or ["x"]), JSON_VALUES, max_size=len(props) + 1),
        JSON_VALUES))
    headers = data.draw(st.sampled_from([api.a, api.b, {}, {"Authorization": "Bearer x"}]))
    if path == "/v1/holders/import":
        content = data.draw(st.binary(max_size=300))
        name = data.draw(st.sampled_from(["r.csv", "r.xlsx", "r.xls", "", "r"]))
        response = api.client.post(url, params=query, files={"file": (name, content)}, headers=headers)
    else:
        response = api.client.request(method, url, params=query, json=body, headers=headers)
    assert response.status_code < 500, (method, url, query, body, response.text)
    if response.status_code >= 400:
        assert "errors" in response.json()

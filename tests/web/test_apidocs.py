"""``/docs``: Swagger UI from the installed package, over a valid OpenAPI 3.0 document."""

from __future__ import annotations

from openapi_spec_validator import OpenAPIV30SpecValidator
from starlette.testclient import TestClient

from qortex.web.apidocs import as_openapi_30


def test_the_docs_document_is_valid_openapi_30_and_says_the_same(client: TestClient) -> None:
    original = client.get("/openapi.json").json()
    converted = client.get("/docs/openapi.json", headers={"x-api-key": ""}).json()
    assert converted["openapi"] == "3.0.3"
    OpenAPIV30SpecValidator(converted).validate()
    assert set(converted["paths"]) == set(original["paths"])
    assert set(converted["components"]["schemas"]) == set(original["components"]["schemas"])


def test_31_spellings_become_30_ones() -> None:
    doc = {
        "openapi": "3.1.0",
        "a": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "b": {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]},
        "c": {"const": "accepted", "contentMediaType": "application/json"},
        "d": {"type": ["string", "null"]},
        "e": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}],
        "f": {"type": "number", "exclusiveMinimum": 0, "required": []},
    }
    assert as_openapi_30(doc) == {
        "openapi": "3.0.3",
        "a": {"nullable": True, "type": "number"},
        "b": {"nullable": True, "anyOf": [{"$ref": "#/x"}]},
        "c": {"enum": ["accepted"]},
        "d": {"type": "string", "nullable": True},
        "e": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}],
        "f": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
    }


def test_the_page_and_swagger_ui_files_are_served_from_here(client: TestClient) -> None:
    anonymous = {"x-api-key": ""}
    page = client.get("/docs", headers=anonymous)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "docs/static/swagger-ui-bundle.js" in page.text
    assert "//" not in page.text.replace("<!--", "").split("<body>")[0].replace("://", "")
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        asset = client.get(f"/docs/static/{name}", headers=anonymous)
        assert asset.status_code == 200 and len(asset.content) > 10_000, name
    assert client.get("/docs/static/nope.js", headers=anonymous).status_code == 404
    script = client.get("/static/docs.js", headers=anonymous).text
    assert "validatorUrl: null" in script  # no document sent to an online validator

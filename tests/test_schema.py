"""The OpenAPI schema validates, documents both compatibility surfaces and the error envelope."""

import pytest
import yaml
from django.core.management import call_command


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("schema") / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def test_schema_lists_the_arrivy_and_travtus_routes(schema):
    paths = schema["paths"]
    assert {"put", "post"} <= set(paths["/api/express/tasks/upsert/{external_id}"])
    assert {"post", "patch"} <= set(paths["/api/task/"])
    assert "post" in paths["/api/express/tasks/{external_id}/status/new"]


def test_every_operation_documents_the_error_envelope(schema):
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in schema["paths"].items():
        if path.endswith("/oauth2/token"):
            continue
        for method, operation in operations.items():
            response = operation["responses"]["401"]["content"]["application/json"]["schema"]
            assert response == envelope, f"{method} {path}"


def test_bearer_scheme_is_declared(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer thk_...`",
    }


@pytest.mark.django_db
def test_schema_is_served_without_a_token(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200


def test_the_compatibility_routes_carry_request_and_response_examples(schema):
    create = schema["paths"]["/api/task/"]["post"]
    request = create["requestBody"]["content"]["application/json"]["examples"]
    assert request["TravtusExampleRequest"]["value"] == {
        "group_external_ref": "group-1",
        "due_datetime": "2023-11-11 20:00:00",
        "notes": "Some notes",
    }
    assert "examples" in create["responses"]["200"]["content"]["application/json"]
    upsert = schema["paths"]["/api/express/tasks/upsert/{external_id}"]["put"]
    assert "examples" in upsert["requestBody"]["content"]["application/json"]

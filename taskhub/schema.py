"""OpenAPI extras: the bearer scheme and the error envelope on every operation."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {
                    "type": "string",
                    "example": "validation_error",
                    "description": "missing_authorization, expired_token, invalid_authorization, validation_error, "
                    "malformed_request, not_found, conflict, payload_too_large, unsupported_media_type, rate_limited",
                },
                "message": {"type": "string", "example": "Invalid input: start_datetime."},
                "fields": {
                    "type": "object",
                    "additionalProperties": True,
                    "example": {"start_datetime": ["'tomorrow' is not a datetime."]},
                },
            },
        },
        "request_id": {"type": "string", "format": "uuid", "description": "Travtus-style routes only."},
    },
}
ERROR_RESPONSES = {
    "400": "Invalid input; `fields` names each field and what is wrong with it.",
    "401": "Missing, expired or invalid bearer token.",
    "404": "No such object in your organization.",
    "429": "Rate limited; see Retry-After.",
}
# Only where they can happen: conflicts on writes (state, Idempotency-Key reuse), body limits where there is a body.
WRITE_ERROR_RESPONSES = {"409": "Conflicts with the object's state, or an Idempotency-Key reused with another body."}
BODY_ERROR_RESPONSES = {
    "413": "The request body is larger than this route accepts.",
    "415": "Unsupported Content-Type or charset; the message names the accepted ones.",
}


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "taskhub.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer thk_...`"}


def add_error_envelope(result: dict, generator, request, public) -> dict:
    """Postprocessing hook: every authenticated operation documents the error envelope."""
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ERROR_ENVELOPE
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in result.get("paths", {}).items():
        if path.endswith("/oauth2/token"):
            continue  # RFC 6749 errors, documented on the operation itself
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            errors = dict(ERROR_RESPONSES)
            if method in {"post", "put", "patch", "delete"}:
                errors.update(WRITE_ERROR_RESPONSES)
            if "requestBody" in operation:
                errors.update(BODY_ERROR_RESPONSES)
            for code, description in errors.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": ref}}}
                )
    return result

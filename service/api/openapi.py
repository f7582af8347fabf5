"""The OpenAPI document, made to tell the truth about every answer the service gives.

Routes declare their own success bodies and the errors only they give; what applies across routes
is added here, once: the 422 body (service.api.schemas.Invalid: a message or one entry per field),
400/408/413 of any request body (service.api.bounds), 404 of any path with an id, 401 and the
X-API-Key security scheme on the operations that need a key *with these settings* (none without
keys; reads too unless ASTROLOC_PUBLIC_READS), 429/503 with Retry-After where a bound applies.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from service.api.deps import API_KEY_HEADER
from service.api.schemas import Invalid, Message
from service.config import Settings

SECURITY_SCHEME = "ApiKey"
# Operations whose work is bounded by a queue (429) or by decode slots / the retrieval index (503).
QUEUED = {("post", "/localize"), ("post", "/train"), ("post", "/jobs/selftest")}
BUSY = {("post", "/localize")}
UPLOADS = {("post", "/localize"), ("post", "/star-id")}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}


def needs_key(operation: dict, settings: Settings) -> bool:
    """Whether the operation refuses a request without a valid key under these settings (from the
    security FastAPI records for service.api.deps.WRITE_KEY / READ_KEY)."""
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    if not settings.api_keys:
        return False
    return "WriteKey" in schemes or ("ReadKey" in schemes and not settings.public_reads)


def _error(description: str, *, headers: dict | None = None) -> dict:
    answer = {"description": description,
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}}
    if headers:
        answer["headers"] = headers
    return answer


def build_openapi(app: FastAPI, settings: Settings) -> dict:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Invalid, Message):
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(definition.pop("$defs", {}))
        components[model.__name__] = definition
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    keyed = {(method, path) for path, operations in schema.get("paths", {}).items()
             for method, operation in operations.items() if needs_key(operation, settings)}
    schema["components"].pop("securitySchemes", None)
    if keyed:
        schema["components"]["securitySchemes"] = {
            SECURITY_SCHEME: {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            operation.pop("security", None)
            responses["422"] = {"description": "Invalid input: a message, or one entry per invalid field.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Invalid"}}}}
            if "requestBody" in operation:
                responses.setdefault("400", _error("Malformed request (Content-Length, multipart body)."))
                responses.setdefault("408", _error("The request body did not arrive in time."))
                responses.setdefault("413", _error("Request body or image too large."))
            if (method, path) in UPLOADS:
                responses.setdefault("415", _error("Unsupported media type."))
            if "{" in path:
                responses.setdefault("404", _error("Not found."))
            for code, answer in responses.items():  # every error has a JSON body with `detail`
                if code.startswith(("4", "5")) and code != "422" and "content" not in answer:
                    answer["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}
                elif code.startswith(("4", "5")) and code != "422":
                    answer["content"].setdefault("application/json",
                                                 {"schema": {"$ref": "#/components/schemas/Message"}})
            if (method, path) in QUEUED:
                responses["429"] = _error("The job queue is full: retry after Retry-After seconds.",
                                          headers={"Retry-After": {**RETRY_AFTER["Retry-After"], "required": True}})
            if (method, path) in BUSY:
                responses["503"] = _error("No decode slot free, no retrieval model/index yet, or the database "
                                          "is unavailable.", headers=RETRY_AFTER)
            else:
                responses.setdefault("503", _error("The database is unavailable.", headers=RETRY_AFTER))
            if (method, path) in keyed:
                operation["security"] = [{SECURITY_SCHEME: []}]
                responses["401"] = _error(f"Missing or invalid {API_KEY_HEADER} header.")
    return schema

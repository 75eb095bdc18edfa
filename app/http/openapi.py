"""The OpenAPI document: quart-schema's, with what its models cannot say.

quart-schema (0.25) leaves request bodies optional (OpenAPI's default), nests a response's
headers inside its `content` map, where only media types belong, and describes only JSON
bodies made from a model. Here:

- a documented request body is required; `document_request(Described(schema))` gives one by a
  JSON Schema written out (its `$defs` become components), for rules beyond a model's types;
- response headers sit on the response (required unless their field has a default;
  `retry_after` is named `Retry-After`);
- `document_response(None, status, HeadersModel)` is a response without a body (a 204, a
  redirect), described by the headers model's docstring; `document_response(HTMLPage)` a page;
  a model with `csv_alternative = True` may also be answered as CSV (`format=csv`);
- a path converter's `openapi_pattern` documents which values the handler takes (it still
  matches any, so the handler can answer 400 saying why).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any

from quart_schema import DataSource, OpenAPIProvider
from quart_schema.conversion import model_schema
from quart_schema.typing import Model
from werkzeug.routing.converters import BaseConverter, NumberConverter


class HTMLPage:
    """An HTML page."""


class ZipArchive:
    """A zip archive of CSV files."""


@dataclass(frozen=True)
class Described:
    """A JSON body described by a JSON Schema written out; refer to its `$defs` as
    `#/components/schemas/NAME`."""

    schema: dict[str, Any]


def header_name(field: str) -> str:
    return "-".join(part.capitalize() for part in field.split("_"))


class OpenAPI(OpenAPIProvider):
    def build_request_body(self, model: type[Model] | Described,
                           source: DataSource) -> tuple[dict[str, Any], dict[str, Any]]:
        if isinstance(model, Described):
            schema = copy.deepcopy(model.schema)
            definitions = schema.pop("$defs", {})
            body = {"content": {"application/json": {"schema": schema}}}
        else:
            body, definitions = super().build_request_body(model, source)
        body["required"] = True
        return body, definitions

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        # A number's bounds (an id's: 0 to 2^63-1, app.http.ids), so clients and fuzzers
        # know where the range ends; a converter's own pattern (a breakdown's dimension).
        parameter = super().build_path_parameter(name, converter)
        pattern = getattr(converter, "openapi_pattern", None)
        if pattern:
            parameter["schema"]["pattern"] = pattern
        if isinstance(converter, NumberConverter):
            low = converter.min if converter.min is not None else None if converter.signed else 0
            if low is not None:
                parameter["schema"]["minimum"] = low
            if converter.max is not None:
                parameter["schema"]["maximum"] = converter.max
        return parameter

    def build_response_object(self, model: type[Model] | None, headers_model: type[Model] | None,
                              ) -> tuple[dict[str, Any], dict[str, Any]]:
        if model is None:
            described = inspect.getdoc(headers_model) if headers_model is not None else None
            response, definitions = {"description": described or "No body."}, {}
        elif model is ZipArchive:
            response = {"description": inspect.getdoc(ZipArchive),
                        "content": {"application/zip": {"schema": {"type": "string",
                                                                   "format": "binary"}}}}
            definitions = {}
        elif model is HTMLPage:
            response = {"description": inspect.getdoc(HTMLPage),
                        "content": {"text/html": {"schema": {"type": "string"}}}}
            definitions = {}
        else:
            response, definitions = super().build_response_object(model, None)
            if getattr(model, "csv_alternative", False):
                response["content"]["text/csv"] = {"schema": {"type": "string"}}
        if headers_model is not None:
            response["headers"] = self.build_response_headers(headers_model)
        return response, definitions

    def build_response_headers(self, model: type[Model]) -> dict[str, Any]:
        schema = model_schema(model, schema_mode="serialization",
                              preference=self._app.config["QUART_SCHEMA_CONVERSION_PREFERENCE"])
        required = set(schema.get("required", ()))
        headers = {}
        for name, field in schema["properties"].items():
            field = {key: value for key, value in field.items() if key != "title"}
            header: dict[str, Any] = {"required": name in required}
            if "description" in field:
                header["description"] = field.pop("description")
            header["schema"] = field
            headers[header_name(name)] = header
        return headers

"""Validation of v2 requests against the real API's own OpenAPI document, so the sandbox cannot drift from it.

OpenAPI 3.1 schemas are JSON Schema 2020-12: `jsonschema` validates, `referencing` resolves the document's
`#/components/schemas/...` references. Errors come out in the real API's (FastAPI's) 422 shape:
`{"type", "loc", "msg"}` with `loc` starting at "body", "query" or "path".
Query strings and form fields arrive as text: they are coerced by their schema's type first, as FastAPI does.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from cachetools import LRUCache
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cakemail_sandbox.validation import is_plausible_email

DOCUMENT_URI = "https://api.cakemail.dev/openapi.json"
DOCUMENT_FILE = "cakemail-api-1.18.25.json"

# Pydantic's error types and messages for what a JSON Schema keyword checks, so answers read like the real API's.
_TYPE_NAMES = {"string": "string", "integer": "int", "number": "float", "boolean": "bool", "array": "list"}
_PYDANTIC_TYPES = {
    "object": ("model_attributes_type", "Input should be a valid dictionary or object to extract fields from"),
    "array": ("list_type", "Input should be a valid list"),
    "string": ("string_type", "Input should be a valid string"),
    "integer": ("int_type", "Input should be a valid integer"),
    "number": ("float_type", "Input should be a valid number"),
    "boolean": ("bool_type", "Input should be a valid boolean"),
}
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})

ErrorDetail = dict[str, Any]

# What validate_body(memo=True) remembers: errors per (component, property, value), not per body. A fan-out sends
# the same body once per recipient with only `email` changed, and jsonschema spends ~0.6 ms on each SubmitEmail
# body (more than half of the sandbox's CPU per POST /v2/emails); remembered, the object values are checked once
# per message. Keyed by a digest of the value's JSON, so an entry costs about the same whatever the value's size.
MEMO_ENTRIES = 4096
# Keywords of a component whose errors are the sum of its properties' errors and its `required` (see _split).
_SPLITTABLE_KEYWORDS = frozenset({"type", "properties", "required", "title", "description"})


@cache
def openapi_document() -> dict[str, Any]:
    text = resources.files("cakemail_sandbox.openapi").joinpath(DOCUMENT_FILE).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    # jsonschema's own "email" check only wants an "@"; the API refuses more. Liberal like the gateway: one "@",
    # something on each side, no whitespace or control characters (UTF-8 welcome).
    @checker.checks("email")
    def _email(value: object) -> bool:
        return not isinstance(value, str) or is_plausible_email(value)

    return checker


@dataclass(frozen=True, slots=True)
class Coerced:
    values: dict[str, Any]
    errors: list[ErrorDetail]


class OpenApiContract:
    """The document's schemas as validators; parameters of its operations with their defaults."""

    def __init__(self, document: Mapping[str, Any] | None = None) -> None:
        self.document = dict(document if document is not None else openapi_document())
        resource: Resource[Any] = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
        self._format_checker = _format_checker()
        self._validators: dict[str, Draft202012Validator] = {}
        self._memo: LRUCache[bytes, tuple[ErrorDetail, ...]] = LRUCache(maxsize=MEMO_ENTRIES)

    def _validator(self, schema: Mapping[str, Any]) -> Draft202012Validator:
        key = json.dumps(schema, sort_keys=True)
        found = self._validators.get(key)
        if found is None:
            # A schema lifted out of the document resolves its "#/..." references against the whole document.
            found = Draft202012Validator(
                _anchored(schema), registry=self._registry, format_checker=self._format_checker
            )
            self._validators[key] = found
        return found

    def component(self, name: str) -> dict[str, Any]:
        schema: dict[str, Any] = self.document["components"]["schemas"][name]
        return schema

    def validate_body(self, component: str, instance: Any, *, memo: bool = False) -> list[ErrorDetail]:
        """Errors of a JSON (or coerced form) body against `#/components/schemas/<component>`.

        `memo`: the same errors, in the same order, with each object or array property's errors remembered
        (MEMO_ENTRIES). For the event loop's thread only: the memo is not locked."""
        schema = {"$ref": f"{DOCUMENT_URI}#/components/schemas/{component}"}
        split = self._split(component) if memo and isinstance(instance, dict) else None
        if split is None:
            return self._errors(schema, instance, ("body",))
        root, properties = split
        # The whole document's errors are sorted by path: `required` first (the root's path is empty), then each
        # property's errors in the order of the property's name, each property's own errors sorted among
        # themselves (their paths start with that name, and two properties never share one).
        details = self._errors(root, instance, ("body",))
        for name in sorted(name for name in properties if name in instance):
            # Copies: a remembered error must not change when an answer built from it does (errors are rare).
            details.extend(copy.deepcopy(self._property_errors(component, name, properties[name], instance[name])))
        return details

    def _split(self, component: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(the root's own keywords, the properties) when the component's errors are those of its `required` plus
        those of each property checked alone: an object schema with no keyword that looks at several properties
        at once (additionalProperties, dependentRequired, allOf...). None otherwise."""
        schema = self.component(component)
        if schema.get("type") != "object" or not set(schema) <= _SPLITTABLE_KEYWORDS:
            return None
        root = {key: value for key, value in schema.items() if key in ("type", "required")}
        return root, schema.get("properties", {})

    def _property_errors(
        self, component: str, name: str, schema: Mapping[str, Any], value: Any
    ) -> tuple[ErrorDetail, ...]:
        if not isinstance(value, dict | list):  # a string or a number: checked in microseconds
            return tuple(self._errors(schema, value, ("body", name)))
        # ensure_ascii and allow_nan keep every distinct JSON value distinct (true and 1, 1.0 and 1 included).
        encoded = json.dumps([component, name, value], ensure_ascii=True, allow_nan=True).encode()
        key = hashlib.blake2b(encoded, digest_size=20).digest()
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = tuple(self._errors(schema, value, ("body", name)))
        return found

    def _errors(self, schema: Mapping[str, Any], instance: Any, prefix: tuple[str | int, ...]) -> list[ErrorDetail]:
        errors = sorted(self._validator(schema).iter_errors(instance), key=lambda e: [str(p) for p in e.path])
        details: list[ErrorDetail] = []
        for error in errors:
            details.extend(_details(error, prefix))
        return details

    def coerce_form(self, component: str, fields: Mapping[str, str]) -> Coerced:
        """Form fields (text) turned into the types the component's properties declare."""
        properties: dict[str, Any] = self.component(component).get("properties", {})
        values: dict[str, Any] = {}
        errors: list[ErrorDetail] = []
        for name, raw in fields.items():
            schema = properties.get(name)
            if schema is None:
                continue  # FastAPI ignores form fields it does not declare
            value, error = _coerce(raw, schema, ("body", name))
            if error is not None:
                errors.append(error)
            else:
                values[name] = value
        return Coerced(values, errors)

    def parameters(self, path: str, method: str, where: str, given: Mapping[str, str]) -> Coerced:
        """The operation's `where` ("query" or "path") parameters: coerced, defaulted and validated."""
        operation = self.document["paths"][path][method.lower()]
        values: dict[str, Any] = {}
        errors: list[ErrorDetail] = []
        for parameter in operation.get("parameters", ()):
            if parameter["in"] != where:
                continue
            name, schema = parameter["name"], parameter["schema"]
            raw = given.get(name)
            if raw is None:
                if parameter.get("required"):
                    errors.append({"type": "missing", "loc": [where, name], "msg": "Field required"})
                elif "default" in schema:
                    values[name] = schema["default"]
                continue
            value, error = _coerce(raw, schema, (where, name))
            if error is not None:
                errors.append(error)
                continue
            found = self._errors(schema, value, (where, name))
            if found:
                errors.extend(found)
            else:
                values[name] = value
        return Coerced(values, errors)


def _anchored(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A schema lifted out of the document, with its "#/..." references made absolute (against the document)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: (DOCUMENT_URI + value if key == "$ref" and value.startswith("#") else walk(value))
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    anchored: dict[str, Any] = walk(dict(schema))
    return anchored


def _declared_type(schema: Mapping[str, Any]) -> str | None:
    declared = schema.get("type")
    return declared if isinstance(declared, str) else None


def _coerce(raw: str, schema: Mapping[str, Any], loc: tuple[str | int, ...]) -> tuple[Any, ErrorDetail | None]:
    declared = _declared_type(schema)
    if declared == "integer":
        if re.fullmatch(r"[+-]?[0-9]+", raw.strip()):
            return int(raw), None
        msg = "Input should be a valid integer, unable to parse string as an integer"
        return None, {"type": "int_parsing", "loc": list(loc), "msg": msg}
    if declared == "boolean":
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True, None
        if lowered in _FALSE:
            return False, None
        return None, {"type": "bool_parsing", "loc": list(loc), "msg": "Input should be a valid boolean"}
    return raw, None


def _details(error: ValidationError, prefix: tuple[str | int, ...]) -> Iterable[ErrorDetail]:
    if error.validator in ("anyOf", "oneOf") and error.context:
        # "not valid under any of the given schemas" says little: answer with the errors of the branch whose type
        # fits the input (an attachment object's bad filename, rather than "should be a list").
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        fitting = [
            subs for subs in branches.values() if not any(sub.validator == "type" and not sub.path for sub in subs)
        ]
        for sub in (fitting or [[best_match(error.context)]])[0]:
            yield from _details(sub, prefix)
        return
    loc: list[str | int] = [*prefix, *error.absolute_path]
    keyword = str(error.validator)
    value: Any = error.validator_value
    if keyword == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = [name for name in value if name not in instance and repr(name) in error.message]
        yield {"type": "missing", "loc": [*loc, *(missing[:1] or [])], "msg": "Field required"}
        return
    if keyword == "type":
        kind, msg = _PYDANTIC_TYPES.get(str(value), ("type_error", error.message))
        yield {"type": kind, "loc": loc, "msg": msg}
        return
    yield {"type": _KEYWORD_TYPES.get(keyword, "value_error"), "loc": loc, "msg": _message(keyword, value, error)}


_KEYWORD_TYPES = {
    "pattern": "string_pattern_mismatch",
    "minLength": "string_too_short",
    "maxLength": "string_too_long",
    "minimum": "greater_than_equal",
    "maximum": "less_than_equal",
    "minItems": "too_short",
    "enum": "enum",
    "const": "literal_error",
}


def _message(keyword: str, value: Any, error: ValidationError) -> str:
    if keyword == "pattern":
        return f"String should match pattern '{value}'"
    if keyword == "minLength":
        return f"String should have at least {value} character{_s(value)}"
    if keyword == "maxLength":
        return f"String should have at most {value} character{_s(value)}"
    if keyword == "minimum":
        return f"Input should be greater than or equal to {_number(value)}"
    if keyword == "maximum":
        return f"Input should be less than or equal to {_number(value)}"
    if keyword == "minItems":
        return f"List should have at least {value} item{_s(value)} after validation"
    if keyword == "uniqueItems":
        return "Value error, items must be unique"
    if keyword == "enum":
        return "Input should be " + _choices(value)
    if keyword == "format":
        return f"value is not a valid {value}"
    return error.message


def _s(count: Any) -> str:
    return "" if count == 1 else "s"


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _choices(values: Any) -> str:
    quoted = [repr(value) for value in values]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]

"""validate_body(memo=True): the errors of a whole-body validation, in the same order, from per-property errors that
are remembered across the bodies of one fan-out (the same body, one POST per recipient, only `email` changing)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cakemail_sandbox.schemas import MEMO_ENTRIES, OpenApiContract, openapi_document

CONTRACT = OpenApiContract()

VALID_CONTENT = {"subject": "Hello", "text": "Hi", "type": "transactional"}
# For each property of SubmitEmail, values the schema accepts and values it refuses (one or several errors).
VALUES: dict[str, list[Any]] = {
    "email": ["bob@example.net", "bob at example.net", 5, None, "", ["a@b.c"]],
    "sender": [{"id": "7"}, {"id": "7", "name": "Ann"}, {"id": ""}, {"name": "Ann"}, {}, "7", [], {"id": 7}],
    "content": [
        VALID_CONTENT,
        {**VALID_CONTENT, "html": "<p>x</p>", "encoding": "utf-8"},
        {"text": "t", "type": "marketing"},
        {"subject": "", "text": "t"},
        {**VALID_CONTENT, "type": "bulk", "encoding": "utf8", "html": ""},
        {**VALID_CONTENT, "template": {}},
        {**VALID_CONTENT, "custom_attributes": [{}, "x"]},
        "text",
        None,
    ],
    "list_id": [1, 0, "7", 1.0, 2.5, True, None],
    "contact_id": [3, -1, "x"],
    "tags": [["ok"], ["ok", "not ok", ""], "a,b", [], [1, "a"]],
    "tracking": [{"opens": True}, {"opens": "yes", "clicks_html": 1}, [], {"opens": 1}],
    "additional_headers": [[{"name": "X-A", "value": "1"}], [{"name": "X-A"}, {}, "h"], {}],
    "attachment": [
        {"filename": "a.pdf", "type": "pdf", "content": "aGk="},
        {"filename": "notes.txt", "type": "pdf", "content": "aGk"},
        [{"filename": "my report.pdf", "type": "application/pdf", "content": "aGk="}, {"filename": "b.csv"}],
        [],
        "x",
    ],
    "unknown_field": [1, {"a": 1}],
}

bodies = st.lists(
    st.sampled_from(sorted(VALUES)).flatmap(lambda name: st.tuples(st.just(name), st.sampled_from(VALUES[name]))),
    max_size=len(VALUES),
).map(lambda pairs: {name: copy.deepcopy(value) for name, value in pairs})


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_remembered_errors_are_the_whole_bodys_errors_in_order(body: dict[str, Any]) -> None:
    expected = CONTRACT.validate_body("SubmitEmail", body)

    assert CONTRACT.validate_body("SubmitEmail", body, memo=True) == expected
    assert CONTRACT.validate_body("SubmitEmail", body, memo=True) == expected, "from the memo"


def test_bodies_differing_only_in_the_recipient_each_get_their_own_errors() -> None:
    contract = OpenApiContract()
    body = {"sender": {"id": ""}, "content": VALID_CONTENT}
    sender_error = {
        "type": "string_too_short",
        "loc": ["body", "sender", "id"],
        "msg": "String should have at least 1 character",
    }
    email_error = {"type": "value_error", "loc": ["body", "email"], "msg": "value is not a valid email"}

    assert contract.validate_body("SubmitEmail", {**body, "email": "a@example.net"}, memo=True) == [sender_error]
    assert contract.validate_body("SubmitEmail", {**body, "email": "not an address"}, memo=True) == [
        email_error,
        sender_error,
    ]
    assert contract.validate_body("SubmitEmail", {**body, "email": "b@example.net"}, memo=True) == [sender_error]


def test_a_remembered_property_is_not_validated_again() -> None:
    contract = OpenApiContract()
    checked: list[tuple[Any, ...]] = []
    original = contract._errors

    def counting(schema: Any, instance: Any, prefix: tuple[Any, ...]) -> Any:
        checked.append(prefix)
        return original(schema, instance, prefix)

    contract._errors = counting  # type: ignore[method-assign]
    body = {"sender": {"id": "7"}, "content": VALID_CONTENT, "tags": ["a"]}

    contract.validate_body("SubmitEmail", {**body, "email": "a@example.net"}, memo=True)
    first = list(checked)
    checked.clear()
    contract.validate_body("SubmitEmail", {**body, "email": "b@example.net"}, memo=True)

    assert ("body", "content") in first
    assert checked == [("body",), ("body", "email")], "only the root's `required` and the recipient"


def test_changing_an_answer_does_not_change_what_is_remembered() -> None:
    contract = OpenApiContract()
    body = {"email": "a@example.net", "sender": {"id": ""}, "content": VALID_CONTENT}
    first = contract.validate_body("SubmitEmail", body, memo=True)
    expected = copy.deepcopy(first)

    first[0]["loc"].append("changed")
    first[0]["msg"] = "changed"

    assert contract.validate_body("SubmitEmail", body, memo=True) == expected


def test_a_value_equal_in_python_but_not_in_json_is_not_taken_from_the_memo() -> None:
    contract = OpenApiContract()
    tracking_ok = {"sender": {"id": "7"}, "content": VALID_CONTENT, "tracking": {"opens": True}}
    tracking_int = {"sender": {"id": "7"}, "content": VALID_CONTENT, "tracking": {"opens": 1}}

    assert contract.validate_body("SubmitEmail", tracking_ok, memo=True) == []
    assert contract.validate_body("SubmitEmail", tracking_int, memo=True) == [
        {"type": "bool_type", "loc": ["body", "tracking", "opens"], "msg": "Input should be a valid boolean"}
    ]


def test_the_memo_is_bounded() -> None:
    contract = OpenApiContract()
    for index in range(MEMO_ENTRIES + 50):
        contract.validate_body("SubmitEmail", {"sender": {"id": str(index)}, "content": VALID_CONTENT}, memo=True)

    assert len(contract._memo) == MEMO_ENTRIES


def test_a_schema_that_looks_at_several_properties_is_validated_whole() -> None:
    document = copy.deepcopy(openapi_document())
    strict = {
        "type": "object",
        "properties": {"a": {"type": "object"}, "b": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
        "title": "Strict",
    }
    document["components"]["schemas"]["Strict"] = strict
    contract = OpenApiContract(document)
    body = {"a": {}, "b": 1, "c": {"x": 1}}

    errors = contract.validate_body("Strict", body, memo=True)

    assert errors == contract.validate_body("Strict", body)
    assert any("Additional properties" in error["msg"] for error in errors), errors

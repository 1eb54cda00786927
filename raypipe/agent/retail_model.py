"""The retail database's record shapes, as tau2-bench's data model defines them.

The benchmark loads db.json into typed models and answers tool calls with the models' dumps:
every field in the model's declared order, optional fields present as null, float fields as
floats, unknown keys of nested records dropped. `normalize_db` puts a plain JSON database into
exactly that shape once, at load time, so that tools can work on plain dicts and still answer
(and hash) byte for byte as the benchmark does.

Checks are strict where the benchmark's would fail (a missing field, a wrong type, an unknown
status) and the one lenient coercion the data needs is kept: an integer where a float is
declared becomes a float.
"""

from __future__ import annotations

from typing import Any

STR, FLOAT, BOOL = "str", "float", "bool"
STR_MAP, STR_LIST = "dict[str,str]", "list[str]"
OPTIONAL = "optional"

ORDER_STATUSES = ("processed", "pending", "pending (item modified)", "delivered", "cancelled",
                  "exchange requested", "return requested")
CANCEL_REASONS = ("no longer needed", "ordered by mistake")
TRANSACTION_TYPES = ("payment", "refund")
PAYMENT_SOURCES = ("credit_card", "gift_card", "paypal")

# record name -> [(field, type)], in the benchmark's declaration order. A type is a scalar
# name above, ("record", name), ("map", record), ("list", record), ("literal", choices) or
# (OPTIONAL, type) for a field that defaults to null.
RECORDS: dict[str, list[tuple[str, Any]]] = {
    "Variant": [("item_id", STR), ("options", STR_MAP), ("available", BOOL), ("price", FLOAT)],
    "Product": [("name", STR), ("product_id", STR), ("variants", ("map", "Variant"))],
    "UserName": [("first_name", STR), ("last_name", STR)],
    "UserAddress": [("address1", STR), ("address2", STR), ("city", STR), ("country", STR),
                    ("state", STR), ("zip", STR)],
    "credit_card": [("source", ("literal", ("credit_card",))), ("id", STR), ("brand", STR),
                    ("last_four", STR)],
    "paypal": [("source", ("literal", ("paypal",))), ("id", STR)],
    "gift_card": [("source", ("literal", ("gift_card",))), ("id", STR), ("balance", FLOAT)],
    "User": [("user_id", STR), ("name", ("record", "UserName")), ("address", ("record", "UserAddress")),
             ("email", STR), ("payment_methods", ("map", "PaymentMethod")), ("orders", STR_LIST)],
    "OrderFulfillment": [("tracking_id", STR_LIST), ("item_ids", STR_LIST)],
    "OrderItem": [("name", STR), ("product_id", STR), ("item_id", STR), ("price", FLOAT),
                  ("options", STR_MAP)],
    "OrderPayment": [("transaction_type", ("literal", TRANSACTION_TYPES)), ("amount", FLOAT),
                     ("payment_method_id", STR)],
    "Order": [("order_id", STR), ("user_id", STR), ("address", ("record", "UserAddress")),
              ("items", ("list", "OrderItem")), ("status", ("literal", ORDER_STATUSES)),
              ("fulfillments", ("list", "OrderFulfillment")),
              ("payment_history", ("list", "OrderPayment")),
              ("cancel_reason", (OPTIONAL, ("literal", CANCEL_REASONS))),
              ("exchange_items", (OPTIONAL, STR_LIST)), ("exchange_new_items", (OPTIONAL, STR_LIST)),
              ("exchange_payment_method_id", (OPTIONAL, STR)),
              ("exchange_price_difference", (OPTIONAL, FLOAT)),
              ("return_items", (OPTIONAL, STR_LIST)), ("return_payment_method_id", (OPTIONAL, STR))],
}
TOP_LEVEL = [("products", ("map", "Product")), ("users", ("map", "User")), ("orders", ("map", "Order"))]


class SchemaError(ValueError):
    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")


def normalize_db(data: Any) -> dict:
    """db.json's content -> the database in the benchmark's model shape (raises SchemaError)."""
    if not isinstance(data, dict):
        raise SchemaError("$", "the database must be an object")
    unknown = sorted(set(data) - {name for name, _ in TOP_LEVEL})
    if unknown:  # the benchmark's database model forbids extra top-level keys
        raise SchemaError("$", f"unknown key(s) {unknown}")
    return {name: _value(data.get(name, _MISSING), tp, name) for name, tp in TOP_LEVEL}


_MISSING = object()


def record(name: str, data: Any, path: str) -> dict:
    """One record in its declared field order; unknown keys dropped, optional fields null."""
    if name == "PaymentMethod":
        source = data.get("source") if isinstance(data, dict) else None
        if source not in PAYMENT_SOURCES:
            raise SchemaError(f"{path}.source", f"must be one of {list(PAYMENT_SOURCES)}, got {source!r}")
        name = source
    if not isinstance(data, dict):
        raise SchemaError(path, f"must be an object, got {type(data).__name__}")
    return {field: _value(data.get(field, _MISSING), tp, f"{path}.{field}") for field, tp in RECORDS[name]}


def _value(value: Any, tp: Any, path: str) -> Any:
    if isinstance(tp, tuple) and tp[0] == OPTIONAL:
        return None if value is _MISSING or value is None else _value(value, tp[1], path)
    if value is _MISSING:
        raise SchemaError(path, "missing")
    if tp == STR:
        if not isinstance(value, str):
            raise SchemaError(path, f"must be a string, got {type(value).__name__}")
        return value
    if tp == FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(path, f"must be a number, got {type(value).__name__}")
        return float(value)
    if tp == BOOL:
        if not isinstance(value, bool):
            raise SchemaError(path, f"must be true or false, got {value!r}")
        return value
    if tp == STR_MAP:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise SchemaError(path, "must be an object of strings")
        return dict(value)
    if tp == STR_LIST:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SchemaError(path, "must be a list of strings")
        return list(value)
    kind, arg = tp
    if kind == "literal":
        if value not in arg:
            raise SchemaError(path, f"must be one of {list(arg)}, got {value!r}")
        return value
    if kind == "record":
        return record(arg, value, path)
    if kind == "map":
        if not isinstance(value, dict):
            raise SchemaError(path, "must be an object")
        return {k: record(arg, v, f"{path}[{k!r}]") for k, v in value.items()}
    if kind == "list":
        if not isinstance(value, list):
            raise SchemaError(path, "must be a list")
        return [record(arg, v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise AssertionError(f"unknown type {tp!r}")


# The pydantic release the benchmark pins (its uv.lock); its error texts carry this version.
PYDANTIC_DOCS = "https://errors.pydantic.dev/2.12/v/string_type"


def address(address1: Any, address2: Any, city: Any, state: Any, country: Any, zip: Any) -> dict:
    """A new address record, checked as the benchmark's model checks one built by a tool (and
    failing with the same text: one block per field, in the model's field order)."""
    given = {"address1": address1, "address2": address2, "city": city, "state": state,
             "country": country, "zip": zip}
    fields = [f for f, _ in RECORDS["UserAddress"]]
    bad = [f for f in fields if not isinstance(given[f], str)]
    if bad:
        lines = [f"{len(bad)} validation error{'s' if len(bad) > 1 else ''} for UserAddress"]
        for f in bad:
            lines += [f, f"  Input should be a valid string [type=string_type, input_value={given[f]!r}, "
                         f"input_type={type(given[f]).__name__}]",
                      f"    For further information visit {PYDANTIC_DOCS}"]
        raise ValueError("\n".join(lines))
    return {f: given[f] for f in fields}


def payment(transaction_type: str, amount: Any, payment_method_id: str) -> dict:
    """A new payment record; the model makes the amount a float."""
    return {"transaction_type": transaction_type, "amount": float(amount),
            "payment_method_id": payment_method_id}

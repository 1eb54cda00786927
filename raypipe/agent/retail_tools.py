"""tau2-bench's 16 retail tools over a plain-dict database (see `retail_model` for its shape).

Written from the benchmark's behaviour (github.com/sierra-research/tau2-bench, commit
a2c02472, src/tau2/domains/retail/tools.py), not copied. What must hold, because answers and
final databases are compared with the benchmark's own code:

- the order of the checks, and so which error a bad call gets; the error texts themselves;
- what a failing call leaves behind (e.g. a gift card already refunded when a later payment
  method of the same order is missing: the benchmark does not roll back);
- the arithmetic as the benchmark does it (price differences summed from 0 in item order,
  gift card balances rounded to cents after each change, the exchange's difference rounded,
  the item modification's not);
- `modify_pending_order_items` gives every modified item the price and options of the *last*
  new item of the call (the benchmark's loop reuses its last variant): reproduced on purpose,
  since the gold final databases depend on it;
- method and parameter names are the benchmark's, so that a call with a missing or unexpected
  argument answers with the same Python message (``RetailTools.get_order_details() missing 1
  required positional argument: 'order_id'``).

A record returned by a tool is the live dict in the database; the environment serialises it.
"""

from __future__ import annotations

import json
from typing import Any

from raypipe.agent import calculator
from raypipe.agent.retail_model import address, payment

CANCEL_REASONS = frozenset({"no longer needed", "ordered by mistake"})  # a set: `in` hashes
MUTATING = frozenset({
    "cancel_pending_order", "exchange_delivered_order_items", "modify_pending_order_address",
    "modify_pending_order_items", "modify_pending_order_payment", "modify_user_address",
    "return_delivered_order_items",
})
TOOL_NAMES = (
    "calculate", "cancel_pending_order", "exchange_delivered_order_items",
    "find_user_id_by_name_zip", "find_user_id_by_email", "get_order_details",
    "get_product_details", "get_item_details", "get_user_details", "list_all_product_types",
    "modify_pending_order_address", "modify_pending_order_items", "modify_pending_order_payment",
    "modify_user_address", "return_delivered_order_items", "transfer_to_human_agents",
)


def _is_gift_card(method: dict) -> bool:
    return method["source"] == "gift_card"


def _first_item(order: dict, item_id: Any) -> dict | None:
    return next((it for it in order["items"] if it["item_id"] == item_id), None)


def _check_counts(order: dict, item_ids: Any, message: str) -> None:
    """Every id asked for (duplicates counted) must be in the order as many times."""
    in_order = [it["item_id"] for it in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > in_order.count(item_id):
            raise ValueError(message.format(item_id=item_id))


class RetailTools:
    def __init__(self, db: dict):
        self.db = db

    # -- look-ups (each raises the benchmark's "... not found") -------------------------------
    def _order(self, order_id: Any) -> dict:
        if order_id not in self.db["orders"]:
            raise ValueError("Order not found")
        return self.db["orders"][order_id]

    def _user(self, user_id: Any) -> dict:
        if user_id not in self.db["users"]:
            raise ValueError("User not found")
        return self.db["users"][user_id]

    def _product(self, product_id: Any) -> dict:
        if product_id not in self.db["products"]:
            raise ValueError("Product not found")
        return self.db["products"][product_id]

    def _variant(self, product_id: Any, variant_id: Any) -> dict:
        variants = self._product(product_id)["variants"]
        if variant_id not in variants:
            raise ValueError("Variant not found")
        return variants[variant_id]

    def _payment_method(self, user_id: Any, method_id: Any) -> dict:
        methods = self._user(user_id)["payment_methods"]
        if method_id not in methods:
            raise ValueError("Payment method not found")
        return methods[method_id]

    def _price_difference(self, order: dict, item_ids: Any, new_item_ids: Any,
                          forbid_same: bool) -> tuple[float, dict | None]:
        """Sum of (new price - old price) over the pairs, in order; and the last new variant."""
        difference: Any = 0
        variant = None
        for item_id, new_item_id in zip(item_ids, new_item_ids):
            if forbid_same and item_id == new_item_id:
                raise ValueError("The new item id should be different from the old item id")
            item = _first_item(order, item_id)
            if item is None:
                raise ValueError(f"Item {item_id} not found")
            variant = self._variant(item["product_id"], new_item_id)
            if not variant["available"]:
                raise ValueError(f"New item {new_item_id} not found or available")
            difference += variant["price"] - item["price"]
        return difference, variant

    # -- generic ----------------------------------------------------------------------------
    def calculate(self, expression):
        return calculator.calculate(expression)

    def transfer_to_human_agents(self, summary):
        return "Transfer successful"

    # -- reads --------------------------------------------------------------------------------
    def find_user_id_by_name_zip(self, first_name, last_name, zip):
        for user_id, user in self.db["users"].items():
            if (user["name"]["first_name"].lower() == first_name.lower()
                    and user["name"]["last_name"].lower() == last_name.lower()
                    and user["address"]["zip"] == zip):
                return user_id
        raise ValueError("User not found")

    def find_user_id_by_email(self, email):
        for user_id, user in self.db["users"].items():
            if user["email"].lower() == email.lower():
                return user_id
        raise ValueError("User not found")

    def get_order_details(self, order_id):
        return self._order(order_id)

    def get_product_details(self, product_id):
        return self._product(product_id)

    def get_item_details(self, item_id):
        for product in self.db["products"].values():
            if item_id in product["variants"]:
                return product["variants"][item_id]
        raise ValueError("Item not found")

    def get_user_details(self, user_id):
        return self._user(user_id)

    def list_all_product_types(self):
        names = {p["name"]: p["product_id"] for p in self.db["products"].values()}
        return json.dumps(names, sort_keys=True)

    # -- writes -------------------------------------------------------------------------------
    def cancel_pending_order(self, order_id, reason):
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ValueError("Non-pending order cannot be cancelled")
        if reason not in CANCEL_REASONS:
            raise ValueError("Invalid reason")
        refunds = []
        for paid in order["payment_history"]:
            refunds.append(payment("refund", paid["amount"], paid["payment_method_id"]))
            user = self._user(order["user_id"])
            method = self._payment_method(user["user_id"], paid["payment_method_id"])
            if _is_gift_card(method):  # gift cards are refunded at once
                method["balance"] = round(method["balance"] + paid["amount"], 2)
        order["status"] = "cancelled"
        order["cancel_reason"] = reason
        order["payment_history"].extend(refunds)
        return order

    def exchange_delivered_order_items(self, order_id, item_ids, new_item_ids, payment_method_id):
        order = self._order(order_id)
        if order["status"] != "delivered":
            raise ValueError("Non-delivered order cannot be exchanged")
        _check_counts(order, item_ids, "Number of {item_id} not found.")
        if len(item_ids) != len(new_item_ids):
            raise ValueError("The number of items to be exchanged should match.")
        difference, _ = self._price_difference(order, item_ids, new_item_ids, forbid_same=False)
        difference = round(difference, 2)
        method = self._payment_method(order["user_id"], payment_method_id)
        if _is_gift_card(method) and method["balance"] < difference:
            raise ValueError("Insufficient gift card balance to pay for the price difference")
        order["status"] = "exchange requested"
        order["exchange_items"] = sorted(item_ids)
        order["exchange_new_items"] = sorted(new_item_ids)
        order["exchange_payment_method_id"] = payment_method_id
        order["exchange_price_difference"] = difference
        return order

    def modify_pending_order_address(self, order_id, address1, address2, city, state, country, zip):
        order = self._order(order_id)
        if "pending" not in order["status"]:
            raise ValueError("Non-pending order cannot be modified")
        order["address"] = address(address1, address2, city, state, country, zip)
        return order

    def modify_pending_order_items(self, order_id, item_ids, new_item_ids, payment_method_id):
        order = self._order(order_id)
        if order["status"] != "pending":
            raise ValueError("Non-pending order cannot be modified")
        _check_counts(order, item_ids, "{item_id} not found")
        if len(item_ids) != len(new_item_ids):
            raise ValueError("The number of items to be exchanged should match")
        difference, last_variant = self._price_difference(order, item_ids, new_item_ids, forbid_same=True)
        method = self._payment_method(order["user_id"], payment_method_id)
        if _is_gift_card(method) and method["balance"] < difference:
            raise ValueError("Insufficient gift card balance to pay for the new item")
        order["payment_history"].append(
            payment("payment" if difference > 0 else "refund", abs(difference), payment_method_id))
        if _is_gift_card(method):
            method["balance"] = round(method["balance"] - difference, 2)
        for item_id, new_item_id in zip(item_ids, new_item_ids):
            item = _first_item(order, item_id)
            if item is None:
                raise ValueError(f"Item {item_id} not found")
            item["item_id"] = new_item_id
            item["price"] = last_variant["price"]  # the benchmark's last-variant behaviour
            item["options"] = dict(last_variant["options"])
        order["status"] = "pending (item modified)"
        return order

    def modify_pending_order_payment(self, order_id, payment_method_id):
        order = self._order(order_id)
        if "pending" not in order["status"]:
            raise ValueError("Non-pending order cannot be modified")
        method = self._payment_method(order["user_id"], payment_method_id)
        history = order["payment_history"]
        if len(history) != 1 or history[0]["transaction_type"] != "payment":
            raise ValueError("There should be exactly one payment for a pending order")
        old_method_id = history[0]["payment_method_id"]
        if old_method_id == payment_method_id:
            raise ValueError("The new payment method should be different from the current one")
        amount = history[0]["amount"]
        if _is_gift_card(method) and method["balance"] < amount:
            raise ValueError("Insufficient gift card balance to pay for the order")
        history.extend([payment("payment", amount, payment_method_id),
                        payment("refund", amount, old_method_id)])
        if _is_gift_card(method):
            method["balance"] = round(method["balance"] - amount, 2)
        old_method = self._payment_method(order["user_id"], old_method_id)
        if _is_gift_card(old_method):
            old_method["balance"] = round(old_method["balance"] + amount, 2)
        return order

    def modify_user_address(self, user_id, address1, address2, city, state, country, zip):
        user = self._user(user_id)
        user["address"] = address(address1, address2, city, state, country, zip)
        return user

    def return_delivered_order_items(self, order_id, item_ids, payment_method_id):
        order = self._order(order_id)
        if order["status"] != "delivered":
            raise ValueError("Non-delivered order cannot be returned")
        user = self._user(order["user_id"])
        method = self._payment_method(user["user_id"], payment_method_id)
        if not _is_gift_card(method) and payment_method_id != order["payment_history"][0]["payment_method_id"]:
            raise ValueError("Payment method should be the original payment method")
        _check_counts(order, item_ids, "Some item not found")
        order["status"] = "return requested"
        order["return_items"] = sorted(item_ids)
        order["return_payment_method_id"] = payment_method_id
        return order

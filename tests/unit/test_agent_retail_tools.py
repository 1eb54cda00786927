"""Each retail tool's effects and errors on a small hand-made store (tests/fixtures/agent_mini).

Expected answers and final hashes were produced by running tau2-bench's own retail code
(commit a2c02472) on the same database and calls; they are pinned here.
"""

import json
from pathlib import Path

import pytest

from raypipe.agent.env import Domain, db_sha256, result_text, strip_nulls
from raypipe.agent.retail_model import SchemaError, normalize_db
from raypipe.agent.retail_tools import MUTATING, TOOL_NAMES, RetailTools

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "agent_mini"
ADDRESS = dict(address1="5 New St", address2="Apt 3", city="Austin", state="TX", country="USA", zip="78701")


@pytest.fixture
def env():
    db = normalize_db(json.loads((MINI / "db.json").read_text()))
    specs = [{"type": "function", "function": {"name": n}} for n in TOOL_NAMES]
    return Domain("retail", json.dumps(db), specs, "", RetailTools, MUTATING).new_env()


def ok(env, name, **args):
    result = env.call(name, args)
    assert not result.error, result.content
    return json.loads(result.content) if result.content.startswith("{") else result.content


def err(env, name, **args):
    result = env.call(name, args)
    assert result.error, result.content
    return result.content


def test_normalize_db_gives_the_benchmark_model_shape(env):
    order = env.db["orders"]["#W1"]
    assert list(order)[-7:] == ["cancel_reason", "exchange_items", "exchange_new_items", "exchange_payment_method_id",
                                "exchange_price_difference", "return_items", "return_payment_method_id"]
    assert order["cancel_reason"] is None
    gift = env.db["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]
    assert gift == {"source": "gift_card", "id": "gift_card_1", "balance": 30.0} and isinstance(gift["balance"], float)
    with pytest.raises(SchemaError, match=r"orders\['#X'\].status"):
        normalize_db({"products": {}, "users": {}, "orders": {"#X": {**order, "status": "lost"}}})
    with pytest.raises(SchemaError, match="unknown key"):
        normalize_db({"products": {}, "users": {}, "orders": {}, "extra": 1})


def test_unchanged_database_hash_and_serialisation(env):
    assert env.db_sha256() == "ef1ad27dfb57cbfe2280b7d09a9dfacbce78078e07783bb7aac1d04911e6f1c2"
    assert strip_nulls({"a": None, "b": [{"c": None, "d": 1}]}) == {"b": [{"d": 1}]}
    assert db_sha256({"b": "é", "a": 1.0}) == db_sha256({"a": 1.0, "b": "é"})
    assert result_text(5) == '"5"' and result_text(None) == "null" and result_text("x") == "x"


def test_reads(env):
    assert ok(env, "find_user_id_by_name_zip", first_name="ANN", last_name="lee", zip="10001") == "ann_lee_1"
    assert err(env, "find_user_id_by_name_zip", first_name="Ann", last_name="Lee", zip="99999") == "Error: User not found"
    assert ok(env, "find_user_id_by_email", email="ANN.LEE@example.com") == "ann_lee_1"
    assert err(env, "find_user_id_by_email", email="nobody@example.com") == "Error: User not found"
    assert env.call("get_product_details", {"product_id": "1000000002"}).content == (
        '{"name": "Mug", "product_id": "1000000002", "variants": {"3000000001": {"item_id": "3000000001", '
        '"options": {"size": "small"}, "available": true, "price": 10.0}, "3000000002": {"item_id": "3000000002", '
        '"options": {"size": "large"}, "available": true, "price": 15.25}}}')
    assert err(env, "get_product_details", product_id="2000000001") == "Error: Product not found"
    assert ok(env, "get_item_details", item_id="3000000002")["price"] == 15.25
    assert err(env, "get_item_details", item_id="1000000002") == "Error: Item not found"
    assert err(env, "get_user_details", user_id="nobody") == "Error: User not found"
    assert ok(env, "get_order_details", order_id="#W1")["cancel_reason"] is None
    assert err(env, "get_order_details", order_id="#W9") == "Error: Order not found"
    assert env.call("list_all_product_types", {}).content == '{"Mug": "1000000002", "T-Shirt": "1000000001"}'
    assert ok(env, "transfer_to_human_agents", summary="help") == "Transfer successful"
    assert ok(env, "calculate", expression="(20 + 5.5) * 2") == "51.0"
    assert err(env, "calculate", expression="2 ^ 3") == "Error: Invalid characters in expression"
    assert env.db_sha256() == "ef1ad27dfb57cbfe2280b7d09a9dfacbce78078e07783bb7aac1d04911e6f1c2"  # reads change nothing


def test_dispatch_errors_are_answers(env):
    assert err(env, "get_order_details") == (
        "Error: RetailTools.get_order_details() missing 1 required positional argument: 'order_id'")
    assert err(env, "get_order_details", order_id="#W1", verbose=True) == (
        "Error: RetailTools.get_order_details() got an unexpected keyword argument 'verbose'")
    assert err(env, "drop_tables") == "Error: Tool 'drop_tables' not found."
    assert err(env, "_order", order_id="#W1") == "Error: Tool '_order' not found."  # not whitelisted
    assert err(env, "modify_pending_order_address", order_id="#W1") == (
        "Error: RetailTools.modify_pending_order_address() missing 6 required positional arguments: "
        "'address1', 'address2', 'city', 'state', 'country', and 'zip'")
    assert err(env, "get_order_details", order_id=["#W1"]) == "Error: unhashable type: 'list'"
    assert env.call("get_order_details", ["#W1"]).error
    huge = env.call("return_delivered_order_items", {"order_id": "#W2", "item_ids": ["2000000002"] * 5000,
                                                     "payment_method_id": "gift_card_1"})
    assert huge.error and huge.content.startswith("Error: arguments too large")


def test_cancel(env):
    order = ok(env, "cancel_pending_order", order_id="#W3", reason="ordered by mistake")
    assert order["status"] == "cancelled" and order["cancel_reason"] == "ordered by mistake"
    assert order["payment_history"][-1] == {"transaction_type": "refund", "amount": 10.0, "payment_method_id": "gift_card_1"}
    assert env.db["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] == 40.0  # refunded at once
    assert env.db_sha256() == "37f6d61e008d524750672b684b56c01be48a3b5125eed33f3722dc13287af1fe"


def test_cancel_errors_and_partial_effect(env):
    assert err(env, "cancel_pending_order", order_id="#W2", reason="no longer needed") == (
        "Error: Non-pending order cannot be cancelled")
    assert err(env, "cancel_pending_order", order_id="#W1", reason="too pricey") == "Error: Invalid reason"
    assert err(env, "cancel_pending_order", order_id="#W9", reason="no longer needed") == "Error: Order not found"
    # #W5 was paid by gift_card_2, then by a payment method bob does not have: the benchmark
    # refunds the first before failing on the second, and does not roll back.
    assert err(env, "cancel_pending_order", order_id="#W5", reason="no longer needed") == "Error: Payment method not found"
    assert env.db["users"]["bob_ray_2"]["payment_methods"]["gift_card_2"]["balance"] == 15.0
    assert env.db["orders"]["#W5"]["status"] == "pending"
    assert env.db_sha256() == "359e7191009eefc6f38e7c8cc41ca2cecf2de552b2303384a9534c22cf28c7a8"


def test_exchange(env):
    order = ok(env, "exchange_delivered_order_items", order_id="#W2", item_ids=["2000000002"],
               new_item_ids=["2000000001"], payment_method_id="gift_card_1")
    assert order["status"] == "exchange requested"
    assert order["exchange_items"] == ["2000000002"] and order["exchange_new_items"] == ["2000000001"]
    assert order["exchange_price_difference"] == -5.5 and order["exchange_payment_method_id"] == "gift_card_1"
    assert env.db_sha256() == "24746cf005afdf84eb4d401d1783168ae4e834e8046acf2e9c739b2bf5f9fcd3"


def test_exchange_errors(env):
    base = dict(order_id="#W2", payment_method_id="gift_card_1")
    assert err(env, "exchange_delivered_order_items", order_id="#W1", item_ids=[], new_item_ids=[],
               payment_method_id="credit_card_1") == "Error: Non-delivered order cannot be exchanged"
    assert err(env, "exchange_delivered_order_items", item_ids=["2000000002"] * 3, new_item_ids=["2000000001"] * 3,
               **base) == "Error: Number of 2000000002 not found."
    assert err(env, "exchange_delivered_order_items", item_ids=["2000000002"], new_item_ids=[], **base) == (
        "Error: The number of items to be exchanged should match.")
    assert err(env, "exchange_delivered_order_items", item_ids=["2000000002"], new_item_ids=["2000000003"],
               **base) == "Error: New item 2000000003 not found or available"
    assert err(env, "exchange_delivered_order_items", item_ids=["2000000002"], new_item_ids=["3000000001"],
               **base) == "Error: Variant not found"
    assert err(env, "exchange_delivered_order_items", order_id="#W2", item_ids=[], new_item_ids=[],
               payment_method_id="gift_card_9") == "Error: Payment method not found"
    assert env.db_sha256() == "ef1ad27dfb57cbfe2280b7d09a9dfacbce78078e07783bb7aac1d04911e6f1c2"


def test_exchange_of_nothing_keeps_an_integer_difference(env):
    # round(0, 2) is the int 0: the benchmark stores and answers it as 0, not 0.0
    content = env.call("exchange_delivered_order_items", {"order_id": "#W2", "item_ids": [], "new_item_ids": [],
                                                          "payment_method_id": "paypal_1"}).content
    assert '"exchange_price_difference": 0,' in content
    assert env.db_sha256() == "7c6d471a98d9afa20e8efcc5e69d0e8db704cb81c08f0efdc1ac6b5144dad1f5"


def test_modify_items_uses_the_last_variant_for_every_item(env):
    order = ok(env, "modify_pending_order_items", order_id="#W1", item_ids=["2000000001", "3000000001"],
               new_item_ids=["2000000002", "3000000002"], payment_method_id="gift_card_1")
    assert [i["item_id"] for i in order["items"]] == ["2000000002", "3000000002"]
    # the benchmark's loop reuses its last variant: both items get the large mug's price/options
    assert [i["price"] for i in order["items"]] == [15.25, 15.25]
    assert order["items"][0]["options"] == {"size": "large"}
    assert order["status"] == "pending (item modified)"
    assert order["payment_history"][-1] == {"transaction_type": "payment", "amount": 10.75,
                                            "payment_method_id": "gift_card_1"}
    assert env.db["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] == 19.25
    assert env.db_sha256() == "61f7f5085d97684a1c0c0efda3ccf5c219fd476247154108a0ebeb4f8d117d22"


def test_modify_items_errors(env):
    assert err(env, "modify_pending_order_items", order_id="#W1", item_ids=["2000000001"], new_item_ids=["2000000001"],
               payment_method_id="gift_card_1") == "Error: The new item id should be different from the old item id"
    assert err(env, "modify_pending_order_items", order_id="#W1", item_ids=["2000000009"], new_item_ids=["2000000001"],
               payment_method_id="gift_card_1") == "Error: 2000000009 not found"
    assert err(env, "modify_pending_order_items", order_id="#W5", item_ids=["2000000001"], new_item_ids=["2000000002"],
               payment_method_id="gift_card_2") == "Error: Insufficient gift card balance to pay for the new item"
    assert err(env, "modify_pending_order_items", order_id="#W4", item_ids=[], new_item_ids=[],
               payment_method_id="gift_card_2") == "Error: Non-pending order cannot be modified"
    assert env.db_sha256() == "ef1ad27dfb57cbfe2280b7d09a9dfacbce78078e07783bb7aac1d04911e6f1c2"


def test_modify_payment(env):
    order = ok(env, "modify_pending_order_payment", order_id="#W3", payment_method_id="credit_card_1")
    assert order["payment_history"][1:] == [
        {"transaction_type": "payment", "amount": 10.0, "payment_method_id": "credit_card_1"},
        {"transaction_type": "refund", "amount": 10.0, "payment_method_id": "gift_card_1"}]
    assert env.db["users"]["ann_lee_1"]["payment_methods"]["gift_card_1"]["balance"] == 40.0
    assert env.db_sha256() == "acaba84c32a1b6b952e9e0d5235bc742e1817bf73c62c7ada407b53c8635b515"


def test_modify_payment_errors(env):
    assert err(env, "modify_pending_order_payment", order_id="#W3", payment_method_id="gift_card_1") == (
        "Error: The new payment method should be different from the current one")
    assert err(env, "modify_pending_order_payment", order_id="#W5", payment_method_id="gift_card_2") == (
        "Error: There should be exactly one payment for a pending order")
    assert err(env, "modify_pending_order_payment", order_id="#W2", payment_method_id="paypal_1") == (
        "Error: Non-pending order cannot be modified")
    ok(env, "modify_pending_order_payment", order_id="#W1", payment_method_id="gift_card_1")
    assert err(env, "modify_pending_order_payment", order_id="#W1", payment_method_id="gift_card_1") == (
        "Error: There should be exactly one payment for a pending order")  # only once
    assert env.db_sha256() == "e8057ee211d69454deab7c4938adf3cbaf634ad963cf597153c5f69a18a62062"


def test_addresses(env):
    assert ok(env, "modify_pending_order_address", order_id="#W1", **ADDRESS)["address"] == {
        "address1": "5 New St", "address2": "Apt 3", "city": "Austin", "country": "USA", "state": "TX", "zip": "78701"}
    assert ok(env, "modify_user_address", user_id="bob_ray_2", **ADDRESS)["address"]["city"] == "Austin"
    assert err(env, "modify_pending_order_address", order_id="#W4", **ADDRESS) == (
        "Error: Non-pending order cannot be modified")
    assert err(env, "modify_user_address", user_id="bob_ray_2", **{**ADDRESS, "zip": 78701}) == (
        "Error: 1 validation error for UserAddress\nzip\n  Input should be a valid string [type=string_type, "
        "input_value=78701, input_type=int]\n    For further information visit "
        "https://errors.pydantic.dev/2.12/v/string_type")
    assert env.db_sha256() == "d76c0ac3792507503e741372db3709126acca64bdc293b316bb58caf2bf8ea86"


def test_return(env):
    assert err(env, "return_delivered_order_items", order_id="#W2", item_ids=["2000000002"],
               payment_method_id="credit_card_1") == "Error: Payment method should be the original payment method"
    assert err(env, "return_delivered_order_items", order_id="#W2", item_ids=["2000000002"] * 3,
               payment_method_id="gift_card_1") == "Error: Some item not found"
    assert err(env, "return_delivered_order_items", order_id="#W1", item_ids=[],
               payment_method_id="gift_card_1") == "Error: Non-delivered order cannot be returned"
    order = ok(env, "return_delivered_order_items", order_id="#W2", item_ids=["2000000002", "2000000002"],
               payment_method_id="gift_card_1")
    assert order["status"] == "return requested" and order["return_items"] == ["2000000002", "2000000002"]
    assert env.db_sha256() == "331b50e76f5e79cf99f40c0aaf994f7aadae542a725696da8130c7223d329ccb"


def test_every_episode_gets_its_own_database(env):
    ok(env, "cancel_pending_order", order_id="#W3", reason="ordered by mistake")
    fresh = env.domain.new_env()
    assert fresh.db["orders"]["#W3"]["status"] == "pending"
    assert fresh.db_sha256() == "ef1ad27dfb57cbfe2280b7d09a9dfacbce78078e07783bb7aac1d04911e6f1c2"

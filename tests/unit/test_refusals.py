"""The vocabulary of refusals: each member's facts, and that every refusal a stage or the
operator's tools can answer with is one of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tradepit
from tradepit.domain.events import CancelRejected, Rejected, RejectReason, ReplaceRejected
from tradepit.domain.refusals import Refusal
from tradepit.gateway.errors import ApiError, alpaca_code
from tradepit.gateway.service import ledger_error
from tradepit.stage.messages import Reply

SOURCE = Path(tradepit.__file__).parent
# The classes a refusal is raised as, by the names its raisers use.
REFUSAL_ERRORS = {"RefusalError", "LedgerError", "AdminError"}
# The events that carry a matcher's refusal, and the position of `reason` among their fields.
REJECTIONS = {
    kind.__name__: kind.__struct_fields__.index("reason")
    for kind in (Rejected, CancelRejected, ReplaceRejected)
}
STAGE_OF_THOUSAND = {1: "gateway", 2: "ledger", 3: "matcher", 4: "operator"}


def test_codes_and_numbers_are_unique() -> None:
    codes = [refusal.value for refusal in Refusal]
    numbers = [refusal.number for refusal in Refusal]
    assert len(set(codes)) == len(codes)
    assert len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("refusal", list(Refusal), ids=str)
def test_a_refusal_has_a_stage_a_client_error_and_words(refusal: Refusal) -> None:
    assert refusal.number // 1000 in STAGE_OF_THOUSAND
    assert 400 <= refusal.status < 500
    assert refusal.message
    assert refusal.value == refusal.value.lower() and " " not in refusal.value


def test_a_member_is_its_wire_code() -> None:
    assert Refusal.INSUFFICIENT_BUYING_POWER == "insufficient_buying_power"
    assert f"{Refusal.HALTED}" == str(Refusal.HALTED) == "halted"
    assert Refusal.of("unknown_order") is Refusal.UNKNOWN_ORDER
    assert Refusal.of("no_such_code") is None


def test_every_matcher_reason_is_a_refusal() -> None:
    for reason in RejectReason:
        assert Refusal.of(reason) is not None, reason


def _calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)]


def _name(function: ast.expr) -> str:
    if isinstance(function, ast.Attribute):
        return function.attr  # admin.AdminError
    return function.id if isinstance(function, ast.Name) else ""


def _member_of(node: ast.expr, enum: str) -> str | None:
    """The member `node` names as `Enum.MEMBER`, or None if it is anything else."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == enum else None
    return None


def test_every_refusal_raised_names_a_member() -> None:
    """Walk the source: whoever raises a refusal names a `Refusal` member, never a string."""
    raised: set[str] = set()
    for path in sorted(SOURCE.rglob("*.py")):
        for call in _calls(path):
            if _name(call.func) not in REFUSAL_ERRORS:
                continue
            where = f"{path.relative_to(SOURCE)}:{call.lineno}"
            assert call.args, where
            member = _member_of(call.args[0], "Refusal")
            if member is None:
                # Only a reply's code, looked up on the enum first, may be passed along.
                assert isinstance(call.args[0], ast.Name), where
                continue
            assert member in Refusal.__members__, where
            raised.add(member)
    # The walk found the ledger's, the stage's and the operator's refusals.
    assert {"INSUFFICIENT_BUYING_POWER", "ORDER_PENDING", "INVALID_REQUEST"} <= raised


def test_every_rejection_the_matcher_emits_carries_a_reject_reason() -> None:
    """The matcher's rejections take their reason from `RejectReason` (a variable holding one,
    which mypy checks, or a member named in place), never a string literal."""
    found = 0
    for path in sorted((SOURCE / "matcher").rglob("*.py")):
        for call in _calls(path):
            position = REJECTIONS.get(_name(call.func))
            if position is None:
                continue
            found += 1
            where = f"{path.relative_to(SOURCE)}:{call.lineno}"
            reason = call.args[position] if len(call.args) > position else None
            assert reason is not None, where
            assert not isinstance(reason, ast.Constant), where
            if isinstance(reason, ast.Attribute):
                assert _member_of(reason, "RejectReason") in RejectReason.__members__, where
    assert found >= 5


# The answers the gateway gave for the codes it knew before the enum (service.py's table).
BEFORE = {
    "insufficient_buying_power": (403, "insufficient buying power"),
    "insufficient_shares": (403, "insufficient qty available for order"),
    "insufficient_funds": (403, "insufficient funds"),
    "unknown_symbol": (404, "asset not found"),
    "unknown_order": (404, "order not found"),
    "unknown_account": (403, "account not found"),
    "duplicate_client_order_id": (422, "client_order_id must be unique"),
    "order_pending": (422, "order has a cancel or replace pending"),
}


@pytest.mark.parametrize("code", sorted(BEFORE))
def test_the_gateway_answers_a_known_code_as_before(code: str) -> None:
    status, message = BEFORE[code]
    error = ledger_error(Reply(1, False, code, ""))
    assert (error.status, error.message, error.code) == (status, message, alpaca_code(status))


def test_only_details_that_read_well_reach_the_client() -> None:
    shares = ledger_error(Reply(1, False, "insufficient_shares", "needs 5 lots of AAA, has 3"))
    assert shares.message == "insufficient qty available for order: needs 5 lots of AAA, has 3"
    cash = ledger_error(Reply(1, False, "insufficient_buying_power", "needs 100 cents, has 0"))
    assert cash.message == "insufficient buying power"


def test_a_code_the_gateway_does_not_know_is_a_422_that_names_it() -> None:
    error = ledger_error(Reply(1, False, "a_newer_ledgers_code", "why"))
    assert (error.status, error.message) == (422, "a_newer_ledgers_code")


@pytest.mark.parametrize("refusal", list(Refusal), ids=str)
def test_every_refusal_answers_with_its_status(refusal: Refusal) -> None:
    error = ApiError.refused(refusal, "detail")
    assert error.status == refusal.status
    assert error.message.startswith(refusal.message)

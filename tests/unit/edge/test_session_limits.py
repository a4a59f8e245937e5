"""The command limits (smtp/command_limits.py) and the bytes in flight budget (smtp/data_budget.py), as pure
objects; tests/e2e/test_session_limits.py has them on a real edge."""

from __future__ import annotations

import pytest

from smtp_edge.config import EdgeSettings
from smtp_edge.smtp.command_limits import INVALID, CommandBudget
from smtp_edge.smtp.data_budget import DataBudget, declared_size


def test_each_command_has_its_own_count_and_rcpt_its_own_limit() -> None:
    budget = CommandBudget(max_commands=3, max_rcpt=5)
    assert all(budget.spend("NOOP") for _ in range(3))
    assert all(budget.spend("RCPT") for _ in range(5))
    assert all(budget.spend(INVALID) for _ in range(3))
    assert not budget.spend("NOOP")
    assert not budget.spend("RCPT")
    assert budget.spend("RSET")


def test_a_message_forgives_every_count_and_quit_is_never_counted() -> None:
    budget = CommandBudget(max_commands=2, max_rcpt=2)
    for _ in range(10):  # ten messages, each with its NOOP, RSET and recipients: never over
        assert budget.spend("NOOP") and budget.spend("RSET") and budget.spend("RCPT") and budget.spend("RCPT")
        budget.message_received()
    assert all(budget.spend("QUIT") for _ in range(10))


def test_a_reservation_takes_what_is_free_and_gives_it_all_back() -> None:
    budget = DataBudget(100)
    first, second = budget.reservation(), budget.reservation()
    assert first.reserve(40)
    assert first.admit(30) and first.admit(20)  # 50 used: 10 past the 40 reserved, taken as it came
    assert budget.in_use == 50
    assert second.admit(50)
    assert not second.admit(1)  # nothing free: refused, and what it held is given back at once
    assert (second.held, budget.in_use) == (0, 50)
    assert not budget.reservation().reserve(51)
    first.release()
    assert budget.in_use == 0 and budget.free == 100


@pytest.mark.parametrize(
    ("options", "size"), [([], None), (["BODY=8BITMIME"], None), (["SIZE=1234", "SMTPUTF8"], 1234), (["size=7"], 7)]
)
def test_declared_size(options: list[str], size: int | None) -> None:
    assert declared_size(options) == size


def test_settings_refuse_limits_that_do_not_fit_together() -> None:
    with pytest.raises(ValueError, match="MAX_RCPT_WITHOUT_MESSAGE"):
        EdgeSettings(max_recipients=200, max_rcpt_without_message=100)
    with pytest.raises(ValueError, match="DATA_BYTES_IN_FLIGHT_LIMIT"):
        EdgeSettings(message_size_limit=30_000_000, data_bytes_in_flight_limit=20_000_000)
    assert EdgeSettings().data_bytes_in_flight_limit >= EdgeSettings().message_size_limit

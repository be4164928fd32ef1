"""Each action on an alert belongs to the life of it that stood when the officer took it (dashboards/webapp.py
_actions_labelled, migration 010's alert_status): an alert withdrawn by a late event and raised again under the
same id (docs/rules.md "Late and out-of-order events") has one life per raise, and an action that lands between a
withdrawal and the next raise was sent from a snapshot still showing the withdrawn life."""

from __future__ import annotations

from pvwatch.dashboards.webapp import _actions_labelled

ALERT = "5f4e3011-3f87-5ff7-bca9-aa763c733565"


def at(hhmm: str) -> str:
    return f"2026-11-30T{hhmm}:00+00:00"


def acted(action: str, hhmm: str) -> dict[str, str]:
    return {"alert_id": ALERT, "action": action, "actor": "olivia", "acted_at": at(hhmm)}


def life(raised: str, withdrawn: str) -> dict[str, str]:
    """A withdrawn life as ReadModel.withdrawn_alerts lists it: the message's raised_at and the withdrawal's time."""
    return {"alert_id": ALERT, "rule_id": "flare-after-taper", "severity": "warning", "raised_at": at(raised),
            "withdrawn_at": at(withdrawn)}


def test_an_action_landing_before_the_second_life_was_raised_is_on_the_first_even_after_a_second_withdrawal():
    # raised 09:00, closed 09:10, withdrawn 10:00; a late acknowledgement of the first life lands 10:02; raised
    # again 11:00 and withdrawn again 12:00 with no action; raised a third time 13:00 and assigned 13:10
    history = [acted("close", "09:10"), acted("acknowledge", "10:02"), acted("assign", "13:10")]
    standing = [{"alert_id": ALERT, "rule_id": "flare-after-taper", "severity": "warning", "raised_at": at("13:00")}]
    labelled = _actions_labelled(history, standing, [life("11:00", "12:00"), life("09:00", "10:00")])
    assert [(row["action"], row["withdrawn_at"]) for row in labelled] == [
        ("close", at("10:00")), ("acknowledge", at("10:00")), ("assign", None)]
    # the same after the third life was withdrawn too: the late acknowledgement stays on the first life
    labelled = _actions_labelled(history, [], [life("11:00", "12:00"), life("09:00", "10:00"),
                                               life("13:00", "14:00")])
    assert [row["withdrawn_at"] for row in labelled] == [at("10:00"), at("10:00"), at("14:00")]

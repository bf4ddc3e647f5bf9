"""Provisioning waits until the broker lists what it created (a freshly started broker may not)."""

from __future__ import annotations

import pytest

from shared.runtime.provisioning import _wait_until_listed


class SlowBroker:
    """Lists the created topics only from the ``visible_after``-th metadata request on."""

    def __init__(self, names: set[str], visible_after: int) -> None:
        self.names, self.visible_after, self.calls = names, visible_after, 0

    def list_topics(self) -> list[str]:
        self.calls += 1
        return ["other", *self.names] if self.calls >= self.visible_after else ["other"]


def test_provisioning_returns_only_once_every_created_topic_is_listed() -> None:
    broker = SlowBroker({"a", "b"}, visible_after=3)
    _wait_until_listed(broker, {"a", "b"}, timeout_s=10)
    assert broker.calls == 3


def test_topics_never_listed_are_a_timeout_naming_how_many() -> None:
    with pytest.raises(TimeoutError, match="2 created topics not listed"):
        _wait_until_listed(SlowBroker({"a", "b"}, visible_after=10**6), {"a", "b"}, timeout_s=0.3)

"""Startup checks: partition counts from the broker agree across a service's topics; a taken web port
is named. Pure parts, without a broker (the real-broker side is tests/integration/test_startup.py)."""

from __future__ import annotations

import socket

import pytest

from shared.runtime.startup import EXIT_CONFIG, StartupError, Topology, check_partitions, check_port_free

IN, OUT, DLQ, LOG = "ns.in", "ns.out", "ns.dead", "app-trajectories-changelog"


def test_the_input_count_is_the_count_of_every_topic() -> None:
    assert check_partitions({IN: 24, OUT: 24, DLQ: 24, LOG: 24}, IN, [OUT, DLQ], [LOG]) == 24


def test_a_missing_changelog_is_fine_faust_creates_it_with_the_input_count() -> None:
    assert check_partitions({IN: 24, OUT: 24, LOG: None}, IN, [OUT], [LOG]) == 24


def test_a_changelog_that_disagrees_names_both_topics_and_counts() -> None:
    with pytest.raises(StartupError) as err:
        check_partitions({IN: 24, OUT: 24, LOG: 12}, IN, [OUT], [LOG])
    message = str(err.value)
    assert f"'{IN}' has 24 partitions" in message
    assert f"'{LOG}' has 12 partitions" in message
    assert err.value.exit_code == EXIT_CONFIG


def test_every_disagreeing_or_missing_output_is_listed_at_once() -> None:
    with pytest.raises(StartupError) as err:
        check_partitions({IN: 3, OUT: 12, DLQ: None}, IN, [OUT, DLQ], [])
    assert f"'{OUT}' has 12 partitions" in str(err.value)
    assert f"'{DLQ}' does not exist" in str(err.value)
    assert "rapport topics apply --partitions 3" in str(err.value)


def test_a_missing_input_topic_says_to_provision() -> None:
    with pytest.raises(StartupError, match=r"input topic 'ns.in' does not exist.*rapport topics apply"):
        check_partitions({IN: None}, IN, [], [])


def test_topology_names_namespace_the_topics_and_name_changelogs_by_app_id() -> None:
    topology = Topology(input="rapport.a.v1", outputs=("rapport.b.v1",), tables=("trajectories",))
    assert topology.names("t1.", "monitor-x") == (
        "t1.rapport.a.v1",
        ("t1.rapport.b.v1",),
        ("monitor-x-trajectories-changelog",),
    )


def test_a_taken_web_port_is_named_with_its_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as err:
            check_port_free("127.0.0.1", port, "RAPPORT_SCORING_WEB_PORT")
    assert f"web port {port}" in str(err.value)
    assert "already in use" in str(err.value) and "RAPPORT_SCORING_WEB_PORT" in str(err.value)


def test_a_free_web_port_passes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check_port_free("127.0.0.1", port, "X")

"""Replaying dead letters after a fix: re-publish selected dead letters' original records to their
source topic and record each replay in the ledger topic (``rapport.dead-letter-replays.v1``).

Order per original record: publish it (await the broker's ack), then publish one ledger record per
dead letter it answers (await). A crash in between leaves a replayed record without a ledger entry;
running the replay again re-publishes it, which downstream stages absorb (derived ids are
deterministic, a redelivered session changes nothing). The reverse order could record a replay that
never happened, which would lose the record.

Selection is pure (:func:`select`); only :func:`read_topic` and :func:`replay` touch Kafka.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.contracts.events import DeadLetter, DeadLetterReplayed, derive_id, utc_now
from shared.contracts.topics import DEAD_LETTER, DEAD_LETTER_REPLAYS, topic_name
from shared.runtime.provisioning import producer_config

#: Header on every re-published record: the id of the dead letter it replays.
REPLAY_HEADER = "rapport-replay-of"

Coordinates = tuple[str, int, int]


@dataclass(frozen=True)
class Ledger:
    """What earlier replays did: the dead letters replayed, and where their records went."""

    replayed: frozenset[str] = frozenset()
    """Ids of dead letters already replayed."""
    outputs: frozenset[Coordinates] = frozenset()
    """(topic, partition, offset) of every record a replay published."""

    @classmethod
    def of(cls, records: Iterable[DeadLetterReplayed]) -> Ledger:
        """The ledger of the given replay records."""
        entries = list(records)
        return cls(
            frozenset(str(r.dead_letter_id) for r in entries),
            frozenset((r.replayed_topic, r.replayed_partition, r.replayed_offset) for r in entries),
        )


@dataclass(frozen=True)
class Selection:
    """Dead letters chosen for replay, grouped by original record, and why others were left."""

    groups: dict[Coordinates, list[DeadLetter]]
    skipped: Counter[str] = field(default_factory=Counter)
    """``already_replayed``, ``failed_after_replay``, ``truncated``, ``not_selected``."""

    @property
    def letters(self) -> int:
        """How many dead letters the selection covers."""
        return sum(len(g) for g in self.groups.values())


def select(
    letters: Iterable[DeadLetter],
    ledger: Ledger,
    *,
    reasons: Sequence[str],
    stages: Sequence[str] = (),
    source_topics: Sequence[str] = (),
    again: bool = False,
) -> Selection:
    """Choose the dead letters to replay: matching ``reasons`` (and ``stages`` / ``source_topics``
    when given); never one whose original was cut short (it cannot be re-published whole); unless
    ``again``, never one already replayed nor one of a record a replay published (it failed again).

    Dead letters of the same original record (two bad surveys of one session) form one group: the
    record is published once.
    """
    groups: dict[Coordinates, list[DeadLetter]] = {}
    skipped: Counter[str] = Counter()
    for letter in letters:
        where = (letter.original_topic, letter.original_partition, letter.original_offset)
        if (
            letter.reason not in reasons
            or (stages and letter.stage not in stages)
            or (source_topics and letter.original_topic not in source_topics)
        ):
            skipped["not_selected"] += 1
        elif letter.original_value_truncated:
            skipped["truncated"] += 1
        elif not again and str(letter.id) in ledger.replayed:
            skipped["already_replayed"] += 1
        elif not again and where in ledger.outputs:
            skipped["failed_after_replay"] += 1
        else:
            group = groups.setdefault(where, [])
            if all(existing.id != letter.id for existing in group):  # a redelivered dead letter
                group.append(letter)
    return Selection(groups, skipped)


def replay_record(
    letter: DeadLetter, topic: str, partition: int, offset: int, now: datetime
) -> DeadLetterReplayed:
    """The ledger record saying ``letter``'s original was re-published at ``topic/partition/offset``."""
    return DeadLetterReplayed(
        id=derive_id(letter.id, "replayed"),
        time=now,
        dead_letter_id=letter.id,
        stage=letter.stage,
        reason=letter.reason,
        original_topic=letter.original_topic,
        original_partition=letter.original_partition,
        original_offset=letter.original_offset,
        replayed_topic=topic,
        replayed_partition=partition,
        replayed_offset=offset,
    )


def read_topic(bootstrap_servers: str, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Every record of ``topic`` from its beginning up to its end as of now (bounded by
    ``timeout_s``; raises ``TimeoutError`` if the end is not reached)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="rapport-dead-letters",
        group_id=None,
        enable_auto_commit=False,
    )
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise LookupError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout_s:.0f}s")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(r for r in batch if r.offset < end[TopicPartition(r.topic, r.partition)])
        return records
    finally:
        consumer.close()


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did (or, on a dry run, would do)."""

    selection: Selection
    undecodable: int
    published: int
    """Original records re-published."""
    recorded: int
    """Ledger records written."""
    by_reason: Counter[str]


def replay(
    bootstrap_servers: str,
    *,
    reasons: Sequence[str],
    namespace: str = "",
    stages: Sequence[str] = (),
    source_topics: Sequence[str] = (),
    again: bool = False,
    dry_run: bool = False,
    limit: int | None = None,
    timeout_s: float = 60.0,
) -> ReplayResult:
    """Replay the selected dead letters of ``namespace``'s dead-letter topic (see :func:`select`)
    to their source topics; ``limit`` caps the original records published in this run."""
    from kafka import KafkaProducer

    ledger_topic = topic_name(DEAD_LETTER_REPLAYS, namespace)
    ledger = Ledger.of(
        DeadLetterReplayed.model_validate_json(r.value)
        for r in read_topic(bootstrap_servers, ledger_topic, timeout_s)
        if r.value is not None
    )
    letters: list[DeadLetter] = []
    undecodable = 0
    for record in read_topic(bootstrap_servers, topic_name(DEAD_LETTER, namespace), timeout_s):
        try:
            letters.append(DeadLetter.model_validate_json(record.value))
        except (ValidationError, TypeError):
            undecodable += 1
    selection = select(
        letters, ledger, reasons=reasons, stages=stages, source_topics=source_topics, again=again
    )
    groups = list(selection.groups.items())[: limit if limit is not None else None]
    by_reason: Counter[str] = Counter(letter.reason for _, group in groups for letter in group)
    if dry_run or not groups:
        return ReplayResult(selection, undecodable, 0, 0, by_reason)

    producer = KafkaProducer(**{**producer_config(bootstrap_servers), "client_id": "rapport-dead-letters"})
    published = recorded = 0
    try:
        for (topic, _partition, _offset), group in groups:
            first = group[0]
            key = base64.b64decode(first.original_key_b64) if first.original_key_b64 is not None else None
            headers = [(REPLAY_HEADER, str(letter.id).encode()) for letter in group]
            meta = producer.send(
                topic, key=key, value=base64.b64decode(first.original_value_b64), headers=headers
            ).get(timeout=timeout_s)
            published += 1
            now = utc_now()
            acks = [
                producer.send(
                    ledger_topic,
                    key=str(letter.id).encode(),
                    value=replay_record(letter, topic, meta.partition, meta.offset, now)
                    .model_dump_json()
                    .encode(),
                )
                for letter in group
            ]
            for ack in acks:
                ack.get(timeout=timeout_s)
                recorded += 1
    finally:
        producer.flush(timeout=timeout_s)
        producer.close(timeout=10)
    return ReplayResult(selection, undecodable, published, recorded, by_reason)

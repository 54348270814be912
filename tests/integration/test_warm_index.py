"""The warm subscriber index never misses (or keeps) a subscriber a fresh full load would match (or drop):
random inserts, moves, channel changes, stops and restarts, committed in random order, on SQLite and PostgreSQL."""

from __future__ import annotations

import random

import pytest
import shapely
import sqlalchemy as sa
from sqlalchemy.orm import Session

from broadcast.subscribers import targeting, warm
from broadcast.subscribers.models import Subscriber
from geo import boundaries

pytestmark = pytest.mark.integration

PALU_DESA = [c for c, _ in boundaries.descendants("72.71", "desa_kelurahan")[:12]]
CODES = [*PALU_DESA, "72.71", "72.71.01", "72.03", "72.03.04", "33.15", "33.15.01.2001", ""]
TARGETS = [
    targeting.TargetSpec(("72.71",), None),
    targeting.TargetSpec(("72.03", "33.15"), None),
    targeting.TargetSpec((), shapely.box(119.80, -0.95, 119.90, -0.85)),
    targeting.TargetSpec(("72.71.01",), shapely.Point(119.87, -0.90).buffer(0.03)),
]
SCOPES = [None, "72.71", "33.15"]


def _random_fields(rng: random.Random) -> dict[str, object]:
    point = rng.random() < 0.6
    return {
        "lon": rng.uniform(119.70, 120.00) if point else None,
        "lat": rng.uniform(-1.00, -0.75) if point else None,
        "admin_code": rng.choice(CODES) or None,
        "language": rng.choice(["id", "en"]),
        "channels": rng.choice([["sms"], ["sms", "social"], ["social"], []]),
    }


def _insert(s: Session, rng: random.Random, n: int, prefix: str = "+62812") -> None:
    rows = [{"phone": f"{prefix}{rng.randrange(10**8):08d}", "active": True, **_random_fields(rng)} for _ in range(n)]
    taken = set(s.scalars(sa.select(Subscriber.phone)))
    rows = [r for r in {r["phone"]: r for r in rows}.values() if r["phone"] not in taken]
    if rows:
        s.execute(sa.insert(Subscriber), rows)


def _change(s: Session, rng: random.Random, writer: int = 0) -> None:
    """One random insert, move, channel change, stop or restart (the ORM path, as the services write). Two
    writers at once touch disjoint rows (even and odd ids, their own phone prefixes), so neither waits."""
    ids = [i for i in s.scalars(sa.select(Subscriber.id)) if i % 2 == writer]
    kind = rng.choice(["insert", "move", "channels", "stop", "restart"])
    if kind == "insert" or not ids:
        _insert(s, rng, rng.randint(1, 3), prefix=f"+6281{2 + writer}")
        return
    sub = s.get(Subscriber, rng.choice(ids))
    assert sub is not None
    fields = _random_fields(rng)
    if kind == "move":
        sub.lon, sub.lat, sub.admin_code = fields["lon"], fields["lat"], fields["admin_code"]  # type: ignore[assignment]
    elif kind == "channels":
        sub.channels, sub.language = fields["channels"], fields["language"]  # type: ignore[assignment]
    else:
        sub.active = kind == "restart"


def _expected(s: Session) -> targeting.SubscriberArrays:
    return targeting.load_subscribers(s)


def _assert_same(found: targeting.SubscriberSet, fresh: targeting.SubscriberArrays) -> None:
    for target in TARGETS:
        want, got = fresh.match(target), found.match(target)
        assert got.tolist() == want.tolist(), f"{target}: missing {set(want) - set(got)}, extra {set(got) - set(want)}"
        for scope in SCOPES:
            assert targeting.count_per_channel(found, target, jurisdiction=scope) == targeting.count_per_channel(
                fresh, target, jurisdiction=scope
            )
            ids = fresh.within(want, scope)
            assert found.within(want, scope).tolist() == ids.tolist()
            for channel in targeting.personal_channels():
                assert found.on_channel(ids, channel).tolist() == fresh.on_channel(ids, channel).tolist()
        assert isinstance(found, warm.Snapshot)
        assert list(found.batches(want, batch_size=7)) == list(fresh.batches(want, batch_size=7))


@pytest.mark.parametrize("seed", [1, 2])
def test_warm_index_matches_a_fresh_load_after_random_changes(engine, monkeypatch, seed):
    monkeypatch.setattr(warm, "MERGE_MIN", 8)  # merge the delta into the base now and then
    rng = random.Random(seed)
    with Session(engine) as s:
        _insert(s, rng, 300)
        s.commit()
    index = warm.WarmIndex(engine)
    assert index.snapshot().size == _expected(Session(engine)).size
    for _ in range(12):
        # Two writers at once, committing in random order (on PostgreSQL the later transaction id may commit
        # first: the index must still pick up the other one).
        first, second = Session(engine), Session(engine)
        _change(first, rng)
        first.flush()
        if engine.dialect.name == "postgresql":
            _change(second, rng, writer=1)
            second.flush()
        order = [first, second]
        rng.shuffle(order)
        order[0].commit()
        with Session(engine) as reader:
            _assert_same(index.snapshot(), _expected(reader))
        order[1].commit()
        first.close()
        second.close()
        with Session(engine) as reader:
            _assert_same(index.snapshot(), _expected(reader))
    assert index.loads == 1 and index.merges >= 1


def test_a_sessions_own_uncommitted_changes_count_for_it_alone(engine):
    rng = random.Random(3)
    with Session(engine) as s:
        _insert(s, rng, 50)
        s.commit()
    index = warm.WarmIndex(engine)
    before = index.snapshot().size
    with Session(engine) as s:
        s.add(Subscriber(phone="+6281299999999", admin_code="72.71.01.1004", channels=["sms"]))
        stopped = s.scalars(sa.select(Subscriber).where(Subscriber.active.is_(True)).limit(1)).one()
        stopped.active = False
        s.flush()
        mine = index.snapshot(s)
        _assert_same(mine, _expected(s))
        assert mine.size == before  # one more, one fewer
        s.rollback()
    after = index.snapshot()
    with Session(engine) as reader:
        _assert_same(after, _expected(reader))
    assert after.size == before


def test_a_new_subscriber_is_counted_on_the_next_use_without_a_full_load(engine):
    index = warm.index_for(engine)
    with Session(engine) as s:
        palu = targeting.TargetSpec(("72.71",), None)
        assert targeting.count_per_channel(index.snapshot(), palu)["any"] == 0
        s.add(Subscriber(phone="+6281211111111", admin_code="72.71.01.1004", channels=["sms"]))
        s.commit()
        assert targeting.count_per_channel(index.snapshot(), palu)["sms"] == 1
        s.execute(sa.update(Subscriber).values(active=False))
        s.commit()
        assert targeting.count_per_channel(index.snapshot(), palu)["any"] == 0
    assert index.loads == 1
    assert warm.index_for(engine) is index


def test_every_write_stamps_a_version_the_index_reads_again(engine):
    index = warm.WarmIndex(engine)
    index.snapshot()
    floor, pending = index.mark
    with Session(engine) as s:
        s.add(Subscriber(phone="+6281222222222", admin_code="72.71"))
        s.commit()
        inserted = s.scalar(sa.select(Subscriber.version))
        s.execute(sa.update(Subscriber).values(language="en"))
        s.commit()
        updated = s.scalar(sa.select(Subscriber.version))
    assert inserted is not None and (inserted >= floor or inserted in pending)
    assert updated is not None and updated > inserted


def _in_child(engine, palu, out):  # type: ignore[no-untyped-def]
    index = warm.index_for(engine)
    snap = index.snapshot()
    out.put((index.loads, index.pid, index._base.arrays.ids.ctypes.data, targeting.count_per_channel(snap, palu)))


def test_a_forked_child_shares_the_parents_arrays_and_reads_what_changed_since(engine):
    """A pool process forked after the worker loaded the index keeps the parent's arrays (no load of its own)
    and still counts a subscriber added after the parent's load and drops one stopped since."""
    import multiprocessing

    rng = random.Random(5)
    with Session(engine) as s:
        _insert(s, rng, 60)
        s.commit()
    index = warm.index_for(engine)
    index.snapshot()
    palu = targeting.TargetSpec(("72.71",), None)
    with Session(engine) as s:
        s.add(Subscriber(phone="+6281233333333", admin_code="72.71.01.1004", channels=["sms"]))
        stopped = s.scalars(
            sa.select(Subscriber).where(Subscriber.active.is_(True), Subscriber.admin_code.like("72.71%")).limit(1)
        ).one()
        stopped.active = False
        s.commit()
        want = targeting.count_per_channel(_expected(s), palu)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_in_child, args=(engine, palu, out))
    child.start()
    loads, pid, data, counts = out.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert pid == child.pid and loads == 0  # taken over, not loaded again
    assert data == index._base.arrays.ids.ctypes.data  # the same pages, shared copy-on-write
    assert counts == want
    # The parent's own connection survived the child (a child closing it would end the parent's session).
    assert targeting.count_per_channel(index.snapshot(), palu) == want
    assert index.loads == 1

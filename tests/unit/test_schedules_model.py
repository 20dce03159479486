"""The schedule model: DST in Europe/Berlin and America/New_York (examples and properties),
intervals, start/end, the missed-run policies and field validation."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeq.schedules import Schedule, ScheduleError, from_spec, plan
from kubeq.schedules_time import fires_after, fires_between

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(tz: ZoneInfo, *parts: int) -> int:
    return int(datetime(*parts, tzinfo=tz).timestamp())  # type: ignore[misc]


def local(ts: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%m-%d %H:%M%z")


def walk(s: Schedule, after: int, n: int) -> list[int]:
    out = []
    for ts in fires_after(s.timing, after):
        out.append(ts)
        if len(out) == n:
            break
    return out


def test_skipped_0230_runs_once_at_0300_in_berlin() -> None:
    s = Schedule("d", "t", cron="30 2 * * *", timezone="Europe/Berlin")
    got = [local(t, BERLIN) for t in walk(s, at(BERLIN, 2026, 3, 28, 12), 2)]
    assert got == ["03-29 03:00+0200", "03-30 02:30+0200"]


def test_skipped_0230_is_skipped_by_policy() -> None:
    s = Schedule("d", "t", cron="30 2 * * *", timezone="Europe/Berlin", dst_gap="skip")
    got = [local(t, BERLIN) for t in walk(s, at(BERLIN, 2026, 3, 28, 12), 1)]
    assert got == ["03-30 02:30+0200"]


def test_many_skipped_times_run_once() -> None:
    s = Schedule("d", "t", cron="*/15 2 * * *", timezone="Europe/Berlin")
    day = at(BERLIN, 2026, 3, 29, 0)
    got = [local(t, BERLIN) for t in fires_between(s.timing, day, day + 86400 - 3600, 50)]
    assert got == ["03-29 03:00+0200"]


def test_repeated_0130_runs_once_in_new_york() -> None:
    s = Schedule("d", "t", cron="30 1 * * *", timezone="America/New_York")
    got = [local(t, NEW_YORK) for t in walk(s, at(NEW_YORK, 2026, 10, 31, 12), 2)]
    assert got == ["11-01 01:30-0400", "11-02 01:30-0500"]


def test_daily_9am_keeps_wall_clock_across_both_transitions() -> None:
    s = Schedule("d", "t", cron="0 9 * * 1", timezone="Europe/Berlin")
    got = {local(t, BERLIN)[-10:] for t in walk(s, at(BERLIN, 2026, 1, 1), 60)}
    assert got == {"09:00+0100", "09:00+0200"}


def test_interval_counts_real_time_through_dst() -> None:
    start = at(NEW_YORK, 2026, 11, 1, 0)
    s = Schedule("i", "t", every=3600, timezone="America/New_York", start=start)
    got = walk(s, start - 1, 5)
    assert [b - a for a, b in itertools.pairwise(got)] == [3600] * 4
    assert got[0] == start


def test_start_and_end_bound_the_runs() -> None:
    start, end = 1_800_000_000, 1_800_000_000 + 600
    s = Schedule("b", "t", cron="* * * * *", start=start, end=end)
    got = fires_between(s.timing, 0, end + 3600, 100)
    assert got[0] >= start and got[-1] <= end and len(got) == 11
    assert s.next_fire(end) is None


def fake_clock_runs(s: Schedule, begin: int, end: int, step: int) -> list[int]:
    """Fire the schedule as a poller would, every ``step`` seconds of a fake clock."""
    due = s.next_fire(begin)
    runs: list[int] = []
    now = begin
    while now < end and due is not None:
        now += step
        if due <= now:
            p = plan(s, due, now)
            runs += p.runs
            due = p.next_due
    return runs


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        (BERLIN, (2026, 3, 29)),
        (BERLIN, (2026, 10, 25)),
        (NEW_YORK, (2026, 3, 8)),
        (NEW_YORK, (2026, 11, 1)),
    ],
)
def test_fake_clock_through_a_transition_runs_each_hour_once(
    tz: ZoneInfo, day: tuple[int, int, int]
) -> None:
    s = Schedule("h", "t", cron="30 * * * *", timezone=str(tz))
    begin = at(tz, *day, 0)
    runs = fake_clock_runs(s, begin, begin + 6 * 3600, 7)
    assert len(runs) == len(set(runs))
    walls = [datetime.fromtimestamp(r, tz).strftime("%H:%M") for r in runs]
    assert len(walls) == len(set(walls)), f"a wall-clock time ran twice: {walls}"
    assert walls[0] == "00:30"
    assert all(w.endswith(":30") or w.endswith(":00") for w in walls)


def test_missed_policies_after_an_outage() -> None:
    base = {"id": "m", "task": "t", "cron": "* * * * *", "catch_up": 5, "grace": 30.0}
    due, now = 1_800_000_000, 1_800_000_000 + 3600  # an hour of minutes missed
    assert plan(Schedule(**base, missed="skip"), due, now).runs == (now,)  # type: ignore[arg-type]
    once = plan(Schedule(**base, missed="run_once"), due, now)  # type: ignore[arg-type]
    assert once.runs == (now - 60, now) and once.next_due == now + 60
    all_ = plan(Schedule(**base, missed="run_all"), due, now)  # type: ignore[arg-type]
    assert all_.runs == tuple(range(now - 240, now + 1, 60))


@pytest.mark.parametrize(
    ("kw", "field_name"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * *", "every": 5}, "cron"),
        ({"every": 0}, "every"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "* * * * *", "overlap": "queue"}, "overlap"),
        ({"cron": "* * * * *", "missed": "all"}, "missed"),
        ({"cron": "* * * * *", "start": 10, "end": 5}, "end"),
        ({"cron": "* * * * *", "jitter": -1}, "jitter"),
        ({"cron": "* * * * *", "catch_up": 0}, "catch_up"),
    ],
)
def test_bad_fields_are_named(kw: dict[str, object], field_name: str) -> None:
    with pytest.raises(ScheduleError) as e:
        Schedule("x", "t", **kw)  # type: ignore[arg-type]
    assert e.value.field == field_name


def test_spec_errors_name_the_spec_path() -> None:
    with pytest.raises(ScheduleError, match=r"spec.schedules\[2\].timezone: 'Berlin'"):
        from_spec(
            {"name": "a", "task": "t", "cron": "* * * * *", "timezone": "Berlin"},
            "spec.schedules[2]",
            default_queue="q",
            owner="o",
        )
    with pytest.raises(ScheduleError, match=r"spec.schedules\[0\].jitterSeconds"):
        from_spec(
            {"name": "a", "task": "t", "every": 5, "jitterSeconds": "x"},
            "spec.schedules[0]",
            default_queue="q",
            owner="o",
        )


def test_json_round_trip_and_jitter_is_stable() -> None:
    s = Schedule(
        "r",
        "t",
        args=(1, "a"),
        kwargs={"k": 2},
        cron="0 9 * * *",
        jitter=30.0,
        timezone="Europe/Berlin",
        start="2026-01-01T00:00:00+01:00",
    )
    assert Schedule.from_json(s.to_json()) == s
    assert 0 <= s.jitter_of(100) < 30 and s.jitter_of(100) == s.jitter_of(100)


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]
CRONS = ["*/15 * * * *", "30 2 * * *", "0 * * * *", "30 1 * * *", "0 3 * * 0", "*/7 1-3 * * *"]


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    cron=st.sampled_from(CRONS),
    gap=st.sampled_from(["shift", "skip"]),
    start=st.integers(1_767_225_600, 1_830_297_600),  # 2026 and 2027
)
def test_dst_properties(zone: str, cron: str, gap: str, start: int) -> None:
    s = Schedule("p", "t", cron=cron, timezone=zone, dst_gap=gap)
    tz = ZoneInfo(zone)
    window = 3 * 86400
    fwd = [t for t in walk(s, start, 400) if t <= start + window]
    # increasing, each once, and the backward walk agrees with the forward one
    assert fwd == sorted(set(fwd))
    assert fires_between(s.timing, start, start + window, 1000) == fwd
    # every fire is a cron match on the wall clock, or (shift) the instant a gap ended
    walls = []
    for t in fwd:
        wall = datetime.fromtimestamp(t, tz).replace(tzinfo=None)
        jumped = (
            datetime.fromtimestamp(t - 1, tz).utcoffset()
            != datetime.fromtimestamp(t, tz).utcoffset()
        )
        assert croniter.match(cron, wall) or (gap == "shift" and jumped), (wall, t)
        walls.append(wall)
    # a repeated wall-clock time runs once
    assert len(walls) == len(set(walls))
    # every wall-clock match that exists in the window runs
    probe = datetime.fromtimestamp(start, tz).replace(tzinfo=None, second=0) + timedelta(minutes=1)
    end_wall = datetime.fromtimestamp(start + window, tz).replace(tzinfo=None)
    it = croniter(cron, probe - timedelta(minutes=1))
    while (m := it.get_next(datetime)) < end_wall - timedelta(hours=3):
        exists = (
            datetime.fromtimestamp(m.replace(tzinfo=tz).timestamp(), tz).replace(tzinfo=None) == m
        )
        if exists and m.replace(tzinfo=tz).timestamp() > start:
            assert m in walls, m


def test_a_run_exactly_grace_old_is_not_missed_when_more_were_late_than_caught_up() -> None:
    # found by test_plan_properties: 132 runs due in the outage, catch_up 1, and the last one
    # exactly grace (60 s) old at ``now``; it is on time, so 131 were missed, not 132
    s = Schedule("p", "t", cron="*/15 * * * *", timezone="Europe/Berlin", catch_up=1)
    due = s.next_fire(1_767_225_600)
    assert due is not None
    now = due + 131 * 900 + 60
    p = plan(s, due, now)
    assert p.missed == 131
    assert p.runs == (due + 131 * 900,)
    assert plan(s, due, now + 1).missed == 132  # one second later it is late too


@settings(max_examples=100, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    cron=st.sampled_from(CRONS),
    missed=st.sampled_from(["skip", "run_once", "run_all"]),
    catch_up=st.integers(1, 20),
    outage=st.integers(0, 5 * 86400),
    start=st.integers(1_767_225_600, 1_830_297_600),
)
def test_plan_properties(
    zone: str, cron: str, missed: str, catch_up: int, outage: int, start: int
) -> None:
    s = Schedule("p", "t", cron=cron, timezone=zone, missed=missed, catch_up=catch_up)
    due = s.next_fire(start)
    assert due is not None
    now = due + outage
    p = plan(s, due, now)
    everything = [due, *fires_between(s.timing, due, now, 10_000)]
    assert list(p.runs) == sorted(set(p.runs)) and set(p.runs) <= set(everything)
    assert p.next_due is not None and p.next_due > now
    late = [t for t in everything if now - t > s.grace]
    assert p.missed == len(late)
    if missed == "skip":
        assert all(now - t <= s.grace for t in p.runs)
    if missed == "run_once":
        assert sum(now - t > s.grace for t in p.runs) <= 1
    if missed == "run_all":
        assert list(p.runs) == everything[-catch_up:]

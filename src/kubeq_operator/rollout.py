"""The versions of a TaskQueue's workers (``spec.rollout.strategy: Versioned``): retire the
old ones, remove them once they hold no job or after ``maxDrainSeconds``, report them all.

One design serves every set of workers that rolls: the TaskQueue's own (a :class:`Track`
without a pool; ``status.versions``) and each Deployment-mode pool (a Track per pool, on the
pool's queues ``<queue>@<pool>``; ``status.pools[].versions``). The loop (loop.py), or the
pool's pass (pools.py), creates and scales the newest version's Deployment only
(versioned.py names it), without the jobs the old versions hold (``discount`` with the
track's ``load``). Each pass, this driver looks at the set's other Deployments (the old
versions):

1. once the newest version has a ready pod (or wants none), it marks every old version
   retired in Redis (``kubeq.store.versions``); their workers read that on their heartbeat,
   fetch nothing more and finish what they hold;
2. it sums the jobs each old version's workers hold (their published documents);
3. it deletes an old version's Deployment when that is 0 (at least ``RETIRE_SETTLE_SECONDS``
   after the mark, so every worker has read it) or when ``maxDrainSeconds`` has passed since
   the mark: its pods get SIGTERM and drain as in a rolling update, handing back what they
   still run;
4. it reports each version (``status.versions``, or the pool's ``versions``): its
   Deployment, replicas, in-flight jobs, state (``Current``; ``Retiring`` until its workers
   have all read the mark; ``Draining`` after), and the jobs pinned to it that wait and run.

Jobs pinned to a version (pinned.py) keep an old version: it is not removed while they wait,
and it is scaled to at least one pod for them; once it goes (``maxDrainSeconds``), or for a
version no Deployment runs, they are dead-lettered with the reason.

An old Deployment without a version (the TaskQueue rolled before) has no marker to read: it
is deleted once the newest version is ready, like a rolling update.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from kubeq.store import versions
from kubeq.store import workers as workerinfo
from kubeq.store.keys import QueueKeys
from kubeq_operator import kube, pinned
from kubeq_operator.reconcile import DeploymentView
from kubeq_operator.redis_source import RedisDown
from kubeq_operator.spec import TaskQueueSpec
from kubeq_operator.versioned import Load, version_of

if TYPE_CHECKING:
    from kubeq_operator.loop import TaskQueueLoop

RETIRE_SETTLE_SECONDS = 6.0
"""An old version is removed for holding no job only this long after it was retired: every
worker beats (and reads the mark) at least every 2 s, and publishes what it holds then."""

STEADY_READ_SECONDS = 10.0
"""With one version, the workers' documents are read this often (they are every worker's)."""

DOCS_REUSE_SECONDS = 1.0
"""The workers' documents read for one set are reused for the others within this (a pass)."""

FindViews = Callable[[], list[DeploymentView]]
Entries = list[dict[str, Any]]

log = logging.getLogger("kubeq_operator")


def current_version(spec: TaskQueueSpec | None) -> str | None:
    """The version the loop runs (None: the unversioned Deployment)."""
    return version_of(spec) if spec is not None and spec.rollout.versioned else None


def current(views: Iterable[DeploymentView], spec: TaskQueueSpec | None) -> DeploymentView | None:
    """The Deployment the loop creates and scales, among the TaskQueue's own."""
    want = current_version(spec)
    return next((v for v in views if v.version == want), None)


def load_by_version(docs: Iterable[Mapping[str, Any]], queues: set[str]) -> Load:
    """version -> (jobs held, running and prefetched, by its workers on ``queues``; how many
    of those workers hold any)."""
    out = Load()
    for doc in docs:
        version = doc.get("version")
        if not version or not queues.intersection(doc.get("queues") or ()):
            continue
        held = int(doc.get("busy") or 0) + int(doc.get("prefetched") or 0)
        jobs, workers = out.get(version, (0, 0))
        out[version] = (jobs + held, workers + (held > 0))
    return out


def due(held: int, age: float, max_drain: int | None) -> bool:
    """Whether a version retired ``age`` seconds ago, whose workers hold ``held`` jobs, goes."""
    if max_drain is not None and age >= max_drain:
        return True
    return held == 0 and age >= RETIRE_SETTLE_SECONDS


@dataclass
class Track:
    """One set of workers that rolls: the TaskQueue's own (``pool`` None) or one pool's."""

    pool: str | None = None
    load: Load = field(default_factory=Load)
    """What each version's workers hold, as last read (the scaling pass discounts it)."""
    entries: Entries = field(default_factory=list)
    """Its versions as last reported (kept while a pass fails)."""
    removed: set[str] = field(default_factory=set)
    """Deployments deleted here that the watch may still show."""
    read_at: float = -STEADY_READ_SECONDS

    @property
    def where(self) -> str:
        """How Events and logs name the set: ``pool <name>: `` or nothing."""
        return f"pool {self.pool}: " if self.pool else ""


def entry(view: DeploymentView, state: str, in_flight: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": view.version or "",
        "deployment": view.name,
        "replicas": view.replicas,
        "ready": view.ready,
        "state": state,
    }
    if in_flight is not None:
        out["inFlight"] = in_flight
    return out


class Versions:
    """The worker versions of one TaskQueue and of its pools (lives as long as its loop)."""

    def __init__(self, loop: TaskQueueLoop, find_views: FindViews) -> None:
        self.loop = loop
        self.find_views = find_views
        self.main = Track()
        self.pools: dict[str, Track] = {}
        self._docs: tuple[float, list[dict[str, Any]]] | None = None

    async def step(self) -> None:
        """The TaskQueue's own versions: retire, remove, write ``status.versions``."""
        loop, spec = self.loop, self.loop.spec
        if spec is None or (loop.body.get("metadata") or {}).get("deletionTimestamp"):
            return
        in_flight = loop.book.status.get("inFlight")
        entries = await self.attempt(self.main, self.step_versions(spec, self.main, in_flight))
        loop.versions_load = self.main.load
        if entries:
            loop.book.status["versions"] = entries
        else:
            loop.book.status.pop("versions", None)
        await loop.flush_status()

    def track(self, pool: str) -> Track:
        """The versions of ``pool`` (made on first use)."""
        return self.pools.setdefault(pool, Track(pool))

    def keep_pools(self, pools: Iterable[str]) -> None:
        """Forget the tracks of the pools not in ``pools`` (no longer in the spec)."""
        wanted = set(pools)
        self.pools = {k: v for k, v in self.pools.items() if k in wanted}

    async def step_pool(
        self, pspec: TaskQueueSpec, track: Track, views: list[DeploymentView], in_flight: Any
    ) -> Entries:
        """One pool's versions (``pspec``: the spec as the pool sees it); its entries."""
        return await self.attempt(track, self.step_versions(pspec, track, in_flight, views))

    async def attempt(self, track: Track, run: Coroutine[Any, Any, Entries]) -> Entries:
        """``run``'s entries, kept in ``track``; on trouble, logged or posted, the last ones."""
        loop = self.loop
        where = f"versions of {loop.namespace}/{loop.name}" + (
            f" pool {track.pool}" if track.pool else ""
        )
        try:
            track.entries = await run
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError, RedisDown) as e:
            log.warning("%s: %s", where, e)
        except Exception as e:
            if not kube.is_namespace_terminating(e):
                loop.logger.exception("%s failed", where)
                loop.event("Warning", "VersionError", f"{track.where}{type(e).__name__}: {e}")
        return track.entries

    async def step_versions(
        self,
        spec: TaskQueueSpec,
        track: Track | None = None,
        in_flight: Any = None,
        views: list[DeploymentView] | None = None,
    ) -> Entries:
        """Retire and remove ``track``'s old versions (default: the TaskQueue's own, from the
        watch); ``spec`` is the spec as its Deployments see it. Returns their entries."""
        track = track or self.main
        views = self.find_views() if views is None else views
        track.removed &= {v.name for v in views}
        views = [v for v in views if v.name not in track.removed]
        want = current_version(spec)
        new = current(views, spec)
        old = [v for v in views if v.version != want]
        client = await self.loop.source.client(spec)
        prefix = spec.redis.prefix
        live = {v.version for v in views if v.version} | ({want} if want else set())
        pins = await self.read_pins(client, spec, live)
        if not old:  # one version: nothing to retire
            if new is None or not spec.rollout.versioned:
                return []
            pinned.note(await self.read_load(spec, steady=True, track=track), pins, want)
            e = entry(new, "Current", in_flight)
            return [pinned.pins_for(e, pins.get(want or ""))]
        queues = [QueueKeys.of(q, prefix) for q in spec.physical_queues]
        ready = new is not None and (new.replicas == 0 or new.ready > 0)
        retire = [v.version for v in old if v.version] if ready else []
        retired = await versions.sync(client, queues, want, retire)
        load = await self.read_load(spec, track=track)
        pinned.note(load, pins, want)
        held = {v: jobs for v, (jobs, _) in load.items()}
        out = []
        if new is not None:
            out.append(
                pinned.pins_for(entry(new, "Current", held.get(want or "")), pins.get(want or ""))
            )
        now = time.time()
        for view in old:
            if view.version is None:  # no marker to read: replaced like a rolling update
                if ready:
                    await self.remove(view, queues, "the newest version is ready", track)
                else:
                    out.append(entry(view, "Replaced", None))
                continue
            n = held.get(view.version, 0)
            pins_of = pins.get(view.version, pinned.Pinned())
            at = retired.get(view.version)
            if at is None:
                out.append(pinned.pins_for(entry(view, "Retiring", n), pins_of))
                continue
            age = max(0.0, now - at)
            if due(n + pins_of.waiting, age, spec.rollout.max_drain_seconds):
                why = (
                    "its workers hold no job"
                    if n == 0
                    else (
                        f"maxDrainSeconds ({spec.rollout.max_drain_seconds}) passed; its workers "
                        f"hand back the {n} jobs they hold"
                    )
                )
                await self.remove(view, queues, why, track)
                await self.bury_pins(client, spec, view.version, pins_of)
                continue
            await self.scale_for_pins(view, spec, pins_of)
            # until every worker has read the mark, some may still fetch
            e = entry(view, "Draining" if age >= RETIRE_SETTLE_SECONDS else "Retiring", n)
            e["retiredAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
            out.append(pinned.pins_for(e, pins_of))
        return out

    async def read_pins(
        self, client: Any, spec: TaskQueueSpec, live: set[str]
    ) -> dict[str, pinned.Pinned]:
        """The pinned jobs of each ``live`` version (those of any other are dead-lettered)."""
        loop, prefix = self.loop, spec.redis.prefix
        found = await pinned.find(client, spec)
        for version, queues in found.items():
            if version in live:
                continue
            why = pinned.gone_reason(version, loop.name, spec)
            n = await pinned.bury(client, prefix, queues, why)
            if n:
                loop.event("Warning", "PinnedJobsDeadLettered", f"{n} jobs {why}")
        return await pinned.backlog(client, prefix, {v: q for v, q in found.items() if v in live})

    async def bury_pins(
        self, client: Any, spec: TaskQueueSpec, version: str, pins_of: pinned.Pinned
    ) -> None:
        """``version`` was removed: the jobs still pinned to it go to the dead-letter queue."""
        if not pins_of.queues:
            return
        why = pinned.drained_reason(version, spec.rollout.max_drain_seconds)
        n = await pinned.bury(client, spec.redis.prefix, pins_of.queues, why)
        if n:
            self.loop.event("Warning", "PinnedJobsDeadLettered", f"{n} jobs {why}")

    async def scale_for_pins(
        self, view: DeploymentView, spec: TaskQueueSpec, pins_of: pinned.Pinned
    ) -> None:
        """An old version keeps pods for the jobs pinned to it that wait."""
        want = pinned.wanted_replicas(pins_of, spec, view.replicas)
        if want is None:
            return
        loop = self.loop
        await kube.scale_deployment(loop.namespace, view.name, want)
        loop.event(
            "Normal",
            "PinnedScaled",
            f"scaled {view.name} (version {view.version}) to {want}: "
            f"{pins_of.waiting} jobs pinned to it wait",
        )

    async def read_load(
        self, spec: TaskQueueSpec, steady: bool = False, track: Track | None = None
    ) -> Load:
        """What each version's workers hold, kept in ``track`` (the next scaling pass goes
        without the old ones'). ``steady`` (one version): at most every STEADY_READ_SECONDS, so
        that the pass that creates a new version already knows what the old one holds."""
        track = track or self.main
        now = time.monotonic()
        if steady and now - track.read_at < STEADY_READ_SECONDS:
            return track.load
        if self._docs is None or now - self._docs[0] >= DOCS_REUSE_SECONDS:
            client = await self.loop.source.client(spec)
            self._docs = (now, await workerinfo.read_all(client, spec.redis.prefix))
        docs = self._docs[1]
        track.load = load_by_version(docs, set(spec.physical_queues))
        track.read_at = now
        return track.load

    async def forget(self) -> None:
        """The TaskQueue is deleted: remove its queues' and its pools' queues' retired
        versions (a failure is logged)."""
        spec = self.loop.spec
        if spec is None or not spec.rollout.versioned:
            return
        physical = [*spec.physical_queues]
        for pool in spec.pools:
            physical += spec.of_pool(pool).physical_queues if pool.mode == "Deployment" else []
        try:
            client = await self.loop.source.client(spec)
            prefix = spec.redis.prefix
            pipe = client.pipeline(transaction=False)  # one key per queue: its own hash tag
            for q in physical:
                pipe.delete(QueueKeys.of(q, prefix).retired)
            await pipe.execute()
        except (RedisError, OSError, RedisDown) as e:
            log.warning("retired versions of deleted %s not removed: %s", self.loop.name, e)

    async def remove(
        self,
        view: DeploymentView,
        queues: list[QueueKeys],
        why: str,
        track: Track | None = None,
    ) -> None:
        loop, track = self.loop, track or self.main
        await kube.delete_deployment(loop.namespace, view.name)
        track.removed.add(view.name)
        if view.version and loop.spec is not None:
            client = await loop.source.client(loop.spec)
            await versions.forget(client, queues, view.version)
        label = f"version {view.version}" if view.version else "the unversioned workers"
        message = f"{track.where}deleted Deployment {view.name} ({label}): {why}"
        loop.event("Normal", "VersionRemoved", message)
        log.info("%s/%s: %s", loop.namespace, loop.name, message)

"""A TEST STAND-IN FOR THE KUBELET: runs the pods bound to one Node as local processes.

There is no container runtime on the test machine, so this agent plays the kubelet's part
well enough for controllers and operators to be tested against a real API server:

* it registers a Node with generous capacity (so the scheduler places pods on it), keeps its
  Lease in ``kube-node-lease`` fresh and its ``Ready`` condition True;
* it watches the pods whose ``spec.nodeName`` is its node and runs every container as a
  local process group: ``command`` + ``args`` (``$(VAR)`` expanded), ``env`` (plain values,
  ``fieldRef``, ``secretKeyRef``/``configMapKeyRef`` read through the API, ``envFrom``) and
  ``workingDir``, with the project venv's ``bin`` first on ``PATH`` so ``python`` and
  ``kubeq`` resolve to the venv; the image name is only recorded;
* it reports the phase, container statuses, the Ready condition and ``podIP`` 127.0.0.1;
* when a pod gets a deletionTimestamp it sends SIGTERM to each container's process group,
  waits the grace period, sends SIGKILL, then deletes the pod with grace period 0;
* restartPolicy Always/OnFailure restarts exited containers with an exponential backoff
  (1s doubling up to 30s, quicker than the kubelet's 10s..5min so tests do not crawl);
* each container's stdout+stderr is appended to
  ``.cluster/logs/pods/<namespace>_<pod>_<container>.log`` (see ``read_pod_log``).

Not supported: images, network/PID/mount namespaces, resource limits, volumes (mounts are
ignored), init and sidecar containers (reported as an error), probes (a running container
is Ready), ``kubectl logs/exec`` (there is no kubelet API), pod IPs other than 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .kubeapi import ApiError, Client
from .node import NodeRecord
from .paths import Layout, default_state_dir
from .podenv import ConfigError, PodEnv, expand
from .podruns import ContainerRun, PodRun, now_rfc3339
from .procs import spawn

log = logging.getLogger("localcluster.nodeagent")

LEASE_RENEW_INTERVAL = 10.0
NODE_STATUS_INTERVAL = 30.0
BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
BACKOFF_RESET_AFTER = 60.0  # a container that ran this long restarts without delay


class NodeAgent:
    """Registers the node and runs its pods; ``run`` blocks until SIGTERM/SIGINT."""

    def __init__(
        self,
        client: Client,
        node_name: str,
        layout: Layout,
        venv_bin: Path,
        apiserver_port: int,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.layout = layout
        self.venv_bin = venv_bin
        self.apiserver_port = apiserver_port
        self.pods: dict[str, PodRun] = {}  # by uid
        self.finished: set[str] = set()  # uids of pods ended here: later events are echoes
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stop = threading.Event()
        self.node = NodeRecord(client, node_name)
        self.podenv = PodEnv(client, node_name, layout, venv_bin, apiserver_port)

    def register(self) -> None:
        self.node.register()

    def _heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while not self.stop.is_set():
            try:
                self.node.renew_lease()
                if time.monotonic() - last_status >= NODE_STATUS_INTERVAL:
                    self.node.patch_status()
                    last_status = time.monotonic()
            except (OSError, ApiError) as e:
                log.warning("heartbeat failed: %s", e)
            self.stop.wait(LEASE_RENEW_INTERVAL)

    # ---- pod watch -------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        params = {"fieldSelector": f"spec.nodeName={self.node_name}"}
        while not self.stop.is_set():
            try:
                listing = self.client.get("/api/v1/pods", params)
                self.events.put(("SYNC", listing["items"]))
                rv = listing["metadata"]["resourceVersion"]
                while not self.stop.is_set():
                    watch_params = {**params, "resourceVersion": rv, "allowWatchBookmarks": True}
                    for event in self.client.watch("/api/v1/pods", watch_params, 60):
                        kind, obj = event["type"], event["object"]
                        if kind == "ERROR":
                            raise ApiError(int(obj.get("code", 500)), str(obj), "WATCH", "pods")
                        rv = obj["metadata"]["resourceVersion"]
                        if kind != "BOOKMARK":
                            self.events.put((kind, obj))
            except (OSError, ApiError, ValueError, KeyError) as e:
                if not (isinstance(e, ApiError) and e.status == 410):
                    log.warning("pod watch failed (%s); relisting", e)
                self.stop.wait(1.0)

    def _apply_event(self, kind: str, payload: Any) -> None:
        if kind == "SYNC":
            seen = set()
            for pod in payload:
                seen.add(pod["metadata"]["uid"])
                self._apply_event("MODIFIED", pod)
            for uid, known in self.pods.items():
                if uid not in seen:
                    known.gone = True
            return
        uid = payload["metadata"]["uid"]
        if uid in self.finished:
            return
        if kind == "DELETED":
            if uid in self.pods:
                self.pods[uid].gone = True
            return
        run = self.pods.get(uid)
        if run is not None:
            run.pod = payload
            return
        phase = payload.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed") and not payload["metadata"].get("deletionTimestamp"):
            return  # finished in an earlier life of this node; nothing to run
        containers = {
            c["name"]: ContainerRun(c["name"], c) for c in payload["spec"].get("containers", [])
        }
        self.pods[uid] = PodRun(payload, containers)
        log.info(
            "pod %s/%s bound here", payload["metadata"]["namespace"], payload["metadata"]["name"]
        )

    # ---- running containers ----------------------------------------------------------------

    def _start(self, run: PodRun, c: ContainerRun) -> None:
        pod, spec = run.pod, c.spec
        meta = pod["metadata"]
        try:
            if not spec.get("command"):
                raise ConfigError(
                    "the localcluster node agent runs no images: the container needs a command"
                )
            env = self.podenv.env(pod, spec)
        except ConfigError as e:
            c.waiting = ("CreateContainerConfigError", str(e))
            c.next_start = time.monotonic() + 2.0
            return
        argv = [expand(a, env) for a in [*spec["command"], *(spec.get("args") or [])]]
        pod_dir = self.layout.pods / f"{meta['namespace']}_{meta['name']}"
        pod_dir.mkdir(parents=True, exist_ok=True)
        workdir = Path(spec["workingDir"]) if spec.get("workingDir") else pod_dir
        log_path = self.layout.pod_log(meta["namespace"], meta["name"], c.name)
        pid_file = self.layout.pod_pids / f"{meta['uid']}_{c.name}.pid"
        try:
            c.proc, c.ref = spawn(
                f"{meta['namespace']}/{meta['name']}/{c.name}",
                argv,
                log_file=log_path,
                pid_file=pid_file,
                env=env,
                cwd=workdir,
                track=False,
            )
        except OSError as e:
            c.started_at, c.started_mono = now_rfc3339(), time.monotonic()
            self._record_exit(run, c, 128, "StartError", str(e))
            return
        if c.last_exit is not None:
            c.restart_count += 1
        c.pid = c.proc.pid
        c.started_at = now_rfc3339()
        c.started_mono = time.monotonic()
        c.waiting = None
        log.info("%s: started container %s, pid %d", run.key, c.name, c.pid)

    def _record_exit(
        self, run: PodRun, c: ContainerRun, code: int, reason: str, message: str = ""
    ) -> None:
        c.prev_exit = c.last_exit
        c.last_exit = {
            "exitCode": code,
            "reason": reason,
            "startedAt": c.started_at or now_rfc3339(),
            "finishedAt": now_rfc3339(),
            **({"message": message} if message else {}),
            **({"containerID": f"localcluster://{c.pid}"} if c.proc is not None else {}),
        }
        c.proc = None
        (self.layout.pod_pids / f"{run.meta['uid']}_{c.name}.pid").unlink(missing_ok=True)
        policy = run.pod["spec"].get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if run.kill_deadline is not None or not restart:
            c.done = True
            c.waiting = None
            return
        ran = time.monotonic() - c.started_mono if c.started_mono else 0.0
        c.backoff = (
            0.0
            if ran >= BACKOFF_RESET_AFTER
            else min(BACKOFF_MAX, max(BACKOFF_BASE, c.backoff * 2))
        )
        c.next_start = time.monotonic() + c.backoff
        c.waiting = ("CrashLoopBackOff", f"back-off {c.backoff:.0f}s restarting failed container")
        log.info("%s container %s exited %d; restart in %.0fs", run.key, c.name, code, c.backoff)

    def _poll(self, run: PodRun) -> None:
        for c in run.containers.values():
            if c.proc is not None:
                code = c.proc.poll()
                if code is None:
                    continue
                if code < 0:
                    self._record_exit(run, c, 128 - code, "Error", f"killed by signal {-code}")
                else:
                    self._record_exit(run, c, code, "Completed" if code == 0 else "Error")

    # ---- reconcile -------------------------------------------------------------------------

    def _reconcile(self, uid: str, run: PodRun) -> bool:
        """Drive one pod towards its desired state; False when it can be forgotten."""
        self._poll(run)
        meta = run.meta
        if meta.get("deletionTimestamp") or run.gone:
            return self._terminate(run)
        if run.pod["spec"].get("initContainers"):
            for c in run.containers.values():
                c.waiting = ("CreateContainerConfigError", "init containers are not supported")
        else:
            for c in run.containers.values():
                if not c.running and not c.done and time.monotonic() >= c.next_start:
                    self._start(run, c)
        self._report(run)
        return True

    def _terminate(self, run: PodRun) -> bool:
        now = time.monotonic()
        if run.kill_deadline is None:
            spec_grace = run.pod["spec"].get("terminationGracePeriodSeconds", 30)
            grace = run.meta.get("deletionGracePeriodSeconds", spec_grace)
            run.kill_deadline = now + float(grace if grace is not None else 30)
            for c in run.alive():
                log.info("%s: SIGTERM to container %s (grace %ss)", run.key, c.name, grace)
                if c.ref is not None:
                    c.ref.signal(signal.SIGTERM)
            for c in run.containers.values():
                if not c.running:
                    c.done = True
        elif now >= run.kill_deadline and not run.killed:
            run.killed = True
            for c in run.alive():
                log.info("%s: grace period over, SIGKILL to container %s", run.key, c.name)
                if c.ref is not None:
                    c.ref.signal(signal.SIGKILL)
        if run.alive():
            return True
        self._poll(run)
        if run.gone:
            return False
        meta = run.meta
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }
        try:
            self._report(run)
            self.client.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body)
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("deleting %s failed: %s", run.key, e)
                return True
        log.info("%s: terminated and deleted", run.key)
        return False

    def _report(self, run: PodRun) -> None:
        status_body = run.status()
        if status_body == run.last_status:
            return
        meta = run.meta
        try:
            self.client.patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {"status": status_body},
            )
            run.last_status = status_body
        except ApiError as e:
            if e.status == 404:
                run.gone = True
            else:
                log.warning("status update of %s failed: %s", run.key, e)

    # ---- main loop ---------------------------------------------------------------------------

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        while not self.stop.is_set():
            try:
                self.register()
                break
            except (OSError, ApiError) as e:
                log.warning("node registration failed (%s); retrying", e)
                self.stop.wait(1.0)
        threads = [
            threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True),
            threading.Thread(target=self._watch_loop, name="pod-watch", daemon=True),
        ]
        for t in threads:
            t.start()
        while not self.stop.is_set():
            try:
                kind, payload = self.events.get(timeout=0.2)
                self._apply_event(kind, payload)
                while True:
                    kind, payload = self.events.get_nowait()
                    self._apply_event(kind, payload)
            except queue.Empty:
                pass
            for uid, run in list(self.pods.items()):
                try:
                    keep = self._reconcile(uid, run)
                except (OSError, ApiError) as e:
                    log.warning("reconciling %s failed: %s", run.key, e)
                    keep = True
                if not keep:
                    del self.pods[uid]
                    self.finished.add(uid)
        self._shutdown()

    def _shutdown(self) -> None:
        """Stop every container: SIGTERM, up to 30s of grace, SIGKILL."""
        log.info("node agent stopping: terminating %d pods", len(self.pods))
        deadline = time.monotonic()
        for run in self.pods.values():
            grace = run.pod["spec"].get("terminationGracePeriodSeconds", 30)
            deadline = max(deadline, time.monotonic() + min(float(grace or 0), 30.0))
            for c in run.alive():
                if c.ref is not None:
                    c.ref.signal(signal.SIGTERM)
        while time.monotonic() < deadline and any(r.alive() for r in self.pods.values()):
            time.sleep(0.1)
        for run in self.pods.values():
            for c in run.containers.values():
                if c.ref is not None:
                    c.ref.signal(signal.SIGKILL)
                    with contextlib.suppress(OSError):
                        (self.layout.pod_pids / f"{run.meta['uid']}_{c.name}.pid").unlink()
                if c.proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        c.proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--state-dir", type=Path, default=default_state_dir())
    parser.add_argument("--venv-bin", type=Path, default=Path(sys.executable).parent)
    parser.add_argument("--apiserver-port", type=int, default=443)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s"
    )
    agent = NodeAgent(
        Client.from_kubeconfig(args.kubeconfig),
        args.node_name,
        Layout(args.state_dir),
        args.venv_bin,
        args.apiserver_port,
    )
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

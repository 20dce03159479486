"""The node agent's record of what runs: one ``PodRun`` per pod bound to the node, one
``ContainerRun`` per container (its process, restarts, last exit and the status the agent
reports), and ``read_pod_log`` for tests that read a container's output."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .kubeapi import JSON
from .paths import Layout, default_state_dir
from .podenv import POD_IP
from .procs import ProcRef


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_pod_log(
    namespace: str, pod: str, container: str | None = None, state_dir: Path | None = None
) -> str:
    """The log of one container (or of the pod's only container); '' if none yet."""
    layout = Layout(state_dir or default_state_dir())
    if container is not None:
        path = layout.pod_log(namespace, pod, container)
    else:
        matches = sorted(layout.pod_logs.glob(f"{namespace}_{pod}_*.log"))
        if not matches:
            return ""
        if len(matches) > 1:
            raise ValueError(f"pod {namespace}/{pod} has several logs; name the container")
        path = matches[0]
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


@dataclass
class ContainerRun:
    """Run-time state of one container of one pod."""

    name: str
    spec: JSON
    proc: subprocess.Popen[bytes] | None = None  # the current process until its exit is seen
    ref: ProcRef | None = None
    pid: int = 0
    started_at: str | None = None
    started_mono: float = 0.0
    restart_count: int = 0
    last_exit: JSON | None = None  # a `terminated` state
    prev_exit: JSON | None = None
    next_start: float = 0.0
    backoff: float = 0.0
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    done: bool = False  # exited and will not be restarted

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> JSON:
        state: JSON
        last = self.last_exit
        if self.running:
            state = {"running": {"startedAt": self.started_at}}
        elif self.done and self.last_exit is not None:
            state, last = {"terminated": self.last_exit}, self.prev_exit
        else:
            reason, message = self.waiting or ("ContainerCreating", "")
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        status: JSON = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.running,
            "started": self.running,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": last} if last else {},
        }
        if self.pid:
            status["containerID"] = f"localcluster://{self.pid}"
        return status


@dataclass
class PodRun:
    """Run-time state of one pod bound to this node."""

    pod: JSON
    containers: dict[str, ContainerRun]
    start_time: str = field(default_factory=now_rfc3339)
    kill_deadline: float | None = None  # set once termination began
    killed: bool = False
    gone: bool = False  # deleted from the API already
    last_status: JSON | None = None
    transitions: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def meta(self) -> JSON:
        return dict(self.pod["metadata"])

    @property
    def key(self) -> str:
        return f"{self.meta['namespace']}/{self.meta['name']}"

    def alive(self) -> list[ContainerRun]:
        return [c for c in self.containers.values() if c.running]

    def status(self) -> JSON:
        """The pod's status as the kubelet reports it: phase, conditions, containers."""
        statuses = [c.status() for c in self.containers.values()]
        all_running = bool(statuses) and all(c.running for c in self.containers.values())
        runs = list(self.containers.values())
        if self.kill_deadline is not None:  # terminating: the phase stays what it was
            phase = self.pod.get("status", {}).get("phase") or "Running"
        elif runs and all(c.done and c.last_exit for c in runs):
            failed = any(c.last_exit and c.last_exit["exitCode"] != 0 for c in runs)
            phase = "Failed" if failed else "Succeeded"
        elif any(c.running or c.last_exit for c in runs):
            phase = "Running"
        else:
            phase = "Pending"
        ready = "True" if all_running and self.kill_deadline is None else "False"
        conditions = []
        for kind, status in (
            ("PodReadyToStartContainers", "True"),
            ("Initialized", "True"),
            ("ContainersReady", ready),
            ("Ready", ready),
        ):
            previous = self.transitions.get(kind)
            if previous is None or previous[0] != status:
                self.transitions[kind] = (status, now_rfc3339())
            conditions.append(
                {
                    "type": kind,
                    "status": status,
                    "lastProbeTime": None,
                    "lastTransitionTime": self.transitions[kind][1],
                }
            )
        return {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": statuses,
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": self.start_time,
        }

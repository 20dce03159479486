"""examples/00-local-cluster (``make demo``) stays consistent with the operator: its TaskQueue
parses, its worker pods find the tasks module it names, and the task it enqueues exists.
(The demo itself takes minutes on the local cluster; ``make demo`` runs it.)"""

from __future__ import annotations

from pathlib import Path

from kubeq_operator.crd import API_VERSION, KIND
from kubeq_operator.spec import parse
from tests.support.modules import load_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "00-local-cluster"


def test_the_demo_taskqueue_runs_the_example_tasks() -> None:
    demo = load_file("kubeq_example_demo", EXAMPLE / "demo.py")
    tq = demo._taskqueue("redis://127.0.0.1:6379/0")
    assert (tq["apiVersion"], tq["kind"]) == (API_VERSION, KIND)
    spec = parse(tq["spec"])
    env = {e["name"]: e.get("value") for e in spec.worker.env}
    module_file = Path(env["PYTHONPATH"]) / f"{spec.worker.tasks.replace('.', '/')}.py"
    assert module_file == EXAMPLE / "tasks.py"
    tasks = load_file("kubeq_example_tasks", module_file)
    assert "demo.resize" in tasks.app.tasks  # what the demo enqueues
    assert spec.queues == ("thumbnails",)

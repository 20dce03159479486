"""Running the external judges (hack/judges) over what kubeq ships, and the allow-list.

What is judged: the chart rendered with its defaults and with every optional part on, the plain
manifests (manifests/kubeq.yaml), and the worker Deployment the operator builds
(``kubeq_operator.deployment.build``) from every example TaskQueue. A finding is either fixed
or listed in hack/judges/allowlist.yaml with its reason; an entry that matches nothing fails
too, so the list never outlives its findings.
"""

from __future__ import annotations

import fnmatch
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.paths import bin_dir

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeq"
ALLOWLIST = ROOT / "hack" / "judges" / "allowlist.yaml"
EXAMPLES = [
    *sorted((ROOT / "examples").glob("*/taskqueue.yaml")),
    ROOT / "manifests" / "examples" / "taskqueue.yaml",
]
CHART_VARIANTS: dict[str, list[str]] = {
    "chart-defaults": [],
    "chart-everything": [
        "--set",
        "redis.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "dashboards.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.podMonitor.enabled=true",
        "--api-versions",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "--api-versions",
        "monitoring.coreos.com/v1/PodMonitor",
    ],
    "chart-namespaced": ["--set", "rbac.scope=namespaced", "--set", "redis.enabled=true"],
}


def judges_dir() -> Path:
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "judges" / "build.sh"), "--dir"],
        capture_output=True,
        text=True,
        check=True,
    )
    path = Path(out.stdout.strip())
    if not (path / "bin" / "psa-check").exists() or not (path / "checkov" / ".installed").exists():
        pytest.fail(f"the judges are not built in {path}: run `make judges-bin`", pytrace=False)
    return path


def helm_template(*args: str) -> str:
    exe = bin_dir() / "helm"
    if not exe.exists():
        pytest.fail(f"helm is missing in {bin_dir()}: run `make cluster-bin`", pytrace=False)
    out = subprocess.run(
        [str(exe), "template", "kq", str(CHART), "--namespace", "kubeq-system", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def worker_deployment(example: Path, namespace: str = "shop") -> dict[str, Any]:
    """The Deployment the operator builds for an example TaskQueue."""
    from kubeq_operator import deployment
    from kubeq_operator.spec import parse

    tq = yaml.safe_load(example.read_text())
    return deployment.build(tq["metadata"]["name"], namespace, parse(tq["spec"]), 1)


def example_id(example: Path) -> str:
    return "reference" if example.parent.name == "examples" else example.parent.name


def render_all(out: Path) -> dict[str, Path]:
    """Every judged manifest, one file each, under ``out``: name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name, args in CHART_VARIANTS.items():
        files[name] = out / f"{name}.yaml"
        files[name].write_text(helm_template(*args))
    files["manifests"] = out / "manifests.yaml"
    files["manifests"].write_text((ROOT / "manifests" / "kubeq.yaml").read_text())
    for example in EXAMPLES:
        name = f"worker-{example_id(example)}"
        files[name] = out / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(worker_deployment(example), sort_keys=False))
    return files


@dataclass(frozen=True)
class Finding:
    judge: str
    check: str
    obj: str
    """What the judge names: kube-score ``Kind/name``, checkov its resource id."""
    message: str


def load_allowlist() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = yaml.safe_load(ALLOWLIST.read_text())["accepted"]
    for e in entries:
        assert {"judge", "check", "objects", "reason"} <= set(e), f"incomplete entry: {e}"
        assert len(e["reason"].split()) >= 5, f"say why, in a sentence: {e}"
    return entries


def not_allowed(judge: str, findings: list[Finding]) -> tuple[list[Finding], list[str]]:
    """The findings no entry accepts, and the entries of ``judge`` that accepted nothing."""
    entries = [e for e in load_allowlist() if e["judge"] == judge]
    used: set[int] = set()
    left: list[Finding] = []
    for f in findings:
        hits = [
            i
            for i, e in enumerate(entries)
            if e["check"] == f.check and any(fnmatch.fnmatchcase(f.obj, o) for o in e["objects"])
        ]
        used.update(hits)
        if not hits:
            left.append(f)
    stale = [f"{e['check']} {e['objects']}" for i, e in enumerate(entries) if i not in used]
    return left, stale


def report(findings: list[Finding]) -> str:
    return "\n".join(f"  {f.judge} {f.check} {f.obj}: {f.message}" for f in findings)

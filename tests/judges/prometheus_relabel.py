"""What Prometheus does to a scraped series' labels, for the monitoring-labels test.

A Prometheus run by the Prometheus Operator turns a ServiceMonitor or PodMonitor into a scrape
job: the target's labels are those the operator's generated relabelling gives every target
(namespace, pod, container, endpoint, job, and service for a ServiceMonitor), then the
monitor's own ``relabelings``; each scraped sample then gets the target's labels, and where a
sample already has one, ``honorLabels`` decides: true keeps the sample's, false renames it
``exported_<name>`` and puts the target's in its place. The relabel actions used here follow
Prometheus' <relabel_config> (anchored regex, ``;`` separator, ``$1`` replacement).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

Labels = dict[str, str]


def sanitize(name: str) -> str:
    """A Kubernetes label name as Prometheus' service discovery spells it."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _expand(template: str, match: re.Match[str]) -> str:
    def group(m: re.Match[str]) -> str:
        key = m.group(1) or m.group(2)
        return (match.group(int(key)) if key.isdigit() else match.group(key)) or ""

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, template)


def relabel(labels: Mapping[str, str], rules: Iterable[Mapping[str, Any]]) -> Labels | None:
    """Apply Prometheus Operator ``relabelings``; None when a rule drops the target."""
    out = dict(labels)
    for rule in rules:
        action = str(rule.get("action", "replace")).lower()
        regex = re.compile(f"^(?:{rule.get('regex', '(.*)')})$")
        value = str(rule.get("separator", ";")).join(
            out.get(s, "") for s in rule.get("sourceLabels", [])
        )
        replacement = str(rule.get("replacement", "$1"))
        if action == "replace":
            m = regex.match(value)
            if m:
                target = _expand(rule["targetLabel"], m)
                new = _expand(replacement, m)
                if new:
                    out[target] = new
                else:
                    out.pop(target, None)
        elif action in ("keep", "drop"):
            if bool(regex.match(value)) != (action == "keep"):
                return None
        elif action == "labelmap":
            for name, v in list(out.items()):
                m = regex.match(name)
                if m:
                    out[_expand(replacement, m)] = v
        elif action in ("labeldrop", "labelkeep"):
            out = {k: v for k, v in out.items() if bool(regex.match(k)) == (action == "labelkeep")}
        else:
            raise NotImplementedError(f"relabel action {action!r}")
    return out


def target_labels(discovered: Mapping[str, str], rules: Iterable[Mapping[str, Any]]) -> Labels:
    """The target's labels after relabelling, without the ``__`` ones Prometheus drops."""
    out = relabel(discovered, rules)
    assert out is not None, "the monitor's relabelling drops this target"
    return {k: v for k, v in out.items() if not k.startswith("__") and v}


def attach(sample: Mapping[str, str], target: Mapping[str, str], honor_labels: bool) -> Labels:
    """A scraped sample's labels once the target's are attached (Prometheus' honor_labels)."""
    out = dict(sample)
    for name, value in target.items():
        if honor_labels:
            out.setdefault(name, value)
            continue
        if out.get(name):
            exported = "exported_" + name
            while exported in out:
                exported = "exported_" + exported
            out[exported] = out[name]
        out[name] = value
    return out

"""The operator's filter on kopf's log drops only the inconsistency warning that reports a
removal the API server did (the object's last annotation or label removed with its map)."""

from __future__ import annotations

import logging

from kubeq_operator.kopflog import PREFIX, DropFalseInconsistencies

TOUCH = "('remove', ('metadata', 'annotations'), {'kopf.zalando.org/touch-dummy': None}, None)"


def kept(message: str) -> bool:
    record = logging.LogRecord("kopf.objects", logging.WARNING, __file__, 1, message, None, None)
    return DropFalseInconsistencies().filter(record)


def test_the_removal_of_the_last_annotation_is_dropped() -> None:
    assert not kept(f"{PREFIX}({TOUCH},)")
    assert not kept(f"{PREFIX}({TOUCH}, {TOUCH.replace('annotations', 'labels')})")


def test_every_other_inconsistency_and_message_is_kept() -> None:
    status = "('change', ('status', 'kubeq'), {'replicas': 2}, None)"
    assert kept(f"{PREFIX}({TOUCH}, {status})")  # one real inconsistency among them
    assert kept(f"{PREFIX}({TOUCH.replace('None}', chr(39) + 'x' + chr(39) + '}')},)")
    assert kept(f"{PREFIX}(('remove', ('metadata', 'annotations'), {{}}, None),)")
    assert kept(f"{PREFIX}not a literal (")
    assert kept(f"{PREFIX}()")
    assert kept("Handler 'taskqueue_loop' failed temporarily")

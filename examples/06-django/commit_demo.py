"""Shows what transaction.on_commit buys: a job exists only once its rows are committed.

python commit_demo.py   (with a worker running: kubeq worker orders.tasks)
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django.setup()

from django.db import transaction  # noqa: E402
from orders.models import Order  # noqa: E402
from orders.tasks import app, confirm_order  # noqa: E402

queue = app.queue("orders")
jobs: list[object] = []

with transaction.atomic():
    order = Order.objects.create(customer="ada", total_cents=1200)
    transaction.on_commit(lambda: jobs.append(confirm_order.delay(order.pk)))
    print(f"inside the transaction: {len(jobs)} jobs enqueued")
print(f"after the commit: {len(jobs)} job enqueued")
result = jobs[0].result(timeout=30)  # type: ignore[attr-defined]
print(f"the worker: {result}")
order.refresh_from_db()
print(f"order {order.pk} is {order.status}")

before = queue.stats().backlog + queue.stats().in_flight
try:
    with transaction.atomic():
        doomed = Order.objects.create(customer="bob", total_cents=500)
        transaction.on_commit(lambda: confirm_order.delay(doomed.pk))
        raise RuntimeError("payment declined")
except RuntimeError:
    pass
print(
    f"after a rollback: {Order.objects.filter(customer='bob').count()} orders, "
    f"{queue.stats().backlog + queue.stats().in_flight - before} jobs enqueued"
)

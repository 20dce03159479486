"""The shop's tasks. ``kubeq worker orders.tasks`` (with DJANGO_SETTINGS_MODULE set) sets
Django up first, so a task uses the ORM as a view does."""

from __future__ import annotations

import os

import django
from django.apps import apps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
if not apps.ready:  # in a worker process; the web process set Django up already
    django.setup()

import kubeq
from orders.models import Order

app = kubeq.App()  # Redis from KUBEQ_REDIS_URL


@app.task(queue="orders", max_attempts=3)
def confirm_order(order_id: int) -> str:
    """Runs after the order's transaction committed (see views.place_order), so the row is
    there: a job enqueued inside the transaction could run before the commit and miss it."""
    order = Order.objects.get(pk=order_id)
    order.status = "confirmed"
    order.save(update_fields=["status"])
    return f"order {order.pk} for {order.customer} confirmed"

"""Place an order and enqueue its confirmation only once the order is committed."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from orders.models import Order
from orders.tasks import confirm_order


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "the body must be JSON"}, status=400)
    customer, cents = body.get("customer"), body.get("total_cents")
    if not isinstance(customer, str) or not customer:
        return JsonResponse({"error": "'customer' (a non-empty string) is required"}, status=400)
    if not isinstance(cents, int) or cents < 1:
        return JsonResponse({"error": "'total_cents' must be a positive integer"}, status=400)
    with transaction.atomic():
        order = Order.objects.create(customer=customer, total_cents=cents)
        # not confirm_order.delay(order.pk) here: a worker could take the job before this
        # transaction commits and find no order. on_commit enqueues after the commit, and
        # never when the transaction rolls back.
        transaction.on_commit(lambda: _enqueue(order))
    return JsonResponse({"order_id": order.pk, "status_url": f"/orders/{order.pk}"}, status=202)


def _enqueue(order: Order) -> None:
    job = confirm_order.delay(order.pk)
    Order.objects.filter(pk=order.pk).update(confirmed_by_job=job.id)


@require_GET
def order_status(request: HttpRequest, order_id: int) -> JsonResponse:
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return JsonResponse({"error": "no such order"}, status=404)
    return JsonResponse(
        {"order_id": order.pk, "status": order.status, "job": order.confirmed_by_job}
    )

"""The example shop's one model: an order, confirmed by a kubeq job once it is committed."""

from django.db import models


class Order(models.Model):
    customer = models.CharField(max_length=100)
    total_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=20, default="new")
    confirmed_by_job = models.CharField(max_length=200, blank=True)

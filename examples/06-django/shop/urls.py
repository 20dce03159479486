"""The example shop's URLs: place an order (its confirmation is a kubeq job) and read its status."""

from django.urls import path
from orders import views

urlpatterns = [
    path("orders", views.place_order),
    path("orders/<int:order_id>", views.order_status),
]

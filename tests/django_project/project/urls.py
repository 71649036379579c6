"""The shop's views: orders that enqueue their emails, one sync and one async."""

from django.urls import path
from shop import views

urlpatterns = [
    path("orders/", views.create_order),
    path("orders/failing/", views.create_order_then_fail),
    path("orders/async/", views.create_order_async),
    path("results/<str:result_id>/", views.result),
]

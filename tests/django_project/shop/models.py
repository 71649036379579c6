"""One model: an order, which tasks update."""

from django.db import models


class Order(models.Model):
    """An order; ``confirmed`` is set by the ``send_confirmation`` task."""

    email = models.CharField(max_length=200)
    confirmed = models.BooleanField(default=False)
    attempts = models.IntegerField(default=0)

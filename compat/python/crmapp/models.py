"""The CRM's customers and orders as Django models over the existing tables."""

from django.db import models


class Customer(models.Model):
    customer_id = models.BigIntegerField(primary_key=True)
    customer_number = models.TextField(unique=True)
    first_name = models.TextField()
    last_name = models.TextField()
    email = models.TextField(null=True)
    phone = models.TextField(null=True)
    birth_date = models.DateField(null=True)
    gender = models.TextField(null=True)
    annual_income = models.DecimalField(max_digits=12, decimal_places=2, null=True)
    street = models.TextField(null=True)
    city = models.TextField(null=True)
    postal_code = models.TextField(null=True)
    region = models.TextField()
    segment = models.TextField()
    loyalty_points = models.IntegerField(default=0)
    preferred_channel = models.TextField(null=True)
    national_id = models.TextField(null=True)
    religion = models.TextField(null=True)
    ethnicity = models.TextField(null=True)
    health_notes = models.TextField(null=True)
    rep_id = models.IntegerField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "customers"
        managed = False


class Order(models.Model):
    order_id = models.BigIntegerField(primary_key=True)
    customer = models.ForeignKey(Customer, models.DO_NOTHING, db_column="customer_id", related_name="orders")
    ordered_at = models.DateTimeField()
    status = models.TextField()
    total_amount = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        db_table = "orders"
        managed = False

"""Django with a new project's defaults (USE_TZ = True, TIME_ZONE = 'UTC')
and the postgresql backend: model instances, save(), create(),
bulk_create(), update_or_create(), delete(), annotate(Count(...)) and
nested atomic() blocks (savepoints)."""

import django
from django.conf import settings

from common import BASE, CUSTOMER, NEW_PHONE, new_customer, run, sqlstate, url_parts

p = url_parts()
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": p["dbname"], "USER": p["user"],
                           "PASSWORD": p["password"], "HOST": p["host"], "PORT": p["port"]}},
    INSTALLED_APPS=["crmapp"], USE_TZ=True, TIME_ZONE="UTC",
)
django.setup()

from django.db import DatabaseError, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402

from crmapp.models import Customer, Order  # noqa: E402


def update():
    c = Customer.objects.get(pk=CUSTOMER)
    c.phone = NEW_PHONE
    c.save()


def transaction_with_savepoint():
    inner = "ok"
    with transaction.atomic():
        try:
            with transaction.atomic():
                Customer.objects.create(**new_customer(5, "South", region="south"))
        except DatabaseError as e:
            inner = sqlstate(e)
        Customer.objects.create(**new_customer(6, "After"))
    return [[inner]]


run("list", lambda: [[c.customer_id, c.first_name, c.last_name, c.email, c.city, c.postal_code]
                     for c in Customer.objects.filter(segment="premium").order_by("-customer_id")[2:7]])
run("get", lambda: [[c.customer_id, c.first_name, c.last_name, c.email, c.phone, c.postal_code]
                    for c in [Customer.objects.get(pk=CUSTOMER)]])
run("count", lambda: [[Customer.objects.filter(segment="premium").count()]])
run("join", lambda: [[o.order_id, o.status, o.customer.last_name]
                     for o in Order.objects.filter(customer_id=CUSTOMER).select_related("customer").order_by("order_id")])
run("aggregate", lambda: [[c.customer_id, c.last_name, c.n] for c in
                          Customer.objects.filter(segment="premium").annotate(n=Count("orders")).order_by("customer_id")[:5]])
run("update", update)
run("create", lambda: [[Customer.objects.create(**new_customer(1, "Create")).customer_id]])
run("bulk", lambda: Customer.objects.bulk_create([Customer(**new_customer(n, "Bulk")) for n in (2, 3, 4)]) and [])
run("upsert", lambda: Customer.objects.update_or_create(customer_id=BASE + 8, defaults={"phone": "+1 555 0108"}) and [])
run("delete", lambda: Customer.objects.get(pk=BASE + 9).delete() and [])
run("transaction", transaction_with_savepoint)

"""What the Python clients share: the connection URL, the operations'
constants, and printing one JSON line per operation (see compat_test.go)."""

import datetime
import json
import os
import sys
import traceback
from urllib.parse import urlparse

URL = os.environ["PGCLOAK_URL"]
CUSTOMER = int(os.environ["COMPAT_CUSTOMER"])
BASE = 9_000_000
NEW_PHONE = "+1 555 0199"
CREATED = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def url_parts():
    u = urlparse(URL)
    return {"host": u.hostname, "port": u.port, "user": u.username,
            "password": u.password, "dbname": u.path.lstrip("/")}


def new_customer(n, last, region="north", phone=None):
    """The fields of new customer BASE+n."""
    return dict(customer_id=BASE + n, customer_number="CMP-%d" % n, first_name="Compat",
                last_name=last, email=last.lower() + "@example.org",
                phone=phone or "+1 555 01%02d" % n, region=region, segment="consumer",
                created_at=CREATED)


def text(v):
    return None if v is None else str(v)


def emit(op, rows=None, code=None, error=None):
    out = {"op": op}
    if code is not None or error is not None:
        out["code"], out["error"] = code or "", error or ""
    else:
        out["rows"] = [[text(v) for v in r] for r in (rows or [])]
    print(json.dumps(out), flush=True)


def sqlstate(e):
    """The SQLSTATE of a psycopg2 error, or of one an ORM wraps."""
    for x in (e, getattr(e, "__cause__", None), getattr(e, "orig", None)):
        code = getattr(x, "pgcode", None)
        if code:
            return code
    return ""


def run(op, fn, on_error=None):
    """Runs one operation and prints its answer; an error is an answer too."""
    try:
        emit(op, fn())
    except Exception as e:  # noqa: BLE001 - every failure is reported
        traceback.print_exc(file=sys.stderr)
        emit(op, code=sqlstate(e), error=str(e).strip().splitlines()[0] if str(e).strip() else repr(e))
        if on_error:
            on_error()

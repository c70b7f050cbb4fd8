"""SQLAlchemy 1.4's ORM with its defaults (psycopg2 dialect, a Session
with autoflush, nested transactions by begin_nested()), and its
PostgreSQL insert().on_conflict_do_update() for the upsert."""

from sqlalchemy import BigInteger, Column, Date, DateTime, ForeignKey, Integer, Numeric, Text, create_engine, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, declarative_base, relationship

from common import BASE, CUSTOMER, NEW_PHONE, URL, new_customer, run, sqlstate

Base = declarative_base()


class Customer(Base):
    __tablename__ = "customers"
    customer_id = Column(BigInteger, primary_key=True, autoincrement=False)
    customer_number = Column(Text, nullable=False)
    first_name = Column(Text, nullable=False)
    last_name = Column(Text, nullable=False)
    email = Column(Text)
    phone = Column(Text)
    birth_date = Column(Date)
    gender = Column(Text)
    annual_income = Column(Numeric(12, 2))
    street = Column(Text)
    city = Column(Text)
    postal_code = Column(Text)
    region = Column(Text, nullable=False)
    segment = Column(Text, nullable=False)
    loyalty_points = Column(Integer, nullable=False, server_default=text("0"))
    preferred_channel = Column(Text)
    national_id = Column(Text)
    religion = Column(Text)
    ethnicity = Column(Text)
    health_notes = Column(Text)
    rep_id = Column(Integer)
    created_at = Column(DateTime(timezone=True), nullable=False)
    orders = relationship("Order", back_populates="customer")


class Order(Base):
    __tablename__ = "orders"
    order_id = Column(BigInteger, primary_key=True, autoincrement=False)
    customer_id = Column(BigInteger, ForeignKey("customers.customer_id"), nullable=False)
    status = Column(Text, nullable=False)
    customer = relationship("Customer", back_populates="orders")


engine = create_engine(URL.replace("postgresql://", "postgresql+psycopg2://", 1), future=True)
session = Session(engine, future=True)


def q(fn):
    """Runs fn in the session; a failure rolls the session back."""
    def wrapped():
        try:
            out = fn()
            session.commit()
            return out
        except Exception:
            session.rollback()
            raise
    return wrapped


def update():
    c = session.get(Customer, CUSTOMER)
    c.phone = NEW_PHONE


def create():
    c = Customer(**new_customer(1, "Create"))
    session.add(c)
    session.flush()
    return [[c.customer_id]]


def upsert():
    row = new_customer(8, "Fixture", phone="+1 555 0108")
    stmt = insert(Customer).values(**row)
    session.execute(stmt.on_conflict_do_update(index_elements=[Customer.customer_id], set_={"phone": stmt.excluded.phone}))


def delete():
    session.delete(session.get(Customer, BASE + 9))


def transaction():
    inner = "ok"
    try:
        with session.begin_nested():
            session.add(Customer(**new_customer(5, "South", region="south")))
    except DBAPIError as e:
        inner = sqlstate(e)
    session.add(Customer(**new_customer(6, "After")))
    return [[inner]]


def aggregate():
    n = func.count(Order.order_id)
    stmt = (select(Customer.customer_id, Customer.last_name, n).outerjoin(Customer.orders)
            .where(Customer.segment == "premium").group_by(Customer.customer_id)
            .order_by(Customer.customer_id).limit(5))
    return session.execute(stmt).all()


run("list", q(lambda: [[c.customer_id, c.first_name, c.last_name, c.email, c.city, c.postal_code] for c in
                       session.scalars(select(Customer).where(Customer.segment == "premium")
                                       .order_by(Customer.customer_id.desc()).limit(5).offset(2))]))
run("get", q(lambda: [[c.customer_id, c.first_name, c.last_name, c.email, c.phone, c.postal_code]
                      for c in [session.get(Customer, CUSTOMER)]]))
run("count", q(lambda: [[session.scalar(select(func.count()).select_from(Customer).where(Customer.segment == "premium"))]]))
run("join", q(lambda: [[o.order_id, o.status, c.last_name] for o, c in
                       session.execute(select(Order, Customer).join(Order.customer)
                                       .where(Order.customer_id == CUSTOMER).order_by(Order.order_id))]))
run("aggregate", q(aggregate))
run("update", q(update))
run("create", q(create))
run("bulk", q(lambda: session.add_all([Customer(**new_customer(n, "Bulk")) for n in (2, 3, 4)])))
run("upsert", q(upsert))
run("delete", q(delete))
run("transaction", q(transaction))

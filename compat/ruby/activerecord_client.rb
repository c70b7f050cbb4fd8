# ActiveRecord 6.1 with its defaults (the postgresql adapter, partial
# writes, prepared statements): find, save!, create!, insert_all, upsert,
# destroy, group(:customer_id) and a nested transaction (a savepoint).
require 'active_record'
require_relative 'common'

ActiveRecord::Base.establish_connection(URL)

class Customer < ActiveRecord::Base
  self.primary_key = 'customer_id'
  has_many :orders, foreign_key: :customer_id
end

class Order < ActiveRecord::Base
  self.primary_key = 'order_id'
  belongs_to :customer
end

run('list') do
  Customer.where(segment: 'premium').order(customer_id: :desc).limit(5).offset(2)
          .map { |c| [c.customer_id, c.first_name, c.last_name, c.email, c.city, c.postal_code] }
end
run('get') do
  c = Customer.find(CUSTOMER)
  [[c.customer_id, c.first_name, c.last_name, c.email, c.phone, c.postal_code]]
end
run('count') { [[Customer.where(segment: 'premium').count]] }
run('join') do
  Order.joins(:customer).where(customer_id: CUSTOMER).order(:order_id)
       .select('orders.order_id, orders.status, customers.last_name')
       .map { |o| [o.order_id, o.status, o.last_name] }
end
run('aggregate') do
  Customer.where(segment: 'premium').left_joins(:orders).group(:customer_id).order(:customer_id).limit(5)
          .select('customers.*, COUNT(orders.order_id) AS n')
          .map { |c| [c.customer_id, c.last_name, c.n] }
end
run('update') do
  c = Customer.find(CUSTOMER)
  c.phone = NEW_PHONE
  c.save!
  []
end
run('create') { [[Customer.create!(new_customer(1, 'Create')).customer_id]] }
run('bulk') do
  Customer.insert_all([2, 3, 4].map { |n| new_customer(n, 'Bulk') })
  []
end
run('upsert') do
  Customer.upsert(new_customer(8, 'Fixture', phone: '+1 555 0108'), unique_by: :customer_id)
  []
end
run('delete') do
  Customer.find(BASE + 9).destroy!
  []
end
run('transaction') do
  inner = 'ok'
  Customer.transaction do
    begin
      Customer.transaction(requires_new: true) { Customer.create!(new_customer(5, 'South', region: 'south')) }
    rescue ActiveRecord::StatementInvalid => e
      inner = sqlstate(e)
    end
    Customer.create!(new_customer(6, 'After'))
  end
  [[inner]]
end

# What the Ruby clients share: the connection URL, the operations'
# constants, and one JSON line per operation (see compat_test.go).
require 'json'
require 'time'

URL = ENV.fetch('PGCLOAK_URL')
CUSTOMER = Integer(ENV.fetch('COMPAT_CUSTOMER'))
BASE = 9_000_000
NEW_PHONE = '+1 555 0199'
CREATED = Time.utc(2024, 1, 1)

# The fields of new customer BASE+n.
def new_customer(n, last, region: 'north', phone: nil)
  { customer_id: BASE + n, customer_number: "CMP-#{n}", first_name: 'Compat', last_name: last,
    email: "#{last.downcase}@example.org", phone: phone || format('+1 555 01%02d', n),
    region: region, segment: 'consumer', created_at: CREATED }
end

def emit(op, rows: nil, error: nil)
  out = { op: op }
  if error
    out[:code] = sqlstate(error)
    out[:error] = error.message.lines.first.to_s.strip
  else
    out[:rows] = (rows || []).map { |r| r.map { |v| v.nil? ? nil : v.to_s } }
  end
  puts JSON.generate(out)
  $stdout.flush
end

# The SQLSTATE of a PG::Error, or of the one ActiveRecord wraps.
def sqlstate(e)
  [e, e.respond_to?(:cause) ? e.cause : nil].compact.each do |x|
    if x.respond_to?(:result) && x.result
      code = x.result.error_field(PG::Result::PG_DIAG_SQLSTATE)
      return code if code
    end
  end
  ''
end

# Runs one operation and prints its answer; an error is an answer too.
def run(op)
  emit(op, rows: yield)
rescue StandardError => e
  warn "#{op}: #{e.class}: #{e.message}"
  emit(op, error: e)
end

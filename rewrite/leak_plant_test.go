package rewrite_test

// Canaries for the leak suite (leak_test.go): every protected cell that some
// restricted role must not see raw holds a unique value, and visibility
// below says, from the rules' meaning (examples/crm/rules.yaml), which role
// may see which cell raw. The rewrite is never asked.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/rules"
)

// leakCell is one planted cell.
type leakCell struct {
	row   *leakRow
	col   string
	value string // the raw value as PostgreSQL prints it (and as placeholders expand)
	lit   string // the SQL literal written into the table
	// token is what must not reach a client that may not see the cell raw:
	// the unique part of the value, chosen so that no mask keeps it.
	token string
	// absent is a value of the same shape that no cell holds, for the
	// existence probes.
	absent string
}

// leakRow is one planted row.
type leakRow struct {
	table   string // the table the row is inserted into
	rules   string // the rules table that protects it (the parent for a child table)
	key     string // C1, O2, …: placeholders say ${C1.national_id}
	subject string // key of its data subject (customers row), if linked to one
	account string // key of its account (accounts and contacts rows)
	cells   []*leakCell
	extra   []*leakCell // NOT NULL columns with ordinary values (no canary)
}

type leakCustomer struct {
	region  string
	optOuts []string
}

type leakAccount struct{ region string }

// planting is everything planted, with the meaning of each row.
type planting struct {
	rows      []*leakRow
	cells     map[string]*leakCell // "C1.national_id" → cell
	customers map[string]leakCustomer
	accounts  map[string]leakAccount
}

func (p *planting) row(table, key string) *leakRow {
	r := &leakRow{table: table, rules: table, key: key}
	p.rows = append(p.rows, r)
	return r
}

func (p *planting) add(r *leakRow, c *leakCell) {
	c.row = r
	r.cells = append(r.cells, c)
	p.cells[r.key+"."+c.col] = c
}

// text plants prefix+token+suffix: the masks keep at most a prefix or a
// suffix (initial, last4, postcode_area, email, ticket_text), never the token.
func (p *planting) text(r *leakRow, col, prefix, suffix string) {
	tok := "CNRY_" + r.key + "_" + col
	v := prefix + tok + suffix
	p.add(r, &leakCell{col: col, value: v, lit: rules.QuoteLiteral(v), token: tok,
		absent: prefix + tok + "NOPE" + suffix})
}

// number plants a numeric value that is its own token; absent must exist
// nowhere.
func (p *planting) number(r *leakRow, col, v, absent string) {
	p.add(r, &leakCell{col: col, value: v, lit: v, token: v, absent: absent})
}

func (p *planting) date(r *leakRow, col, v, absent string) {
	p.add(r, &leakCell{col: col, value: v, lit: rules.QuoteLiteral(v), token: v, absent: absent})
}

// fixed is a NOT NULL column with no canary (region, foreign keys to
// ordinary rows, timestamps).
func (p *planting) fixed(r *leakRow, col, lit string) {
	r.extra = append(r.extra, &leakCell{row: r, col: col, lit: lit})
}

// ref plants a reference to another planted row's numeric key: the same
// token, seen through another table.
func (p *planting) ref(r *leakRow, col string, to *leakCell) {
	p.add(r, &leakCell{col: col, value: to.value, lit: to.lit, token: to.token, absent: to.absent})
}

// Planted customers: C1–C8 in customers, C9–C10 in customers_vip (a child
// table pgcloak must protect as customers).
var leakCustomers = []struct {
	key, region string
	optOuts     []string
	child       bool
}{
	{"C1", "north", nil, false},
	{"C2", "south", nil, false},
	{"C3", "east", nil, false},
	{"C4", "north", []string{rules.DirectMarketing}, false},
	{"C5", "north", []string{rules.AutomatedDecision}, false},
	{"C6", "north", []string{rules.ThirdPartyDisclosure}, false},
	{"C7", "north", []string{rules.SensitiveData}, false},
	{"C8", "west", []string{rules.DirectMarketing, rules.ThirdPartyDisclosure, rules.AutomatedDecision, rules.SensitiveData}, false},
	{"C9", "south", nil, true},
	{"C10", "north", nil, true},
}

// plantCanaries inserts the canaries as the superuser and returns what it
// planted.
func plantCanaries(ctx context.Context, conn *pgx.Conn) (*planting, error) {
	reps := map[string]string{}
	rows, err := conn.Query(ctx, "SELECT DISTINCT ON (region) region, rep_id::text FROM sales_reps ORDER BY region, rep_id")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var region, id string
		if err := rows.Scan(&region, &id); err != nil {
			return nil, err
		}
		reps[region] = id
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	p := buildPlanting(reps)
	// Insert in dependency order: the planting order is one.
	for _, r := range p.rows {
		var cols, vals []string
		for _, c := range append(slices.Clone(r.cells), r.extra...) {
			cols = append(cols, c.col)
			vals = append(vals, c.lit)
		}
		sql := "INSERT INTO " + r.table + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(vals, ", ") + ")"
		if _, err := conn.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("planting %s: %w", r.key, err)
		}
	}
	return p, nil
}

// buildPlanting lays out the canaries; reps gives an existing sales rep of
// each region.
func buildPlanting(reps map[string]string) *planting {
	p := &planting{cells: map[string]*leakCell{}, customers: map[string]leakCustomer{}, accounts: map[string]leakAccount{}}

	camp := p.row("campaigns", "P1")
	p.number(camp, "campaign_id", "7394001", "7394901")
	p.text(camp, "name", "", "")
	p.text(camp, "channel", "", "")
	p.fixed(camp, "starts_on", "'2020-01-01'")
	p.number(camp, "budget", "86420975.31", "86420975.32")
	p.fixed(camp, "manager", "'mia'") // every planted customer is a member: mia's campaign

	for i, c := range leakCustomers {
		n := i + 1
		p.customers[c.key] = leakCustomer{region: c.region, optOuts: c.optOuts}
		r := p.row("customers", c.key)
		r.rules = "customers"
		if c.child {
			r.table = "customers_vip"
		}
		r.subject = c.key
		id := fmt.Sprint(73910000 + n)
		p.number(r, "customer_id", id, fmt.Sprint(73910900+n))
		p.text(r, "customer_number", "N-", "")
		p.text(r, "first_name", "", "")
		p.text(r, "last_name", "Z", "")
		p.text(r, "email", "e", "@canary.test")
		p.text(r, "phone", "", "5550")
		p.date(r, "birth_date", fmt.Sprintf("19%02d-07-13", n), fmt.Sprintf("18%02d-07-13", n))
		p.text(r, "gender", "", "")
		p.number(r, "annual_income", fmt.Sprintf("%d.37", 61000000+1011*n), fmt.Sprintf("%d.38", 61000000+1011*n))
		p.text(r, "street", "", "")
		p.text(r, "city", "", "")
		p.text(r, "postal_code", "PC", "")
		p.fixed(r, "region", rules.QuoteLiteral(c.region))
		p.text(r, "segment", "", "")
		p.number(r, "loyalty_points", fmt.Sprint(7319000+13*n), fmt.Sprint(7319000+13*n+5))
		p.text(r, "preferred_channel", "", "")
		p.text(r, "national_id", "", "4321")
		p.text(r, "religion", "", "")
		p.text(r, "ethnicity", "", "")
		p.text(r, "health_notes", "", "")
		p.fixed(r, "rep_id", reps[c.region])
		p.fixed(r, "created_at", "now()")
		if c.child {
			p.text(r, "vip_note", "", "")
			continue // a child row is not referenced by foreign keys
		}
		cid := r.cells[0]
		for _, purpose := range c.optOuts {
			x := p.row("customer_opt_outs", "X"+c.key[1:]+"_"+purpose)
			x.subject = c.key
			p.ref(x, "customer_id", cid)
			p.fixed(x, "purpose", rules.QuoteLiteral(purpose))
			p.fixed(x, "opted_out_at", "now()")
		}
		o := p.row("orders", fmt.Sprint("O", n))
		o.subject = c.key
		p.number(o, "order_id", fmt.Sprint(73920000+n), fmt.Sprint(73920900+n))
		p.ref(o, "customer_id", cid)
		p.fixed(o, "ordered_at", "now()")
		p.text(o, "status", "", "")
		p.number(o, "total_amount", fmt.Sprintf("%d.11", 42420000+1111*n), fmt.Sprintf("%d.12", 42420000+1111*n))
		p.text(o, "shipping_name", "S", "")
		p.text(o, "shipping_street", "", "")
		p.text(o, "shipping_city", "", "")
		p.text(o, "shipping_postal_code", "PC", "")
		p.text(o, "shipping_region", "", "")

		l := p.row("order_lines", fmt.Sprint("L", n))
		l.subject = c.key
		p.ref(l, "order_id", o.cells[0])
		p.fixed(l, "line_no", "1")
		p.text(l, "product_sku", "", "")
		p.fixed(l, "quantity", "1")
		p.number(l, "unit_price", fmt.Sprintf("%d.17", 31310000+1111*n), fmt.Sprintf("%d.18", 31310000+1111*n))

		t := p.row("support_tickets", fmt.Sprint("T", n))
		t.subject = c.key
		p.number(t, "ticket_id", fmt.Sprint(73930000+n), fmt.Sprint(73930900+n))
		p.ref(t, "customer_id", cid)
		p.fixed(t, "opened_at", "now()")
		p.text(t, "channel", "", "")
		p.text(t, "status", "", "")
		p.text(t, "subject", "", "")
		p.text(t, "body", "Ticket body padding:", "") // ticket_text keeps the first 20 characters

		g := p.row("campaign_members", fmt.Sprint("G", n))
		g.subject = c.key
		p.fixed(g, "campaign_id", "7394001")
		p.ref(g, "customer_id", cid)
		p.fixed(g, "added_at", "now()")
	}

	for i, region := range []string{"north", "south"} {
		n := i + 1
		a := p.row("accounts", fmt.Sprint("A", n))
		a.account = a.key
		p.accounts[a.key] = leakAccount{region: region}
		p.number(a, "account_id", fmt.Sprint(7395000+n), fmt.Sprint(7395900+n))
		p.text(a, "name", "", "")
		p.text(a, "industry", "", "")
		p.fixed(a, "region", rules.QuoteLiteral(region))
		p.number(a, "annual_revenue", fmt.Sprintf("%d.19", 53530000+1111*n), fmt.Sprintf("%d.29", 53530000+1111*n))
		p.fixed(a, "rep_id", reps[region])

		k := p.row("contacts", fmt.Sprint("K", n))
		k.account = a.key
		p.number(k, "contact_id", fmt.Sprint(7396000+n), fmt.Sprint(7396900+n))
		p.ref(k, "account_id", a.cells[0])
		p.text(k, "first_name", "", "")
		p.text(k, "last_name", "Z", "")
		p.text(k, "job_title", "", "")
		p.text(k, "email", "e", "@canary.test")
		p.text(k, "phone", "", "5550")
	}

	rep := p.row("sales_reps", "R9")
	p.number(rep, "rep_id", "7397001", "7397901")
	p.text(rep, "login", "", "")
	p.text(rep, "full_name", "", "")
	p.text(rep, "email", "r", "@canary.test")
	p.fixed(rep, "region", "'north'")

	com := p.row("commissions", "M1")
	p.number(com, "commission_id", "7398001", "7398901")
	p.fixed(com, "rep_id", reps["north"])
	p.fixed(com, "period", "'2019-01-01'")
	p.number(com, "amount", "13579246.81", "13579246.82")

	tgt := p.row("sales_targets", "S1")
	p.ref(tgt, "rep_id", rep.cells[0])
	p.fixed(tgt, "period", "'1999-12-01'")
	p.number(tgt, "target_amount", "24681357.92", "24681357.93")

	return p
}

// leakRole is what the rules give one login, written out by hand from
// rules.yaml: the tables it may read, its row filter (by region), the
// purposes whose opt-outs remove rows, its profile and its overrides.
type leakRole struct {
	login    string
	tables   []string // nil: every table but the confidential ones (and except)
	except   []string
	region   string // sales reps: their region
	purposes []string
	profile  string // standard, contact_free, anonymized, disclosure
	show     []string
	hide     []string
	// groups limits the suite to these groups (nil: all). The other sales
	// reps differ from alice only in their region: they run what reads rows.
	groups []string
}

// rowGroups are the groups whose answers depend on the row filter.
var rowGroups = []string{"direct reads", "schema-qualified and quoted names", "whole-row references and JSON",
	"subqueries and CTEs", "set operations", "LATERAL and joins", "aggregates", "error probes on rows outside the filter",
	"existence probes by row count", "writes as existence probes"}

var leakRoles = []*leakRole{
	{login: "alice", except: []string{"commissions", "sales_targets"}, region: "north", profile: "standard", show: []string{"customers.phone"}},
	{login: "bob", except: []string{"commissions", "sales_targets"}, region: "south", profile: "standard", show: []string{"customers.phone"}, groups: rowGroups},
	{login: "erin", except: []string{"commissions", "sales_targets"}, region: "east", profile: "standard", show: []string{"customers.phone"}, groups: rowGroups},
	{login: "sam", tables: []string{"customers", "orders", "order_lines", "support_tickets"}, profile: "standard", show: []string{"support_tickets.body"}},
	{login: "connie", tables: []string{"customers", "orders", "order_lines", "accounts", "contacts", "campaigns"}, profile: "standard",
		hide: []string{"customers.email", "customers.phone", "customers.street", "contacts.email", "contacts.phone"}},
	{login: "walt", tables: []string{"orders", "order_lines"}, profile: "standard",
		show: []string{"orders.shipping_name", "orders.shipping_street", "orders.shipping_city", "orders.shipping_postal_code"}},
	{login: "victor", tables: []string{"customers", "orders", "order_lines", "accounts", "sales_reps", "commissions", "sales_targets"}, profile: "standard",
		hide: []string{"customers.email", "customers.phone", "customers.street"}},
	{login: "mia", tables: []string{"customers", "campaigns", "campaign_members"}, purposes: []string{rules.DirectMarketing}, profile: "standard"},
	{login: "ana", tables: []string{"customers", "orders", "order_lines", "support_tickets", "campaigns", "campaign_members"}, purposes: []string{rules.AutomatedDecision}, profile: "anonymized"},
	{login: "dex", tables: []string{"customers", "orders", "order_lines"}, purposes: []string{rules.ThirdPartyDisclosure}, profile: "disclosure",
		show: []string{"customers.city"}},
}

func (r *leakRole) tableAllowed(t string) bool {
	if r.tables != nil {
		return slices.Contains(r.tables, t)
	}
	return !slices.Contains(r.except, t) && t != "commissions" && t != "sales_targets"
}

func (p *planting) rowVisible(r *leakRole, row *leakRow) bool {
	if row.subject != "" {
		c := p.customers[row.subject]
		if r.region != "" && c.region != r.region {
			return false
		}
		for _, pur := range r.purposes {
			if slices.Contains(c.optOuts, pur) {
				return false
			}
		}
	}
	if row.account != "" && r.region != "" && p.accounts[row.account].region != r.region {
		return false
	}
	return true
}

// rawVisible says whether role r sees cell c as it is stored.
func (p *planting) rawVisible(pol *rules.Policy, r *leakRole, c *leakCell) bool {
	if !r.tableAllowed(c.row.rules) || !p.rowVisible(r, c.row) {
		return false
	}
	col := c.row.rules + "." + c.col
	if slices.Contains(r.hide, col) {
		return false
	}
	if slices.Contains(r.show, col) {
		return true
	}
	class := pol.UnclassedClass()
	if tc := pol.Table(rules.TableName{Schema: "public", Name: c.row.rules}).Column(c.col); tc != nil {
		class = tc.Class
	}
	switch r.profile {
	case "standard":
		return class == rules.Identity || class == rules.Public
	case "anonymized", "disclosure":
		// Keys are pseudonymized and free text hidden, public or not.
		t := rules.TableName{Schema: "public", Name: c.row.rules}
		if pol.KeyColumn(t, c.col) {
			return false
		}
		if tc := pol.Table(t).Column(c.col); tc != nil && tc.FreeText {
			return false
		}
		return class == rules.Public
	}
	panic("unknown profile " + r.profile)
}

// forbidden returns the tokens role r must never receive: those of cells
// it may not see raw, except values it sees raw in another cell (a
// customer id in orders for the warehouse, say).
func (p *planting) forbidden(pol *rules.Policy, r *leakRole) map[string]bool {
	seen := map[string]bool{}
	for _, c := range p.cells {
		if p.rawVisible(pol, r, c) {
			seen[c.token] = true
		}
	}
	out := map[string]bool{}
	for _, c := range p.cells {
		if !seen[c.token] {
			out[c.token] = true
		}
	}
	return out
}

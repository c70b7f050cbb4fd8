package crm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options size the generated data. The zero value gives the defaults.
type Options struct {
	// Customers is the number of customers; 0 means DefaultCustomers.
	Customers int
	// Seed makes the data: the same seed and size give the same rows.
	// 0 means 1.
	Seed uint64
}

// DefaultCustomers is the demo's size.
const DefaultCustomers = 25000

// Regions are the sales regions; customers, accounts and reps each have one.
var Regions = []string{"north", "south", "east", "west"}

// OptOutShare is the share of customers who opted out of each purpose.
var OptOutShare = map[string]float64{
	"direct_marketing":       0.22,
	"third_party_disclosure": 0.31,
	"automated_decision":     0.09,
	"sensitive_data":         0.06,
}

// Stats counts what Load wrote.
type Stats struct {
	Customers, Accounts, Contacts, Orders, OrderLines, Tickets, CampaignMembers int
	OptOuts                                                                     map[string]int
	CustomersByRegion                                                           map[string]int
}

// tables in the order they are dropped.
var tables = []string{"campaign_members", "campaigns", "sales_targets", "commissions", "support_tickets",
	"order_lines", "orders", "contacts", "accounts", "customer_opt_outs", "customers", "sales_reps"}

// Reps are the sales reps: login and region. alice, bob and erin are sample
// principals (erin's region comes from this table through an attribute
// query); the others have no database login.
var Reps = []struct{ Login, Name, Region string }{
	{"alice", "Alice Martin", "north"},
	{"bob", "Bob Novak", "south"},
	{"erin", "Erin Kowalski", "east"},
	{"wade", "Wade Osei", "west"},
	{"nora", "Nora Lind", "north"},
	{"sid", "Sid Romero", "south"},
	{"eli", "Eli Brandt", "east"},
	{"wanda", "Wanda Price", "west"},
}

// Load replaces the sample CRM in the database conn is connected to: it
// drops the sample tables, runs Schema (which also creates the sample login
// roles if they are missing, so conn needs CREATEROLE) and fills the tables
// with generated rows using COPY.
func Load(ctx context.Context, conn *pgx.Conn, opts Options) (*Stats, error) {
	if opts.Customers <= 0 {
		opts.Customers = DefaultCustomers
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+strings.Join(tables, ", ")+" CASCADE"); err != nil {
		return nil, fmt.Errorf("crm: dropping the sample tables: %w", err)
	}
	if _, err := conn.Exec(ctx, Schema); err != nil {
		return nil, fmt.Errorf("crm: schema: %w", err)
	}
	g := &generator{rnd: rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15)), n: opts.Customers,
		stats: &Stats{OptOuts: map[string]int{}, CustomersByRegion: map[string]int{}}}
	g.plan()
	for _, t := range g.copies() {
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{t.table}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
			return nil, fmt.Errorf("crm: copying %s: %w", t.table, err)
		}
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+strings.Join(tables, ", ")); err != nil {
		return nil, fmt.Errorf("crm: analyze: %w", err)
	}
	return g.stats, nil
}

type copyData struct {
	table string
	cols  []string
	rows  [][]any
}

type customer struct {
	id                        int64
	first, last, street, city string
	postal, region            string
}

type generator struct {
	rnd       *rand.Rand
	n         int
	stats     *Stats
	customers []customer
	out       []copyData
}

var (
	base        = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	firstNames  = []string{"Anna", "Ben", "Clara", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca", "Maya", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Samir", "Tara", "Uma", "Viktor", "Wen", "Yara", "Zoe"}
	lastNames   = []string{"Adler", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ibrahim", "Jensen", "Kaur", "Larsen", "Moreau", "Nowak", "Okafor", "Petrov", "Quist", "Rossi", "Silva", "Tanaka", "Usman", "Varga", "Weber", "Young", "Zhang"}
	streets     = []string{"Oak", "Maple", "Harbor", "Mill", "Church", "Station", "Park", "River", "Hill", "Market"}
	cities      = map[string][]string{"north": {"Northport", "Frostvale", "Pinecrest"}, "south": {"Southby", "Palmcove", "Sunridge"}, "east": {"Eastwick", "Dawnfield", "Seaview"}, "west": {"Westmere", "Dustfall", "Redrock"}}
	regionShare = []float64{0.30, 0.25, 0.25, 0.20}
	domains     = []string{"example.com", "mail.example", "post.example", "inbox.example"}
	religions   = []string{"christian", "muslim", "jewish", "hindu", "buddhist", "none"}
	ethnicities = []string{"group_a", "group_b", "group_c", "group_d"}
	health      = []string{"diabetic", "wheelchair user", "hearing impaired", "severe nut allergy", "pregnant"}
	industries  = []string{"retail", "logistics", "manufacturing", "health care", "software", "hospitality"}
	subjects    = []string{"Late delivery", "Wrong size", "Refund request", "Damaged item", "Change of address", "Invoice question"}
	statuses    = []string{"placed", "shipped", "delivered", "delivered", "delivered", "returned"}
)

func (g *generator) pick(s []string) string { return s[g.rnd.IntN(len(s))] }

func (g *generator) chance(p float64) bool { return g.rnd.Float64() < p }

func (g *generator) region() string {
	x := g.rnd.Float64()
	for i, s := range regionShare {
		if x < s {
			return Regions[i]
		}
		x -= s
	}
	return Regions[len(Regions)-1]
}

func (g *generator) phone() string {
	return fmt.Sprintf("+1-555-%03d-%04d", g.rnd.IntN(1000), g.rnd.IntN(10000))
}

func (g *generator) money(lo, hi float64) float64 {
	return float64(int64((lo+g.rnd.Float64()*(hi-lo))*100)) / 100
}

func (g *generator) at(daysBack int) time.Time {
	return base.Add(-time.Duration(g.rnd.Int64N(int64(daysBack)*24*3600)) * time.Second)
}

func (g *generator) add(table string, cols []string, rows [][]any) {
	g.out = append(g.out, copyData{table, cols, rows})
}

func (g *generator) copies() []copyData { return g.out }

func orNil[T any](ok bool, v T) any {
	if ok {
		return v
	}
	return nil
}

func (g *generator) plan() {
	repsByRegion := map[string][]int32{}
	var reps [][]any
	for i, r := range Reps {
		id := int32(i + 1)
		repsByRegion[r.Region] = append(repsByRegion[r.Region], id)
		reps = append(reps, []any{id, r.Login, r.Name, r.Login + "@crm.example", r.Region})
	}
	g.add("sales_reps", []string{"rep_id", "login", "full_name", "email", "region"}, reps)

	var custs, optouts [][]any
	purposes := []string{"direct_marketing", "third_party_disclosure", "automated_decision", "sensitive_data"}
	for i := 0; i < g.n; i++ {
		c := customer{id: int64(i + 1), first: g.pick(firstNames), last: g.pick(lastNames), region: g.region()}
		c.city = g.pick(cities[c.region])
		c.street = fmt.Sprintf("%d %s St", 1+g.rnd.IntN(400), g.pick(streets))
		c.postal = fmt.Sprintf("%05d", g.rnd.IntN(100000))
		g.customers = append(g.customers, c)
		g.stats.CustomersByRegion[c.region]++
		birth := time.Date(1940+g.rnd.IntN(66), time.Month(1+g.rnd.IntN(12)), 1+g.rnd.IntN(28), 0, 0, 0, 0, time.UTC)
		income := 15000 + g.rnd.ExpFloat64()*45000
		custs = append(custs, []any{
			c.id, fmt.Sprintf("C%08d", c.id), c.first, c.last,
			orNil(g.chance(0.95), strings.ToLower(fmt.Sprintf("%s.%s%d@%s", c.first, c.last, c.id, g.pick(domains)))),
			orNil(g.chance(0.9), g.phone()),
			orNil(g.chance(0.85), birth),
			g.pick([]string{"female", "male", "diverse"}),
			orNil(g.chance(0.7), fmt.Sprintf("%.2f", income)),
			c.street, c.city, c.postal, c.region,
			g.pick([]string{"consumer", "consumer", "premium", "small_business"}),
			int32(g.rnd.IntN(20000)),
			g.pick([]string{"email", "phone", "mail", "none"}),
			orNil(g.chance(0.8), fmt.Sprintf("%03d-%02d-%04d", 100+g.rnd.IntN(800), 1+g.rnd.IntN(99), 1+g.rnd.IntN(9999))),
			orNil(g.chance(0.4), g.pick(religions)),
			orNil(g.chance(0.3), g.pick(ethnicities)),
			orNil(g.chance(0.1), g.pick(health)),
			repsByRegion[c.region][g.rnd.IntN(len(repsByRegion[c.region]))],
			g.at(3650),
		})
		for _, p := range purposes {
			if g.chance(OptOutShare[p]) {
				optouts = append(optouts, []any{c.id, p, g.at(1000)})
				g.stats.OptOuts[p]++
			}
		}
	}
	g.stats.Customers = g.n
	g.add("customers", []string{"customer_id", "customer_number", "first_name", "last_name", "email", "phone",
		"birth_date", "gender", "annual_income", "street", "city", "postal_code", "region", "segment",
		"loyalty_points", "preferred_channel", "national_id", "religion", "ethnicity", "health_notes",
		"rep_id", "created_at"}, custs)
	g.add("customer_opt_outs", []string{"customer_id", "purpose", "opted_out_at"}, optouts)

	var accounts, contacts [][]any
	nAccounts := max(g.n/100, 8)
	for i := 1; i <= nAccounts; i++ {
		region := Regions[i%len(Regions)]
		accounts = append(accounts, []any{int32(i), fmt.Sprintf("%s %s Ltd", g.pick(lastNames), g.pick([]string{"Trading", "Systems", "Foods", "Logistics", "Works"})),
			g.pick(industries), region, g.money(1e5, 5e7), repsByRegion[region][0]})
		for j := 0; j < 3; j++ {
			first, last := g.pick(firstNames), g.pick(lastNames)
			contacts = append(contacts, []any{int32(len(contacts) + 1), int32(i), first, last,
				g.pick([]string{"Buyer", "CFO", "Office Manager", "Head of Purchasing"}),
				strings.ToLower(first + "." + last + "@" + g.pick(domains)), g.phone()})
		}
	}
	g.stats.Accounts, g.stats.Contacts = len(accounts), len(contacts)
	g.add("accounts", []string{"account_id", "name", "industry", "region", "annual_revenue", "rep_id"}, accounts)
	g.add("contacts", []string{"contact_id", "account_id", "first_name", "last_name", "job_title", "email", "phone"}, contacts)

	var orders, lines, tickets [][]any
	for _, c := range g.customers {
		for k := g.rnd.IntN(5); k > 0; k-- {
			id := int64(len(orders) + 1)
			street, city, postal, region := c.street, c.city, c.postal, c.region
			if g.chance(0.1) { // a gift, or the office
				region = g.pick(Regions)
				street, city, postal = fmt.Sprintf("%d %s St", 1+g.rnd.IntN(400), g.pick(streets)), g.pick(cities[region]), fmt.Sprintf("%05d", g.rnd.IntN(100000))
			}
			var total float64
			for l := 1 + g.rnd.IntN(4); l > 0; l-- {
				qty, price := int32(1+g.rnd.IntN(3)), g.money(3, 300)
				total += float64(qty) * price
				lines = append(lines, []any{id, int32(len(lines) + 1), fmt.Sprintf("SKU-%05d", g.rnd.IntN(5000)), qty, fmt.Sprintf("%.2f", price)})
			}
			orders = append(orders, []any{id, c.id, g.at(1500), g.pick(statuses), fmt.Sprintf("%.2f", total),
				c.first + " " + c.last, street, city, postal, region})
		}
		if g.chance(0.3) {
			for k := 1 + g.rnd.IntN(2); k > 0; k-- {
				s := g.pick(subjects)
				tickets = append(tickets, []any{int64(len(tickets) + 1), c.id, g.at(900), g.pick([]string{"email", "phone", "chat"}),
					g.pick([]string{"open", "closed", "closed"}), s,
					fmt.Sprintf("Hello, this is %s %s. %s: please call me back at %s.", c.first, c.last, s, g.phone())})
			}
		}
	}
	g.stats.Orders, g.stats.OrderLines, g.stats.Tickets = len(orders), len(lines), len(tickets)
	g.add("orders", []string{"order_id", "customer_id", "ordered_at", "status", "total_amount", "shipping_name",
		"shipping_street", "shipping_city", "shipping_postal_code", "shipping_region"}, orders)
	g.add("order_lines", []string{"order_id", "line_no", "product_sku", "quantity", "unit_price"}, lines)
	g.add("support_tickets", []string{"ticket_id", "customer_id", "opened_at", "channel", "status", "subject", "body"}, tickets)

	var comms, targets [][]any
	for i := range Reps {
		for m := 1; m <= 12; m++ {
			period := time.Date(2024, time.Month(m), 1, 0, 0, 0, 0, time.UTC)
			comms = append(comms, []any{int32(len(comms) + 1), int32(i + 1), period, fmt.Sprintf("%.2f", g.money(500, 9000))})
			if m%3 == 1 {
				targets = append(targets, []any{int32(i + 1), period, fmt.Sprintf("%.2f", g.money(50000, 400000))})
			}
		}
	}
	g.add("commissions", []string{"commission_id", "rep_id", "period", "amount"}, comms)
	g.add("sales_targets", []string{"rep_id", "period", "target_amount"}, targets)

	var campaigns, members [][]any
	for i := 1; i <= 10; i++ {
		campaigns = append(campaigns, []any{int32(i), fmt.Sprintf("Campaign %d: %s", i, g.pick([]string{"Spring sale", "Loyalty bonus", "New store", "Winter deals"})),
			g.pick([]string{"email", "phone", "mail"}), base.AddDate(0, i-12, 0), fmt.Sprintf("%.2f", g.money(5000, 80000)),
			[]string{"max", "mia"}[i%2]})
		for _, c := range g.customers {
			if g.chance(0.05) {
				members = append(members, []any{int32(i), c.id, g.at(300), g.chance(0.2)})
			}
		}
	}
	g.stats.CampaignMembers = len(members)
	g.add("campaigns", []string{"campaign_id", "name", "channel", "starts_on", "budget", "manager"}, campaigns)
	g.add("campaign_members", []string{"campaign_id", "customer_id", "added_at", "responded"}, members)
}

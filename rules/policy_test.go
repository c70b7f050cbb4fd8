package rules

import (
	"errors"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/examples/crm"
)

func crmPolicy(t testing.TB) *Policy {
	t.Helper()
	p, err := Parse("rules.yaml", crm.Rules)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	customers = TableName{"public", "customers"}
	orders    = TableName{"public", "orders"}
)

func TestPrincipalInline(t *testing.T) {
	p := crmPolicy(t)
	alice, err := p.Principal("alice")
	if err != nil {
		t.Fatal(err)
	}
	if alice.Role.Name != "sales_rep" || alice.Attributes["region"] != "north" || alice.Unrestricted() || alice.Delegating || !alice.Ready() {
		t.Fatalf("alice = %+v", alice)
	}
	f, ok := alice.RowFilter(customers)
	if !ok || f.SQL != "region = 'north'::pg_catalog.text" {
		t.Fatalf("filter = %+v, %v", f, ok)
	}
	if _, ok := alice.RowFilter(orders); ok {
		t.Error("orders has no filter of its own")
	}
	if _, ok := alice.AttributeQuery(); ok {
		t.Error("alice has inline attributes")
	}
	dana, _ := p.Principal("dana")
	if !dana.Unrestricted() {
		t.Error("dana is the DBA")
	}
	app, _ := p.Principal("crm_app")
	if !app.Delegating || app.Role.Name != "none" || app.Table(customers).Allowed || app.Allows(StmtSelect) || !app.Allows(StmtTransaction) {
		t.Errorf("crm_app = %+v", app)
	}
}

func TestUnmappedLogin(t *testing.T) {
	p := crmPolicy(t)
	_, err := p.Principal("mallory")
	var ue *UnmappedLoginError
	if !errors.As(err, &ue) || ue.Login != "mallory" || !strings.Contains(err.Error(), `login "mallory" is not mapped to a role`) {
		t.Fatalf("err = %v", err)
	}
	// With a default role, unmapped logins get it.
	d, err := Parse("d.yaml", []byte(strings.Replace(string(crm.Rules), "  # No default:", "  default: {role: consultant}\n  #", 1)))
	if err != nil {
		t.Fatal(err)
	}
	pr, err := d.Principal("mallory")
	if err != nil || pr.Role.Name != "consultant" {
		t.Fatalf("pr = %+v, err = %v", pr, err)
	}
}

func TestAttributeQueryPending(t *testing.T) {
	p := crmPolicy(t)
	erin, err := p.Principal("erin")
	if err != nil {
		t.Fatal(err)
	}
	q, ok := erin.AttributeQuery()
	if !ok || !strings.Contains(q, "SELECT region FROM sales_reps WHERE login = $1") {
		t.Fatalf("query %q, %v", q, ok)
	}
	if erin.Ready() {
		t.Error("erin must not be ready before her query ran")
	}
	// Not ready: fail closed.
	if f, ok := erin.RowFilter(customers); !ok || f.SQL != "false" {
		t.Fatalf("unready filter = %+v", f)
	}
	bound, err := p.BindAttributes(erin, map[string]string{"region": "east"})
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := bound.RowFilter(customers); f.SQL != "region = 'east'::pg_catalog.text" {
		t.Fatalf("bound filter %q", f.SQL)
	}
	if _, ok := bound.AttributeQuery(); ok {
		t.Error("bound principal still has a pending query")
	}
	if _, err := p.BindAttributes(erin, map[string]string{}); err == nil {
		t.Error("missing attribute accepted")
	}
}

// An attribute value that tries to end the string constant stays one
// constant: the filter still has exactly one comparison.
func TestPlaceholderInjectionStaysLiteral(t *testing.T) {
	p := crmPolicy(t)
	for _, evil := range []string{
		"x' OR '1'='1",
		`x\' OR 1=1 --`,
		"x'; DROP TABLE customers; --",
		"$$ OR true $$",
		"north' OR region <> 'north",
	} {
		erin, _ := p.Principal("erin")
		pr, err := p.BindAttributes(erin, map[string]string{"region": evil})
		if err != nil {
			t.Fatal(err)
		}
		f, _ := pr.RowFilter(customers)
		tree, err := pg_query.Parse("SELECT 1 WHERE " + f.SQL)
		if err != nil {
			t.Fatalf("%q: bound filter %q does not parse: %v", evil, f.SQL, err)
		}
		w := tree.Stmts[0].Stmt.GetSelectStmt().WhereClause
		ax := w.GetAExpr()
		if ax == nil || ax.Lexpr.GetColumnRef() == nil {
			t.Fatalf("%q: filter is no longer one comparison: %s", evil, f.SQL)
		}
		got := ax.Rexpr.GetTypeCast().GetArg().GetAConst().GetSval().GetSval()
		if got != evil {
			t.Fatalf("%q: the constant is %q", evil, got)
		}
		if !strings.Contains(f.Node().String(), "a_expr") && f.Node().GetAExpr() == nil {
			t.Fatal("Node does not hold the predicate")
		}
	}
}

func TestColumnViews(t *testing.T) {
	p := crmPolicy(t)
	role := func(name string) *Role { return p.Role(name) }
	cases := []struct {
		role, table, col string
		action           Action
		mask             string
	}{
		{"sales_rep", "customers", "first_name", Show, ""},
		{"sales_rep", "customers", "last_name", Show, ""}, // identity is shown in standard
		{"sales_rep", "customers", "phone", Show, ""},     // role override
		{"sales_rep", "customers", "birth_date", MaskValue, "birth_year"},
		{"sales_rep", "customers", "religion", Hide, ""},
		{"sales_rep", "customers", "region", Show, ""},
		{"sales_rep", "customers", "shoe_size", MaskValue, "redact"}, // unclassed: personal
		{"consultant", "customers", "email", Hide, ""},
		{"consultant", "customers", "first_name", Show, ""},
		{"analyst", "customers", "email", Hide, ""},                           // identity: hidden by anonymized
		{"analyst", "customers", "customer_id", Pseudonymize, "pseudonymize"}, // the subject key
		{"analyst", "orders", "customer_id", Pseudonymize, "pseudonymize"},    // a link
		{"analyst", "orders", "order_id", Pseudonymize, "pseudonymize"},       // referenced by a link
		{"analyst", "orders", "shipping_postal_code", Hide, ""},               // a partial mask: hidden
		{"analyst", "support_tickets", "subject", Hide, ""},                   // free text
		{"analyst", "customers", "annual_income", MaskValue, "income_top"},
		{"disclosure_export", "customers", "customer_id", Pseudonymize, "pseudonymize"},
		{"sales_rep", "customers", "customer_id", Show, ""},
		{"disclosure_export", "customers", "religion", Deny, ""},
		{"disclosure_export", "customers", "city", Show, ""},
		{"privacy_officer", "customers", "religion", Show, ""},
		{"support", "support_tickets", "body", Show, ""},
		{"sales_rep", "support_tickets", "body", MaskValue, "ticket_text"},
		{"dba", "customers", "religion", Show, ""},
	}
	for _, c := range cases {
		v := role(c.role).Column(TableName{"public", c.table}, c.col)
		name := ""
		if v.Mask != nil {
			name = v.Mask.Name
		}
		if v.Action != c.action || name != c.mask {
			t.Errorf("%s %s.%s = %v %q, want %v %q", c.role, c.table, c.col, v.Action, name, c.action, c.mask)
		}
	}
	if v := role("sales_rep").Column(customers, "shoe_size"); v.Classed || v.Class != Personal {
		t.Errorf("unclassed view %+v", v)
	}
	// Sensitive opt-outs hide sensitive columns from everyone but the
	// privacy officer.
	if !role("disclosure_export").Column(customers, "national_id").HideIfOptedOut && role("disclosure_export").Column(customers, "national_id").Action != Deny {
		t.Error("sensitive opt-out not honoured")
	}
	if role("privacy_officer").Column(customers, "religion").HideIfOptedOut {
		t.Error("privacy officer sees sensitive data of opted-out subjects")
	}
	if role("sales_rep").Column(TableName{"public", "not_in_rules"}, "x").Action != Show {
		t.Error("unprotected table's column not shown")
	}
}

func TestTableAccess(t *testing.T) {
	p := crmPolicy(t)
	comm := TableName{"public", "commissions"}
	cases := []struct {
		role  string
		table TableName
		ok    bool
	}{
		{"sales_rep", customers, true},
		{"sales_rep", comm, false}, // confidential
		{"vp_sales", comm, true},
		{"warehouse", orders, true},
		{"warehouse", customers, false}, // not in its list
		{"analyst", TableName{"public", "sales_reps"}, false},
		{"sales_rep", TableName{"public", "not_in_rules"}, false}, // unlisted_tables: deny
		{"dba", TableName{"public", "not_in_rules"}, true},
	}
	for _, c := range cases {
		a := p.Role(c.role).Table(c.table)
		if a.Allowed != c.ok || (!a.Allowed && a.Reason == "") {
			t.Errorf("%s on %s: %+v", c.role, c.table, a)
		}
	}
}

func TestStatementKinds(t *testing.T) {
	p := crmPolicy(t)
	if !p.Role("sales_rep").Allows(StmtUpdate) || !p.Role("sales_rep").Allows(StmtDelete) || p.Role("sales_rep").Allows(StmtDDL) || p.Role("sales_rep").Allows(StmtMerge) {
		t.Error("sales_rep statements")
	}
	if !p.Role("consultant").Allows(StmtSelect) || p.Role("consultant").Allows(StmtInsert) {
		t.Error("default statements are select only")
	}
	if !p.Role("disclosure_export").Allows(StmtCopyTo) || p.Role("disclosure_export").Allows(StmtCopyFrom) {
		t.Error("copy_to")
	}
	if !p.Role("dba").Allows(StmtDDL) || !p.Role("consultant").Allows(StmtTransaction) {
		t.Error("dba and session kinds")
	}
}

func TestPurposesAndLinks(t *testing.T) {
	p := crmPolicy(t)
	if r := p.Role("senior_marketing"); !r.PurposeFixed || r.Purposes[0] != DirectMarketing {
		t.Errorf("marketing purposes %v", r.Purposes)
	}
	path := p.LinkPath(TableName{"public", "order_lines"})
	if len(path) != 2 || path[0].Name.Name != "order_lines" || path[1].Name.Name != "orders" ||
		path[1].Link.References != customers || path[0].Link.ReferencesColumn != "order_id" {
		t.Errorf("link path %v", path)
	}
	s := p.Subject()
	if got := s.OptedOut(DirectMarketing, "c"); got != `EXISTS (SELECT 1 FROM "public"."customer_opt_outs" pgcloak_o WHERE pgcloak_o."customer_id" = c."customer_id" AND pgcloak_o."purpose" = 'direct_marketing')` {
		t.Errorf("opted out: %s", got)
	}
}

func TestMaskSQL(t *testing.T) {
	p := crmPolicy(t)
	cases := []struct {
		mask, col, typ, want string
	}{
		{"initial", "last_name", "text", `(CASE WHEN pg_catalog.length("last_name") <= 1 THEN pg_catalog.repeat('*', pg_catalog.length("last_name")) ELSE pg_catalog.left("last_name", 1) || pg_catalog.repeat('*', pg_catalog.length("last_name") - 1) || pg_catalog.right("last_name", 0) END)::text`},
		{"birth_year", "birth_date", "date", `(pg_catalog.date_trunc('year', "birth_date"))::date`},
		{"income_band", "annual_income", "numeric(12,2)", `(pg_catalog.floor("annual_income"::numeric / 25000) * 25000)::numeric(12,2)`},
		{"ticket_text", "body", "text", `("left"("body", 20) || ' […]')`},
		{"street_hidden", "street", "text", `(CASE WHEN "street" IS NULL THEN NULL ELSE '(street withheld)' END)::text`},
	}
	for _, c := range cases {
		got, err := p.masksByName(c.mask).SQL(c.col, c.typ)
		if err != nil || got != c.want {
			t.Errorf("%s: %s, %v\nwant %s", c.mask, got, err, c.want)
		}
	}
	if _, err := pseudonymMask.SQL("d", "date"); err == nil {
		t.Error("pseudonymize accepted a date")
	}
	if got, _ := pseudonymMask.SQL("id", "integer"); got != `(pgcloak.pseudonym("id"::bigint, 31))::integer` {
		t.Error(got)
	}
	if got, _ := defaultMask.SQL("doc", "jsonb"); got != "NULL::jsonb" {
		t.Error(got)
	}
	if _, err := (ColumnView{Action: Deny}).SQL("x", "text"); err == nil {
		t.Error("deny renders")
	}
}

// masksByName finds a mask by name among the columns' masks, for tests.
func (p *Policy) masksByName(name string) *Mask {
	for _, t := range p.tableList {
		for _, c := range t.Columns {
			if c.Mask != nil && c.Mask.Name == name {
				return c.Mask
			}
		}
	}
	return nil
}

func TestVersionIsHashOfBytes(t *testing.T) {
	a := crmPolicy(t)
	b, err := Parse("x", append(append([]byte(nil), crm.Rules...), "\n# edited\n"...))
	if err != nil {
		t.Fatal(err)
	}
	if a.Version() == b.Version() || a.Version() != crmPolicy(t).Version() {
		t.Errorf("versions %s %s", a.Version(), b.Version())
	}
}

func TestDelegation(t *testing.T) {
	p := crmPolicy(t)
	app, _ := p.Principal("crm_app")
	alice, _ := p.Principal("alice")
	if eu, err := p.EndUser(app, "alice"); err != nil || eu.Role.Name != "sales_rep" {
		t.Fatalf("end user %+v, %v", eu, err)
	}
	if _, err := p.EndUser(alice, "bob"); err == nil {
		t.Error("a non-delegating login named an end user")
	}
	if _, err := p.EndUser(app, "dana"); err == nil {
		t.Error("an application named an unrestricted end user")
	}
	if _, err := p.EndUser(app, "mallory"); err == nil {
		t.Error("an unmapped end user")
	}
}

func BenchmarkColumnLookup(b *testing.B) {
	p := crmPolicy(b)
	alice, _ := p.Principal("alice")
	for b.Loop() {
		_ = alice.Column(customers, "email")
	}
}

// Per-table permissions, opt-out writers, review coverage and approvers
// of the sample rules.
func TestPermissionsAndReview(t *testing.T) {
	p := crmPolicy(t)
	role := p.Role
	optOuts := TableName{"public", "customer_opt_outs"}
	for _, c := range []struct {
		role  string
		table TableName
		what  string
		ok    bool
	}{
		{"sales_rep", optOuts, "DELETE", false},
		{"sales_rep", optOuts, "INSERT", false},
		{"sales_rep", customers, "DELETE", false},
		{"sales_rep", customers, "UPDATE", true},
		{"sales_rep", TableName{"public", "orders"}, "DELETE", true},
		{"sales_rep", TableName{"public", "sales_reps"}, "UPDATE", false},
		{"privacy_officer", optOuts, "INSERT", true},
		{"privacy_officer", TableName{"public", "commissions"}, "UPDATE", false},
		{"support", TableName{"public", "support_tickets"}, "INSERT", false}, // review: only UPDATEs are held
		{"support", customers, "UPDATE", true},
		{"senior_marketing", customers, "DELETE", false},
	} {
		ok, rule, why := role(c.role).MayWrite(c.table, c.what)
		if ok != c.ok || !ok && (rule == "" || why == "") {
			t.Errorf("%s %s on %s: %v %q %q", c.role, c.what, c.table, ok, rule, why)
		}
	}
	if ok, _, _ := role("support").MayWriteColumn(customers, "customer_id", "UPDATE"); ok {
		t.Error("a role whose changes are reviewed may set the subject key")
	}
	if ok, _, _ := role("sales_rep").MayWriteColumn(customers, "customer_id", "INSERT"); !ok {
		t.Error("an INSERT must give the subject key")
	}
	sup := role("support")
	for _, c := range []struct {
		table, col string
		held       bool
	}{
		{"customers", "region", true}, {"customers", "segment", true}, {"customers", "phone", true},
		{"support_tickets", "subject", true}, {"support_tickets", "customer_id", true},
		{"orders", "customer_id", true}, {"support_tickets", "status", false},
	} {
		if got := sup.Reviewed(TableName{"public", c.table}, c.col); got != c.held {
			t.Errorf("support %s.%s reviewed %v, want %v", c.table, c.col, got, c.held)
		}
	}
	if role("sales_rep").Reviewed(customers, "email") {
		t.Error("sales reps' changes are not reviewed")
	}
	if !role("privacy_officer").ApproveChanges || role("support").ApproveChanges {
		t.Error("approve_changes")
	}
	if p.MinK() != 5 || !role("analyst").Anonymizing() || role("sales_rep").Anonymizing() {
		t.Error("anonymity settings")
	}
	bad := []string{
		"roles:\n  x:\n    profile: standard\n    tables: [{customers: [insert]}]\n",
		"roles:\n  x:\n    profile: standard\n    tables: [{customers: [erase]}]\n",
		"roles:\n  x:\n    profile: standard\n    review_changes: true\n    review_exempt: {customers: [email]}\n",
		"anonymity: {min_k: 0}\n",
	}
	for _, b := range bad {
		src := "version: 1\nsubject: {table: customers, key: customer_id}\ntables:\n  customers:\n    columns: {customer_id: public, email: identity}\n" + b
		if _, err := Parse("x.yaml", []byte(src)); err == nil {
			t.Errorf("accepted:\n%s", b)
		}
	}
}

// TestBoundFiltersShared: the row filters bound for a (role, attributes)
// are bound once per policy and shared by the principals that have them;
// other attributes get their own; a filter's tree is still the caller's
// own copy.
func TestBoundFiltersShared(t *testing.T) {
	p := crmPolicy(t)
	a1, err := p.Principal("alice")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := p.Principal("alice")
	if err != nil {
		t.Fatal(err)
	}
	f1, _ := a1.RowFilter(customers)
	f2, _ := a2.RowFilter(customers)
	if f1 != f2 {
		t.Error("the second session of alice bound her filters again")
	}
	erin, err := p.Principal("erin")
	if err != nil {
		t.Fatal(err)
	}
	north, err := p.BindAttributes(erin, map[string]string{"region": "north"})
	if err != nil {
		t.Fatal(err)
	}
	east, err := p.BindAttributes(erin, map[string]string{"region": "east"})
	if err != nil {
		t.Fatal(err)
	}
	fn, _ := north.RowFilter(customers)
	fe, _ := east.RowFilter(customers)
	if fn != f1 || fe.SQL != "region = 'east'::pg_catalog.text" || fn.SQL != "region = 'north'::pg_catalog.text" {
		t.Fatalf("north %q (shared with alice: %v), east %q", fn.SQL, fn == f1, fe.SQL)
	}
	if n1, n2 := fn.Node(), fn.Node(); n1 == n2 {
		t.Error("Node must return a copy")
	}
	// Another policy (a reload) binds its own.
	q := crmPolicy(t)
	a3, err := q.Principal("alice")
	if err != nil {
		t.Fatal(err)
	}
	if f3, _ := a3.RowFilter(customers); f3 == f1 {
		t.Error("a reloaded policy shares the old one's filters")
	}
}

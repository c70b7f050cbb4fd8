package rewrite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/rules"
)

// TestReview2ReviewMaskBack (the reproducer of branch review2): support
// (sam) writes phone, street and postal_code blind and has its changes
// reviewed. Writing back the masked street, as Django's save() does, must
// not record a change request whose approval would write "(street
// withheld)" over the real street. Both protocols.
func TestReview2ReviewMaskBack(t *testing.T) {
	env := setupLeak(t)
	ctx := context.Background()
	w, err := dialWire(ctx, env.addr, "sam", leakDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	sql, _ := env.plant.expand(t, `UPDATE customers SET street = '(street withheld)', segment = segment WHERE customer_id = ${C1.customer_id}`, nil)
	for _, r := range []*response{w.simple(sql), w.prepared(sql, nil)} {
		t.Logf("sam: %s", strings.Join(r.outcome, " | "))
		if r.broken != nil || r.errored() {
			t.Fatalf("the write-back failed: %s", strings.Join(r.outcome, " | "))
		}
	}
	var n int
	if err := env.super.QueryRow(ctx, `SELECT count(*) FROM pgcloak.change_requests WHERE new_values ? 'street'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("a change request would write the mask over the real street (%d request(s))", n)
	}
}

// TestReviewWriteBack: an ORM's save() of a customer by a reviewed role
// (sam) writes every column with what sam was shown and a new phone. The
// change request holds the phone and no column sam sees masked or hidden:
// approving it changes the phone and nothing else. Writing back only what
// was shown records nothing. A masked column sam may not write blind
// (birth_date) is refused for any other value, the real one included, so the
// write-back is no oracle; a blind column answers a guess of the real
// value and any other value alike. Both protocols.
func TestReviewWriteBack(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var id int64
	if err := db.QueryRow(ctx, `SELECT customer_id FROM customers WHERE region = 'east' AND customer_id < 900000
		AND street IS NOT NULL AND postal_code IS NOT NULL AND email IS NOT NULL AND national_id IS NOT NULL AND annual_income IS NOT NULL
		AND birth_date IS NOT NULL AND phone IS NOT NULL ORDER BY customer_id LIMIT 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'customers'
		AND column_name <> 'customer_id' ORDER BY ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, c := range cols {
		texts = append(texts, rules.QuoteIdent(c)+"::text")
	}
	read := func(c *pgx.Conn) map[string]*string {
		t.Helper()
		vals := make([]*string, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := c.QueryRow(ctx, "SELECT "+strings.Join(texts, ", ")+" FROM customers WHERE customer_id = $1", id).Scan(dest...); err != nil {
			t.Fatal(err)
		}
		m := map[string]*string{}
		for i, c := range cols {
			m[c] = vals[i]
		}
		return m
	}
	lit := func(v *string) string {
		if v == nil {
			return "NULL"
		}
		return rules.QuoteLiteral(*v)
	}
	same := func(a, b *string) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
	raw := read(db)
	before := rowJSON(t, db, "customers", "customer_id", id)
	lastRequest := func() (n int64) {
		if err := db.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM pgcloak.change_requests").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	requests := func(since int64) []map[string]any {
		rows, err := db.Query(ctx, "SELECT new_values FROM pgcloak.change_requests WHERE id > $1 ORDER BY id", since)
		if err != nil {
			t.Fatal(err)
		}
		vals, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for _, v := range vals {
			m := map[string]any{}
			if err := json.Unmarshal(v, &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		return out
	}
	const newPhone = "+1 555 0177"
	for _, m := range modes {
		sam, notices := connectNotices(t, "sam")
		shown := read(sam)
		var unseen []string
		for _, c := range cols {
			if !same(shown[c], raw[c]) {
				unseen = append(unseen, c)
			}
		}
		for _, c := range []string{"street", "postal_code", "birth_date", "national_id", "phone"} {
			if !strings.Contains(" "+strings.Join(unseen, " ")+" ", " "+c+" ") {
				t.Fatalf("[%s] sam sees %s raw: the test needs it masked or hidden (%v)", m.name, c, unseen)
			}
		}
		// save(): every column as shown, but the phone.
		var set []string
		for _, c := range cols {
			v := lit(shown[c])
			if c == "phone" {
				v = rules.QuoteLiteral(newPhone)
			}
			set = append(set, rules.QuoteIdent(c)+" = "+v)
		}
		since := lastRequest()
		*notices = nil
		if _, err := sam.Exec(ctx, "UPDATE customers SET "+strings.Join(set, ", ")+" WHERE customer_id = $1", m.mode, id); err != nil {
			t.Fatalf("[%s] save(): %v", m.name, err)
		}
		reqs := requests(since)
		if len(reqs) != 1 || len(*notices) != 1 {
			t.Fatalf("[%s] save() recorded %d requests, notices %q", m.name, len(reqs), *notices)
		}
		for _, c := range unseen {
			if _, ok := reqs[0][c]; ok && c != "phone" {
				t.Errorf("[%s] the change request writes what sam was shown of %s over the real value: %v", m.name, c, reqs[0][c])
			}
		}
		if reqs[0]["phone"] != newPhone {
			t.Errorf("[%s] the change request lost the new phone: %v", m.name, reqs[0])
		}
		// Writing back only what was shown: nothing to review.
		since = lastRequest()
		*notices = nil
		tag, err := sam.Exec(ctx, fmt.Sprintf("UPDATE customers SET street = %s, postal_code = %s, national_id = %s WHERE customer_id = $1",
			lit(shown["street"]), lit(shown["postal_code"]), lit(shown["national_id"])), m.mode, id)
		if err != nil || tag.RowsAffected() != 0 || len(requests(since)) != 0 || len(*notices) != 0 {
			t.Fatalf("[%s] a write-back of shown values: %v %v, %d requests, notices %q", m.name, tag, err, len(requests(since)), *notices)
		}
		// birth_date is masked and not sam's to write blind: any value but
		// the shown one is refused, the real one as any other; nothing
		// recorded.
		since = lastRequest()
		for _, v := range []string{*raw["birth_date"], "1901-02-03"} {
			_, err := sam.Exec(ctx, "UPDATE customers SET birth_date = "+rules.QuoteLiteral(v)+" WHERE customer_id = $1", m.mode, id)
			wantRefused(t, err, "42501", "write back")
		}
		// street is sam's to write blind: the real value and a guess are
		// both recorded, alike.
		var answers []string
		for _, v := range []string{*raw["street"], "1 Guess Street"} {
			*notices = nil
			tag, err := sam.Exec(ctx, "UPDATE customers SET street = $1 WHERE customer_id = $2", m.mode, v, id)
			answers = append(answers, fmt.Sprint(tag, err, len(*notices)))
		}
		if answers[0] != answers[1] || answers[0] != "UPDATE 0 <nil> 1" {
			t.Fatalf("[%s] blind writes of the real street and of a guess answer %q", m.name, answers)
		}
		if reqs := requests(since); len(reqs) != 2 || reqs[0]["street"] != *raw["street"] || reqs[1]["street"] != "1 Guess Street" {
			t.Fatalf("[%s] blind street requests: %v", m.name, reqs)
		}
		if after := rowJSON(t, db, "customers", "customer_id", id); after != before {
			t.Fatalf("[%s] a reviewed role's update changed the row", m.name)
		}
	}
}

package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

type detailFilter struct{ seen ServerError }

func (f *detailFilter) FilterError(e *ServerError) bool {
	f.seen = *e
	if e.Detail == "" {
		return false
	}
	e.Detail = "withheld"
	return true
}

// The filter sees the server's error as a ServerError; what it changes
// reaches the client, and the fields it does not see stay as they came.
func TestFilterErrorKeepsWhatItDoesNotSee(t *testing.T) {
	in := pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "23505",
		Message: `duplicate key value violates unique constraint "customers_customer_number_key"`,
		Detail:  "Key (customer_number)=(C-000042) already exists.", Hint: "a hint", Where: "SQL function \"f\"",
		SchemaName: "public", TableName: "customers", ConstraintName: "customers_customer_number_key",
		File: "nbtinsert.c", Line: 666, Routine: "_bt_check_unique"}
	msg, err := in.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &detailFilter{}
	out, ok := filterError(f, msg)
	if !ok {
		t.Fatal("the filter's change was dropped")
	}
	if want := (ServerError{Severity: "ERROR", Code: "23505", Message: in.Message, Detail: in.Detail, Hint: "a hint"}); f.seen != want {
		t.Errorf("the filter saw %+v, want %+v", f.seen, want)
	}
	var got pgproto3.ErrorResponse
	if err := got.Decode(out[5:]); err != nil {
		t.Fatal(err)
	}
	want := in
	want.Detail = "withheld"
	if got.Severity != want.Severity || got.SeverityUnlocalized != want.SeverityUnlocalized || got.Code != want.Code ||
		got.Message != want.Message || got.Detail != want.Detail || got.Hint != want.Hint || got.Where != want.Where ||
		got.SchemaName != want.SchemaName || got.TableName != want.TableName || got.ConstraintName != want.ConstraintName ||
		got.File != want.File || got.Line != want.Line || got.Routine != want.Routine {
		t.Errorf("relayed %+v\nwant    %+v", got, want)
	}

	in.Detail = ""
	msg, _ = in.Encode(nil)
	if out, ok := filterError(f, msg); ok || out != nil {
		t.Error("an unchanged error was replaced")
	}
}

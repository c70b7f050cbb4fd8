package rewrite_test

// A small wire client for the leak suite: pgconn authenticates, then the
// suite speaks the protocol itself, so that it sees every message a client
// would (DataRow, CopyData, ErrorResponse and NoticeResponse with all their
// fields, NotificationResponse, CommandComplete) and can send what pgx
// sends in its simple protocol mode (one Query) and in its statement-cache
// mode (Parse and Describe of a named statement, then Bind, Describe,
// Execute), and COPY in either.

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

type wireConn struct {
	addr, login, db string
	params          map[string]string
	conn            net.Conn
	fe              *pgproto3.Frontend
	tx              byte
	extended        bool // the request in flight is extended-protocol
	leftover        bool // a named statement may be left behind
}

func dialWire(ctx context.Context, addr, login, db string, params map[string]string) (*wireConn, error) {
	w := &wireConn{addr: addr, login: login, db: db, params: params}
	return w, w.connect(ctx)
}

func (w *wireConn) connect(ctx context.Context) error {
	host, port, _ := net.SplitHostPort(w.addr)
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
		host, port, w.login, leakPassword, w.db))
	if err != nil {
		return err
	}
	cfg.RuntimeParams["statement_timeout"] = "5s"
	for k, v := range w.params {
		cfg.RuntimeParams[k] = v
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	hc, err := pc.Hijack()
	if err != nil {
		return err
	}
	w.conn, w.fe, w.tx = hc.Conn, hc.Frontend, hc.TxStatus
	return nil
}

func (w *wireConn) close() {
	if w.conn != nil {
		w.fe.Send(&pgproto3.Terminate{})
		w.fe.Flush()
		w.conn.Close()
		w.conn = nil
	}
}

// response is everything one request brought back.
type response struct {
	// texts holds every string that reached the client: values, copy
	// data, tags, column names, and each field of errors, notices and
	// notifications.
	texts []string
	// outcome is what a probe compares: SQLSTATEs, tags and rows, with
	// the run-dependent parts of EXPLAIN ANALYZE removed.
	outcome []string
	codes   []string // SQLSTATEs of ErrorResponses
	rows    int
	broken  error // the connection failed

	errorMessages []string // the ErrorResponses' messages, for logs
}

func (r *response) add(outcome string, texts ...string) {
	if outcome != "" {
		r.outcome = append(r.outcome, outcome)
	}
	r.texts = append(r.texts, texts...)
}

func (r *response) merge(o *response) {
	r.texts = append(r.texts, o.texts...)
	r.outcome = append(r.outcome, o.outcome...)
	r.codes = append(r.codes, o.codes...)
	r.errorMessages = append(r.errorMessages, o.errorMessages...)
	r.rows += o.rows
	if r.broken == nil {
		r.broken = o.broken
	}
}

// errored says whether any statement failed.
func (r *response) errored() bool { return len(r.codes) > 0 }

func (w *wireConn) send(msgs ...pgproto3.FrontendMessage) error {
	for _, m := range msgs {
		w.fe.Send(m)
	}
	return w.fe.Flush()
}

// exchange sends msgs and reads until ReadyForQuery.
func (w *wireConn) exchange(msgs ...pgproto3.FrontendMessage) *response {
	r := &response{}
	if w.conn == nil {
		if err := w.connect(context.Background()); err != nil {
			r.broken = err
			return r
		}
	}
	w.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := w.send(msgs...); err != nil {
		r.broken = err
		w.close()
		return r
	}
	for {
		msg, err := w.fe.Receive()
		if err != nil {
			r.broken = err
			w.close()
			return r
		}
		switch m := msg.(type) {
		case *pgproto3.ReadyForQuery:
			w.tx = m.TxStatus
			return r
		case *pgproto3.RowDescription:
			names := make([]string, len(m.Fields))
			for i, f := range m.Fields {
				names[i] = string(f.Name)
			}
			r.add("columns "+strings.Join(names, ","), names...)
		case *pgproto3.DataRow:
			vals := make([]string, len(m.Values))
			for i, v := range m.Values {
				if v == nil {
					vals[i] = "NULL"
				} else {
					vals[i] = string(v)
				}
			}
			r.rows++
			row := strings.Join(vals, "|")
			if strings.Contains(row, "actual") || strings.Contains(row, "Time:") || strings.Contains(row, "Memory") || strings.Contains(row, "Buffers:") {
				row = normalizeExplain(row)
			}
			r.add("row "+row, vals...)
		case *pgproto3.CommandComplete:
			r.add("tag "+string(m.CommandTag), string(m.CommandTag))
		case *pgproto3.ErrorResponse:
			r.codes = append(r.codes, m.Code)
			r.errorMessages = append(r.errorMessages, m.Severity+" "+m.Code+" "+m.Message)
			r.add("error "+m.Code, errorTexts(m)...)
		case *pgproto3.NoticeResponse:
			r.add("notice "+m.Code, errorTexts((*pgproto3.ErrorResponse)(m))...)
		case *pgproto3.NotificationResponse:
			r.add("notification "+m.Channel+" "+m.Payload, m.Channel, m.Payload)
		case *pgproto3.ParameterStatus:
			r.add("", m.Name, m.Value)
		case *pgproto3.CopyOutResponse:
			r.add("copy out")
		case *pgproto3.CopyData:
			r.rows++
			r.add("copy "+string(m.Data), string(m.Data))
		case *pgproto3.CopyInResponse:
			// COPY FROM STDIN reached the server: give up the copy. In the
			// extended protocol the server ignored our Sync during copy-in
			// and waits for another.
			msgs := []pgproto3.FrontendMessage{&pgproto3.CopyFail{Message: "leak suite"}}
			if w.extended {
				msgs = append(msgs, &pgproto3.Sync{})
			}
			r.add("copy in")
			if err := w.send(msgs...); err != nil {
				r.broken = err
				w.close()
				return r
			}
		case *pgproto3.EmptyQueryResponse:
			r.add("empty")
		case *pgproto3.PortalSuspended:
			r.add("suspended")
		}
	}
}

func errorTexts(m *pgproto3.ErrorResponse) []string {
	out := []string{m.Severity, m.Code, m.Message, m.Detail, m.Hint, m.Where, m.InternalQuery,
		m.SchemaName, m.TableName, m.ColumnName, m.DataTypeName, m.ConstraintName, m.Routine}
	for _, v := range m.UnknownFields {
		out = append(out, v)
	}
	return out
}

var explainNoise = regexp.MustCompile(`actual time=[0-9.]+\.\.[0-9.]+ |(Planning|Execution) Time: [0-9.]+ ms|Memory( Usage)?: [0-9]+kB|Buffers: .*`)

// normalizeExplain strips what varies between two runs of the same EXPLAIN
// ANALYZE; row counts stay.
func normalizeExplain(s string) string { return explainNoise.ReplaceAllString(s, "") }

// simple runs sql as one Query message, like pgx's simple protocol mode.
func (w *wireConn) simple(sql string) *response {
	w.extended = false
	return w.exchange(&pgproto3.Query{String: sql})
}

// prepared runs sql as pgx's statement cache does: Parse and Describe a
// named statement, then Bind, Describe and Execute it, then Close it.
func (w *wireConn) prepared(sql string, args []string) *response {
	w.extended = true
	defer func() { w.extended = false }()
	r := w.exchange(&pgproto3.Parse{Name: "leak_stmt", Query: sql},
		&pgproto3.Describe{ObjectType: 'S', Name: "leak_stmt"}, &pgproto3.Sync{})
	if r.broken != nil || r.errored() {
		return r
	}
	// The Close rides with the execution, before its Sync: if the
	// execution fails, the server skips it, and the reset's DISCARD ALL
	// drops the statement.
	r.merge(w.exchange(&pgproto3.Bind{PreparedStatement: "leak_stmt", Parameters: byteArgs(args)},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{},
		&pgproto3.Close{ObjectType: 'S', Name: "leak_stmt"}, &pgproto3.Sync{}))
	if r.errored() {
		w.leftover = true
	}
	return r
}

func byteArgs(args []string) [][]byte {
	var out [][]byte
	for _, a := range args {
		out = append(out, []byte(a))
	}
	return out
}

// reset returns the session to a clean state after a hostile request:
// out of any transaction and, if the request may have left them behind,
// without cursors, prepared statements, settings or listeners.
func (w *wireConn) reset(discard bool) error {
	if w.conn == nil {
		return w.connect(context.Background())
	}
	if w.tx != 'I' {
		if r := w.simple("ROLLBACK"); r.broken != nil {
			return r.broken
		}
	}
	if !discard && !w.leftover {
		return nil
	}
	w.leftover = false
	r := w.simple("DISCARD ALL")
	if r.broken != nil {
		return r.broken
	}
	if r.errored() {
		return fmt.Errorf("DISCARD ALL failed: %v", r.outcome)
	}
	return nil
}

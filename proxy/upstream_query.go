package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// upstreamQuerier runs pgcloak's own queries on a session's upstream
// connection while the session starts, between the server's first
// ReadyForQuery and the client's.
type upstreamQuerier struct{ s *session }

func (q upstreamQuerier) Query(ctx context.Context, sql string) ([][]*string, error) {
	s := q.s
	if dl, ok := ctx.Deadline(); ok {
		s.upstream.SetDeadline(dl)
		defer s.upstream.SetDeadline(time.Now().Add(s.srv.cfg.AuthTimeout))
	}
	msg, err := (&pgproto3.Query{String: sql}).Encode(nil)
	if err != nil {
		return nil, err
	}
	if _, err := s.upstream.Write(msg); err != nil {
		return nil, err
	}
	var rows [][]*string
	var qerr error
	for {
		m, err := s.ur.readMessage()
		if err != nil {
			return nil, err
		}
		switch serverMsg(m[0]) {
		case serverDataRow:
			var dr pgproto3.DataRow
			if err := dr.Decode(m[5:]); err != nil {
				return nil, err
			}
			row := make([]*string, len(dr.Values))
			for i, v := range dr.Values {
				if v != nil {
					str := string(v)
					row[i] = &str
				}
			}
			rows = append(rows, row)
		case serverErrorResponse:
			var er pgproto3.ErrorResponse
			if err := er.Decode(m[5:]); err != nil {
				return nil, err
			}
			qerr = fmt.Errorf("%s (SQLSTATE %s)", er.Message, er.Code)
		case serverReadyForQuery:
			if txState(m[5]) != txIdle {
				return nil, errors.New("upstream query left a transaction open")
			}
			return rows, qerr
		}
	}
}

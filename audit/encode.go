package audit

import (
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Records are encoded by hand, in the order and with the omissions their
// json tags give (a Record read back with encoding/json is the same
// Record): the writer encodes every record of every session, and
// reflection would make it the access log's largest cost. A statement's
// description is shared by all its executions, so its encoding is kept
// (statementCache) and copied into each record.

// statementCache keeps the encoded descriptions of the statements the
// writer has seen. Only the writer uses it. Its keys keep their
// statements alive, so an address is never reused for another statement
// while it is in the cache.
type statementCache map[*Statement][]byte

const maxCachedStatements = 20000

func (c statementCache) get(st *Statement) []byte {
	if b, ok := c[st]; ok {
		return b
	}
	if len(c) >= maxCachedStatements {
		clear(c)
	}
	b := st.appendFields(nil)
	c[st] = b
	return b
}

// appendJSON appends r as a JSON object. It begins with a comma-separated
// list of fields (no opening brace) so that the chain can put seq and prev
// in front.
func (r *Record) appendJSON(dst []byte, stmts statementCache) []byte {
	dst = append(dst, `"time":"`...)
	dst = r.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","type":`...)
	dst = appendString(dst, r.Type)
	dst = appendField(dst, "session", r.Session)
	dst = appendField(dst, "client", r.Client)
	dst = appendField(dst, "login", r.Login)
	dst = appendField(dst, "database", r.Database)
	dst = appendField(dst, "application_name", r.Application)
	if r.TLS {
		dst = append(dst, `,"tls":true`...)
	}
	if r.Statement != nil {
		dst = append(dst, stmts.get(r.Statement)...)
	}
	dst = appendField(dst, "protocol", r.Protocol)
	if r.Rows != nil {
		dst = append(dst, `,"rows":`...)
		dst = strconv.AppendInt(dst, *r.Rows, 10)
	}
	if r.Suspended {
		dst = append(dst, `,"suspended":true`...)
	}
	dst = appendInt(dst, "duration_us", r.DurationUS)
	dst = appendField(dst, "sqlstate", r.SQLState)
	dst = appendInt(dst, "wire_check", int64(r.WireCheck))
	dst = appendField(dst, "outcome", r.Outcome)
	dst = appendField(dst, "cause", r.Cause)
	dst = appendField(dst, "previous", r.Previous)
	dst = appendField(dst, "rules_version", r.RulesVersion)
	dst = appendInt(dst, "lost", r.Lost)
	return append(dst, '}')
}

// appendFields appends the statement's fields, each after a comma.
func (st *Statement) appendFields(dst []byte) []byte {
	dst = appendField(dst, "role", st.Role)
	dst = appendField(dst, "purpose", st.Purpose)
	dst = appendField(dst, "end_user", st.EndUser)
	dst = appendField(dst, "kind", st.Kind)
	dst = appendField(dst, "fingerprint", st.Fingerprint)
	dst = appendField(dst, "query", st.Query)
	if len(st.Objects) > 0 {
		dst = append(dst, `,"objects":[`...)
		for i, o := range st.Objects {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"relation":`...)
			dst = appendString(dst, o.Relation)
			dst = append(dst, `,"access":`...)
			dst = appendString(dst, o.Access)
			if o.Protected {
				dst = append(dst, `,"protected":true`...)
			}
			dst = appendMap(dst, "columns", o.Columns)
			dst = appendMap(dst, "masked", o.Masked)
			if len(o.Filters) > 0 {
				dst = append(dst, `,"filters":[`...)
				for j, f := range o.Filters {
					if j > 0 {
						dst = append(dst, ',')
					}
					dst = appendString(dst, f)
				}
				dst = append(dst, ']')
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = appendField(dst, "decision", st.Decision)
	dst = appendField(dst, "reason", st.Reason)
	return dst
}

// appendField appends ,"name":"value" unless value is empty.
func appendField(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return appendString(dst, value)
}

func appendInt(dst []byte, name string, v int64) []byte {
	if v == 0 {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return strconv.AppendInt(dst, v, 10)
}

// appendMap appends a map with its keys sorted, as encoding/json does.
func appendMap(dst []byte, name string, m map[string]string) []byte {
	if len(m) == 0 {
		return dst
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':', '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendString(dst, m[k])
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does
// without HTML escaping: quotes, backslashes and control characters, and
// U+2028 and U+2029; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

package rewrite

import (
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/rules"
)

// Session settings. Client libraries set a few harmless settings when they
// connect (Django the time zone, Rails client_min_messages and
// standard_conforming_strings, Sequelize the time zone as an interval,
// pgJDBC extra_float_digits): every restricted role may change the
// settings of sessionSettings, by SET, RESET, set_config or as start-up
// options, without the statement kind set. A guarded setting (one that
// would redirect names, switch identity or change how the server reads the
// SQL pgcloak parsed) may only be set to the value its guard requires.
// Every other setting needs the kind set. docs/rules.md has the table.

// sessionSettings are the settings every restricted role may change. None
// of them changes what a statement reads or how its text is parsed.
var sessionSettings = map[string]func(values []string) string{
	"timezone":                            nil,
	"datestyle":                           nil,
	"intervalstyle":                       nil,
	"extra_float_digits":                  nil,
	"client_min_messages":                 clientMinMessages,
	"application_name":                    nil,
	"statement_timeout":                   nil,
	"lock_timeout":                        nil,
	"idle_in_transaction_session_timeout": nil,
	"bytea_output":                        nil,
	"plan_cache_mode":                     nil,
	// What SET TRANSACTION and SET SESSION CHARACTERISTICS, allowed to
	// every role, change anyway.
	"transaction_isolation":          nil,
	"transaction_read_only":          nil,
	"transaction_deferrable":         nil,
	"default_transaction_isolation":  nil,
	"default_transaction_read_only":  nil,
	"default_transaction_deferrable": nil,
}

// clientMinMessages lets through the levels from NOTICE up. At LOG and the
// DEBUG levels the server sends the client messages meant for its log: the
// statements pgcloak sent (log_statement), and auto_explain's executed
// plans, whose row counts tell about rows outside the row filter.
func clientMinMessages(values []string) string {
	if len(values) == 1 {
		switch strings.ToLower(values[0]) {
		case "notice", "warning", "error":
			return ""
		}
	}
	return "only notice, warning or error (lower levels send the server's log messages to the client)"
}

// guardedSettings are the settings no restricted role may change, except
// to the value the guard accepts (nil: none). pgcloak checked their values
// when the session started, so RESET, which returns to those, is allowed.
var guardedSettings = map[string]func(values []string) bool{
	"search_path":                 nil,
	"role":                        nil,
	"session_authorization":       nil,
	"standard_conforming_strings": isOn,
	"backslash_quote":             nil,
	"escape_string_warning":       nil,
	"session_replication_role":    nil,
	"row_security":                nil,
	"client_encoding":             safeEncoding,
	"names":                       safeEncoding,
}

// guardedPrefix is true for settings no restricted role may change,
// whatever its statement kinds: debug_* and trace_* send the server's
// internal state (parse trees, plans with estimates) to the client.
func guardedPrefix(name string) bool {
	return strings.HasPrefix(name, "debug_") || strings.HasPrefix(name, "trace_")
}

func isOn(values []string) bool {
	if len(values) != 1 {
		return false
	}
	switch strings.ToLower(values[0]) {
	case "on", "true", "yes", "1":
		return true
	}
	return false
}

// safeEncoding accepts UTF8 and single-byte encodings, in which no byte of
// a character can be a quote or a backslash of another reading. Names are
// compared as PostgreSQL compares them: case and punctuation ignored.
func safeEncoding(values []string) bool {
	if len(values) != 1 {
		return false
	}
	var b strings.Builder
	for _, r := range strings.ToLower(values[0]) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	switch n := b.String(); n {
	case "utf8", "unicode", "sqlascii":
		return true
	default:
		if rest, ok := strings.CutPrefix(n, "latin"); ok {
			d, err := strconv.Atoi(rest)
			return err == nil && d >= 1 && d <= 10
		}
		if rest, ok := strings.CutPrefix(n, "win"); ok {
			d, err := strconv.Atoi(rest)
			return err == nil && d >= 1250 && d <= 1258
		}
	}
	return false
}

// SettingAllowed decides whether principal pr may change setting name (as
// PostgreSQL spells it; case does not matter) to values, by SET, set_config
// or a start-up option. No values means RESET or SET … TO DEFAULT. It
// returns nil when the change is allowed, else the refusal.
func SettingAllowed(pr *rules.Principal, name string, values ...string) *Refusal {
	name = strings.ToLower(name)
	if strings.HasPrefix(name, "pgcloak.") {
		return refuseRule("settings", "setting %s is reserved for pgcloak", name)
	}
	if guardedPrefix(name) {
		return refuseRule("settings", "restricted roles may not change %s: it sends the server's internal state to the client", name)
	}
	if guard, ok := guardedSettings[name]; ok {
		if len(values) == 0 || guard != nil && guard(values) {
			return nil
		}
		return refuseRule("settings", "restricted roles may not change %s", name)
	}
	if check, ok := sessionSettings[name]; ok {
		if check == nil || len(values) == 0 {
			return nil
		}
		why := check(values)
		if why == "" {
			return nil
		}
		if !pr.Allows(rules.StmtSet) {
			return refuseRule("settings", "restricted roles may set %s to %s", name, why)
		}
		return nil
	}
	if !pr.Allows(rules.StmtSet) {
		role := pr.Role.Name
		return refuseRule("roles."+role+".statements",
			"role %q may not change setting %s: only the session settings of the rules documentation may be changed without the statement kind set", role, name)
	}
	return nil
}

// setStmt checks SET and RESET. RESET ALL returns every setting to its value
// at connection start, which pgcloak checked when the session opened; every
// role may run DISCARD ALL, which does the same.
func (w *walker) setStmt(s *pg_query.VariableSetStmt) {
	if w.err != nil {
		return
	}
	switch s.Kind {
	case pg_query.VariableSetKind_VAR_SET_MULTI:
		w.kind(rules.StmtTransaction, "SET TRANSACTION")
		return
	case pg_query.VariableSetKind_VAR_RESET_ALL:
		w.kinds = append(w.kinds, rules.StmtSet)
		return
	}
	var values []string
	if s.Kind == pg_query.VariableSetKind_VAR_SET_VALUE {
		for _, a := range s.Args {
			v, ok := settingValue(a)
			if !ok {
				w.fail(refuseUnsupported("a SET value that is not a constant"))
				return
			}
			values = append(values, v)
		}
	}
	if r := SettingAllowed(w.rw.ctx.Principal, s.Name, values...); r != nil {
		w.fail(r)
		return
	}
	w.kinds = append(w.kinds, rules.StmtSet)
}

// settingValue renders a constant of a SET statement as text.
func settingValue(n *pg_query.Node) (string, bool) {
	switch x := n.Node.(type) {
	case *pg_query.Node_AConst:
		c := x.AConst
		switch v := c.Val.(type) {
		case *pg_query.A_Const_Sval:
			return v.Sval.Sval, true
		case *pg_query.A_Const_Ival:
			return strconv.Itoa(int(v.Ival.Ival)), true
		case *pg_query.A_Const_Fval:
			return v.Fval.Fval, true
		case *pg_query.A_Const_Boolval:
			return strconv.FormatBool(v.Boolval.Boolval), true
		}
	case *pg_query.Node_TypeCast:
		// SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE
		if c := x.TypeCast.Arg.GetAConst(); c != nil {
			return settingValue(x.TypeCast.Arg)
		}
	}
	return "", false
}

// setConfig checks a call of set_config, which restricted roles may make
// only as SELECT set_config('name', 'value', is_local) with constants,
// outside any qual, for a session setting (not a guarded one: those change
// only by SET, so that every way to change them is the statement).
func (w *walker) setConfig(f *pg_query.FuncCall) *Refusal {
	w.constRead = true
	const usage = "set_config is allowed to restricted roles only as set_config('setting', 'value', true|false) with constants, in a select list, for a session setting"
	if w.qual || len(f.Args) != 3 || f.AggFilter != nil || f.Over != nil || f.AggStar || f.AggDistinct || f.FuncVariadic || len(f.AggOrder) > 0 {
		return refuseRule("function_allowlist", "%s", usage)
	}
	var vals [3]string
	for i, a := range f.Args {
		c := a.GetAConst()
		if c == nil || c.Isnull {
			return refuseRule("function_allowlist", "%s", usage)
		}
		v, ok := settingValue(a)
		if !ok {
			return refuseRule("function_allowlist", "%s", usage)
		}
		vals[i] = v
	}
	name := strings.ToLower(vals[0])
	if _, ok := sessionSettings[name]; !ok {
		return refuseRule("function_allowlist", "set_config of %s is refused for restricted roles: only session settings may be changed by set_config", name)
	}
	return SettingAllowed(w.rw.ctx.Principal, name, vals[1])
}

// checkCall checks a function call against the allowlist; set_config, which
// the allowlist refuses, is let through in the form setConfig accepts.
func (w *walker) checkCall(schema, name string, f *pg_query.FuncCall) error {
	err := w.rw.checkFunction(schema, name)
	if err == nil || name != "set_config" || !w.rw.cat.FunctionBuiltin(schema, name) {
		return err
	}
	if r := w.setConfig(f); r != nil {
		return r
	}
	return nil
}

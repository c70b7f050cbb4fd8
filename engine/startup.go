package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgerrcode"

	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rewrite"
	"github.com/pgcloak/pgcloak/rules"
)

// The start-up packet sets settings too: each parameter other than user,
// database, replication and options is a setting, and options holds
// command-line switches (-c name=value, --name=value). For a restricted
// session they are judged by the same rule as SET (rewrite.SettingAllowed); a
// switch that is not a setting is refused.

// startupParams are the start-up parameters that are not settings, or
// are judged elsewhere.
var startupParams = map[string]bool{
	"user": true, "database": true, "options": true,
	"client_encoding": true, // checked against the server's value in Open
	"pgcloak.purpose": true, // pgcloak's own (resolve)
}

// checkStartup refuses a restricted session of principal pr whose
// start-up parameters set what SET may not.
func checkStartup(pr *rules.Principal, params map[string]string) error {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := params[k]
		switch {
		case k == "replication":
			if b := strings.ToLower(v); b != "false" && b != "off" && b != "0" && b != "no" {
				return startupRefusal("restricted sessions may not open replication connections")
			}
		case k == "options":
			settings, err := parseOptions(v)
			if err != nil {
				return startupRefusal(err.Error())
			}
			for _, kv := range settings {
				if r := rewrite.SettingAllowed(pr, kv[0], kv[1]); r != nil {
					return startupSettingRefusal(r, "in the start-up options")
				}
			}
		case startupParams[k]:
		default:
			if r := rewrite.SettingAllowed(pr, k, v); r != nil {
				return startupSettingRefusal(r, "in the start-up parameters")
			}
		}
	}
	return nil
}

// startupSettingRefusal is SET's refusal of a setting, said of the
// start-up packet.
func startupSettingRefusal(r *rewrite.Refusal, where string) error {
	return &proxy.Error{Code: pgerrcode.InsufficientPrivilege,
		Message: strings.Replace(r.Message, " (rule: ", " "+where+" (rule: ", 1)}
}

func startupRefusal(why string) error {
	return &proxy.Error{Code: pgerrcode.InsufficientPrivilege,
		Message: "pgcloak: " + why + " (rule: settings)"}
}

// parseOptions splits the options start-up parameter as PostgreSQL does
// (pg_split_opts: whitespace separates, a backslash escapes the next
// character) and returns its settings. Only -c name=value, -c
// name=value joined (-cname=value) and --name=value are settings; any
// other switch is an error.
func parseOptions(opts string) ([][2]string, error) {
	var words []string
	var cur strings.Builder
	inWord, esc := false, false
	for _, r := range opts {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc, inWord = true, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	var out [][2]string
	for i := 0; i < len(words); i++ {
		w := words[i]
		var kv string
		switch {
		case w == "-c":
			if i+1 >= len(words) {
				return nil, fmt.Errorf("start-up option -c without a setting")
			}
			i++
			kv = words[i]
		case strings.HasPrefix(w, "-c"):
			kv = w[2:]
		case strings.HasPrefix(w, "--"):
			kv = w[2:]
		default:
			return nil, fmt.Errorf("restricted sessions may set only settings in the start-up options (-c name=value), not %q", w)
		}
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("start-up option %q sets no value", kv)
		}
		// PostgreSQL reads dashes in a setting's name as underscores.
		out = append(out, [2]string{strings.ReplaceAll(name, "-", "_"), value})
	}
	return out, nil
}

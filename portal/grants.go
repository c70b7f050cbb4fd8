package portal

import (
	"slices"
	"strings"

	"github.com/pgcloak/pgcloak/rules"
)

// Grants are the statements that give the portal's own login what it
// needs, and nothing more: read the subject table and the tables linked to
// it, change opt-outs, append to and read the opt-out history, record
// change requests and read their status. It gets no UPDATE of personal
// data: corrections reach the data only through pgcloak review. Run them
// as the tables' owner after pgcloak setup.
func Grants(pol *rules.Policy, login string) []string {
	who := rules.QuoteIdent(login)
	subj := pol.Subject()
	if subj == nil {
		return nil
	}
	schemas := map[string]bool{"pgcloak": true}
	var read []string
	for _, t := range pol.Tables() {
		if t.Subject || len(pol.LinkPath(t.Name)) > 0 {
			read = append(read, t.Name.SQL())
			schemas[t.Name.Schema] = true
		}
	}
	var out []string
	for _, s := range sortedKeys(schemas) {
		out = append(out, "GRANT USAGE ON SCHEMA "+rules.QuoteIdent(s)+" TO "+who)
	}
	for _, t := range read {
		out = append(out, "GRANT SELECT ON "+t+" TO "+who)
	}
	if o := subj.OptOuts; o != nil {
		out = append(out, "GRANT SELECT, INSERT, DELETE ON "+o.Table.SQL()+" TO "+who)
	}
	if len(subj.OptOutFlags) > 0 {
		var cols []string
		for _, p := range pol.Purposes() {
			if c, ok := subj.OptOutFlags[p]; ok {
				cols = append(cols, rules.QuoteIdent(c))
			}
		}
		out = append(out, "GRANT UPDATE ("+strings.Join(cols, ", ")+") ON "+subj.Table.SQL()+" TO "+who)
	}
	out = append(out,
		"GRANT SELECT, INSERT ON pgcloak.opt_out_history TO "+who,
		"GRANT USAGE ON SEQUENCE pgcloak.opt_out_history_id_seq TO "+who,
		"GRANT SELECT ON pgcloak.change_requests TO "+who,
		"GRANT EXECUTE ON FUNCTION pgcloak.request_change(text, text, text, jsonb, jsonb, text) TO "+who,
	)
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

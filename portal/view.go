package portal

import (
	"html/template"
	"sort"
	"strings"
)

// pageView is what the page template shows.
type pageView struct {
	CSRF, Flash, Expires string
	Subject              []field // the subject's own row, one column a line
	Linked               []tableRows
	OptOuts              []optOutView
	History              []historyEntry
	Editable             []editableView
	Corrections          []correctionView
}

type optOutView struct {
	Purpose, Label string
	OptedOut       bool
}

type editableView struct {
	Column, Label string
	Current       string
}

type correctionView struct {
	correction
	Changes string
}

var purposeLabels = map[string]string{
	"direct_marketing":       "direct marketing (offers by e-mail, phone or mail)",
	"third_party_disclosure": "passing your data to partners",
	"automated_decision":     "automated decisions about you",
	"sensitive_data":         "use of your sensitive data (health, religion, ethnicity, national id)",
}

func purposeLabel(p string) string {
	if l, ok := purposeLabels[p]; ok {
		return l
	}
	return strings.ReplaceAll(p, "_", " ")
}

func columnLabel(c string) string { return strings.ReplaceAll(c, "_", " ") }

// tableLabel names a table for the page: "public.order_lines" is "Order lines".
func tableLabel(t string) string {
	s := columnLabel(strings.TrimPrefix(t, "public."))
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (s *Server) view(x *export) *pageView {
	v := &pageView{History: x.History}
	current := map[string]string{}
	for _, t := range x.Tables {
		if t.Subject {
			if len(t.Rows) == 1 {
				v.Subject = t.Rows[0]
				for _, f := range t.Rows[0] {
					if f.Value != nil {
						current[f.Name] = *f.Value
					}
				}
			}
			continue
		}
		v.Linked = append(v.Linked, t)
	}
	for _, o := range x.OptOuts {
		v.OptOuts = append(v.OptOuts, optOutView{Purpose: o.Purpose, Label: purposeLabel(o.Purpose), OptedOut: o.OptedOut})
	}
	for _, e := range s.m.editable {
		v.Editable = append(v.Editable, editableView{Column: e.column, Label: columnLabel(e.column), Current: current[e.column]})
	}
	for _, c := range x.Corrections {
		var parts []string
		for k, val := range c.NewValues {
			parts = append(parts, columnLabel(k)+" → "+val)
		}
		sort.Strings(parts)
		v.Corrections = append(v.Corrections, correctionView{correction: c, Changes: strings.Join(parts, "; ")})
	}
	return v
}

var pageTmpl = template.Must(template.New("portal").Funcs(template.FuncMap{
	"label": columnLabel,
	"table": tableLabel,
	"deref": func(p *string) string {
		if p == nil {
			return "—"
		}
		return *p
	},
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your data</title><link rel="stylesheet" href="/style.css"></head><body>{{end}}

{{define "error"}}{{template "head"}}
<main><h1>{{.Code}} {{.Status}}</h1><p id="error">{{.Message}}</p></main></body></html>{{end}}

{{define "enter"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/">
<title>Your data</title><link rel="stylesheet" href="/style.css"></head>
<body><main><p>Opening your page… <a href="/">Continue</a></p></main></body></html>{{end}}

{{define "bye"}}{{template "head"}}
<main><h1>Signed out</h1><p>To come back, use the link you were sent.</p></main></body></html>{{end}}

{{define "page"}}{{template "head"}}
<header><h1>What we hold about you</h1>
<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{{.CSRF}}"><button id="logout">Sign out</button></form>
<p class="note">This page is only for you: it shows your own data, as our CRM holds it. Your session ends at {{.Expires}} at the latest.</p>
</header>
<main>
{{with .Flash}}<p id="flash" class="flash" role="status">{{.}}</p>{{end}}

<section id="data"><h2>Your details</h2>
<table class="kv" id="subject">{{range .Subject}}<tr><th>{{label .Name}}</th><td data-column="{{.Name}}">{{deref .Value}}</td></tr>{{end}}</table>
<p><a id="download" href="/data.json" download>Download all of it as JSON</a></p>
</section>

<section id="opt-outs"><h2>What we may use your data for</h2>
<p class="note">Your choice takes effect at once.</p>
<table>{{range .OptOuts}}<tr><td>{{.Label}}</td>
<td id="state-{{.Purpose}}">{{if .OptedOut}}<span class="off">you opted out</span>{{else}}<span class="on">allowed</span>{{end}}</td>
<td><form method="post" action="/opt-out"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="purpose" value="{{.Purpose}}">
{{if .OptedOut}}<input type="hidden" name="choice" value="in"><button id="opt-in-{{.Purpose}}">Allow again</button>
{{else}}<input type="hidden" name="choice" value="out"><button id="opt-out-{{.Purpose}}">Opt out</button>{{end}}</form></td></tr>{{end}}
</table>
{{if .History}}<details><summary>Your earlier choices</summary><ul>{{range .History}}<li>{{.At.UTC.Format "2006-01-02 15:04 MST"}}: {{if .OptedOut}}opted out of{{else}}allowed{{end}} {{.Purpose}}</li>{{end}}</ul></details>{{end}}
</section>

<section id="correct"><h2>Correct your details</h2>
<p class="note">A correction is checked by our staff before it changes your data.</p>
<form method="post" action="/correct"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label>Detail <select name="column" id="column">{{range .Editable}}<option value="{{.Column}}">{{.Label}}</option>{{end}}</select></label>
<label>Correct value <input name="value" id="value" maxlength="1000" required></label>
<button id="send-correction">Send correction</button></form>
{{if .Corrections}}<table id="corrections"><tr><th>Request</th><th>Sent</th><th>Correction</th><th>Status</th></tr>
{{range .Corrections}}<tr><td>{{.ID}}</td><td>{{.At.UTC.Format "2006-01-02 15:04"}}</td><td>{{.Changes}}</td><td class="status-{{.Status}}" id="status-{{.ID}}">{{.Status}}{{with .Note}} ({{.}}){{end}}</td></tr>{{end}}
</table>{{end}}
</section>

{{range .Linked}}<section class="linked"><h2>{{table .Table}}</h2>
{{if .Rows}}<div class="scroll"><table data-table="{{.Table}}"><tr>{{range index .Rows 0}}<th>{{label .Name}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{deref .Value}}</td>{{end}}</tr>{{end}}</table></div>
{{if .Truncated}}<p class="note">Only the first rows are shown; the download has the same.</p>{{end}}
{{else}}<p class="note">None.</p>{{end}}</section>{{end}}
</main></body></html>{{end}}
`))

const styleCSS = `
body { font-family: system-ui, sans-serif; margin: 0; color: #1d2733; background: #f5f7fa; }
header, main { max-width: 60rem; margin: 0 auto; padding: 1rem 1.5rem; }
header { background: #fff; border-bottom: 1px solid #d8dee6; }
h1 { font-size: 1.6rem; margin: .3rem 0; } h2 { font-size: 1.2rem; margin-top: 0; }
section { background: #fff; border: 1px solid #d8dee6; border-radius: 6px; padding: 1rem 1.2rem; margin: 1rem 0; }
table { border-collapse: collapse; font-size: .9rem; }
th, td { text-align: left; padding: .25rem .6rem; border-bottom: 1px solid #eef1f4; vertical-align: top; }
table.kv th { color: #55606d; font-weight: 500; width: 12rem; }
.scroll { overflow-x: auto; }
.note { color: #55606d; font-size: .9rem; }
.flash { background: #e7f4ea; border: 1px solid #9bcfa7; padding: .6rem .8rem; border-radius: 4px; }
.on { color: #1a7f37; } .off { color: #b35900; font-weight: 600; }
.status-pending { color: #b35900; } .status-applied { color: #1a7f37; } .status-rejected { color: #a40e26; }
form.inline { float: right; }
button { font: inherit; padding: .25rem .8rem; border: 1px solid #7b8794; border-radius: 4px; background: #fff; cursor: pointer; }
input, select { font: inherit; padding: .2rem .4rem; margin-right: .6rem; }
#error { font-size: 1.1rem; }
`

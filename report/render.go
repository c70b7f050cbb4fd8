package report

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/pgcloak/pgcloak/rules"
)

// WriteJSON writes the facts as indented JSON.
func WriteJSON(w io.Writer, f *Facts) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(f)
}

// SectionIDs are the ids of the page's sections, in order.
var SectionIDs = []string{"summary", "data-model", "database", "risk", "privacy-views", "activity", "changes", "integrity"}

//go:embed report.html.tmpl
var pageTemplate string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": func(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) },
	"share": func(n, of int64) string {
		if of == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
	},
	"width": func(n, of int64) string {
		if of == 0 {
			return "0"
		}
		return fmt.Sprintf("%.1f", 100*float64(n)/float64(of))
	},
	"time": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if v == nil {
				return "–"
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return ""
	},
	"join":     strings.Join,
	"maxCount": maxCount,
	"timeline": timelineChart,
	"decision": func(m map[string]int64, d string) int64 { return m[d] },
	"attrs": func(m map[string]string) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+"="+m[k])
		}
		return strings.Join(parts, ", ")
	},
	"findingsOf": func(fs []rules.Finding, codes ...string) int {
		n := 0
		for _, f := range fs {
			for _, c := range codes {
				if f.Code == c {
					n++
				}
			}
		}
		return n
	},
	"incidentShare": func(a Activity) string {
		if a.Statements == 0 {
			return "–"
		}
		return fmt.Sprintf("%.3f%%", 100*float64(a.Incidents)/float64(a.Statements))
	},
	"cellText": func(c CellView) string {
		s := c.Action
		if c.Mask != "" {
			s += ": " + c.Mask
		}
		if c.HideIfOptedOut {
			s += " (hidden if opted out of sensitive_data)"
		}
		return s
	},
	"roleDecisions": func(a Activity, role string) map[string]int64 { return a.ByRoleDecision[role] },
	"sub":           func(a, b int) int { return a - b },
	"below":         func(k int64, threshold int) bool { return threshold > 0 && k >= 0 && k < int64(threshold) },
	"add":           func(a, b int) int { return a + b },
	"riskBelow": func(r RiskSection) int {
		n := 0
		for _, rr := range r.Roles {
			if !rr.OK || rr.Error != "" {
				n++
			}
		}
		return n
	},
}).Parse(pageTemplate))

// WriteHTML writes the facts as one self-contained HTML page: no external
// script, font, style or image, so it reads offline and prints.
func WriteHTML(w io.Writer, f *Facts) error {
	return page.Execute(w, f)
}

func maxCount(cs []Count) int64 {
	var m int64
	for _, c := range cs {
		m = max(m, c.Count)
	}
	return m
}

// chart is the timeline as an inline SVG: stacked bars per bucket.
type chart struct {
	Width, Height, Left, Bottom, Top int
	Bars                             []chartBar
	Ticks                            []chartTick
	Labels                           []chartTick
	Max                              int64
	Empty                            bool
	Bucket                           string
}

type chartBar struct {
	X, W   float64
	Parts  []chartPart
	Title  string
	Bucket string
}

type chartPart struct {
	Y, H  float64
	Class string
}

type chartTick struct {
	X, Y float64
	Text string
}

func timelineChart(tl Timeline) chart {
	c := chart{Width: 960, Height: 240, Left: 56, Bottom: 40, Top: 10, Bucket: humanDuration(tl.Bucket)}
	if len(tl.Buckets) == 0 {
		c.Empty = true
		return c
	}
	for _, b := range tl.Buckets {
		c.Max = max(c.Max, b.Allowed+b.Rewritten+b.Denied)
	}
	if c.Max == 0 {
		c.Max = 1
	}
	plotW := float64(c.Width - c.Left - 10)
	plotH := float64(c.Height - c.Bottom - c.Top)
	bw := plotW / float64(len(tl.Buckets))
	base := float64(c.Height - c.Bottom)
	size, _ := time.ParseDuration(tl.Bucket)
	format := "15:04"
	if size >= 24*time.Hour {
		format = "01-02"
	} else if len(tl.Buckets) > 0 && tl.Buckets[len(tl.Buckets)-1].Start.Sub(tl.Buckets[0].Start) >= 24*time.Hour {
		format = "01-02 15:04"
	}
	labelEvery := max(1, len(tl.Buckets)/8)
	for i, b := range tl.Buckets {
		x := float64(c.Left) + float64(i)*bw
		bar := chartBar{X: x + bw*0.1, W: bw * 0.8, Bucket: b.Start.UTC().Format("2006-01-02 15:04"),
			Title: fmt.Sprintf("%s UTC: %d allowed, %d rewritten, %d refused", b.Start.UTC().Format("2006-01-02 15:04"), b.Allowed, b.Rewritten, b.Denied)}
		y := base
		for _, part := range []struct {
			n     int64
			class string
		}{{b.Allowed, "allowed"}, {b.Rewritten, "rewritten"}, {b.Denied, "denied"}} {
			if part.n == 0 {
				continue
			}
			h := plotH * float64(part.n) / float64(c.Max)
			y -= h
			bar.Parts = append(bar.Parts, chartPart{Y: y, H: h, Class: part.class})
		}
		c.Bars = append(c.Bars, bar)
		if i%labelEvery == 0 {
			c.Labels = append(c.Labels, chartTick{X: x + bw/2, Y: base + 16, Text: b.Start.UTC().Format(format)})
		}
	}
	for i := 0; i <= 4; i++ {
		v := c.Max * int64(i) / 4
		c.Ticks = append(c.Ticks, chartTick{X: float64(c.Left - 6), Y: base - plotH*float64(v)/float64(c.Max) + 4, Text: fmt.Sprint(v)})
	}
	return c
}

// humanDuration says a bucket size in words: "5 minutes", "1 hour".
func humanDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return s
	}
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}} {
		if d >= u.d && d%u.d == 0 {
			n := int(d / u.d)
			if n == 1 {
				return "1 " + u.name
			}
			return fmt.Sprintf("%d %ss", n, u.name)
		}
	}
	return d.String()
}

//go:build ignore

// exprs turns the dashboard's queries into a Prometheus rules file, so that
// promtool check rules parses every one of them (CI: .ci/deploy.sh):
//
//	go run deploy/grafana/exprs.go deploy/grafana/pgcloak.json > /tmp/dashboard-rules.yaml
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func main() {
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Grafana's variables, as Prometheus would receive them.
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$job", ".*", "$instance", ".*")
	fmt.Println("groups:\n  - name: dashboard\n    rules:")
	n := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				n++
				q, _ := json.Marshal(vars.Replace(t.Expr))
				fmt.Printf("      - record: dashboard:expr_%d\n        expr: %s\n", n, q)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if n == 0 {
		fmt.Fprintln(os.Stderr, "no queries")
		os.Exit(1)
	}
}

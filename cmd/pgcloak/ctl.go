package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgcloak/pgcloak/proxy"
)

// The commands that talk to a running pgcloak through its admin API: the
// distroless image has no kill and no curl, so `kubectl exec` runs these.
// They find the admin address and token as serve does: flag, then
// PGCLOAK_ADMIN / PGCLOAK_ADMIN_TOKEN, then the config file.

func init() {
	register("reload", "make a running pgcloak reload its config, certificate and rules", runReload)
	register("sessions", "list, end and profile a running pgcloak's sessions: sessions [list|kill ID|top]", runSessions)
}

// adminClient is the admin API of a running pgcloak.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// adminFlags adds --admin, --admin-token and --config to fs; the returned
// function builds the client once fs is parsed.
func adminFlags(fs *flag.FlagSet) func() (*adminClient, error) {
	addr := fs.String("admin", "", "admin `HOST:PORT` of the running pgcloak (env PGCLOAK_ADMIN, key admin)")
	token := fs.String("admin-token", "", "bearer token of the admin API (env PGCLOAK_ADMIN_TOKEN, key admin_token)")
	config := fs.String("config", "", "read admin and admin_token from this config `FILE` (env PGCLOAK_CONFIG)")
	return func() (*adminClient, error) {
		cfg := defaultConfig()
		if *config == "" {
			*config = os.Getenv("PGCLOAK_CONFIG")
		}
		if *config != "" {
			if err := loadConfigFile(*config, &cfg); err != nil {
				return nil, err
			}
		}
		pick := func(flagV, env, file string) string {
			if flagV != "" {
				return flagV
			}
			if v := os.Getenv(env); v != "" {
				return v
			}
			return file
		}
		c := &adminClient{token: pick(*token, "PGCLOAK_ADMIN_TOKEN", cfg.AdminToken), http: &http.Client{Timeout: 30 * time.Second}}
		a := pick(*addr, "PGCLOAK_ADMIN", cfg.Admin)
		if a == "" {
			return nil, errors.New("no admin address: give --admin, PGCLOAK_ADMIN or a config file with admin")
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("admin address %q is not HOST:PORT", a)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1" // listening on every address: this one reaches it from inside
		}
		c.base = "http://" + net.JoinHostPort(host, port)
		if c.token == "" {
			return nil, errors.New("no admin token: give --admin-token or PGCLOAK_ADMIN_TOKEN")
		}
		return c, nil
	}
}

// do sends a request and decodes a JSON answer into out; any other answer
// is an error with the server's text.
func (c *adminClient) do(method, path string, out any) (int, error) {
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp.StatusCode, json.Unmarshal(body, out)
}

func runReload(args []string) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	client := adminFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: pgcloak reload [--admin HOST:PORT] [--admin-token TOKEN]

Asks a running pgcloak to read its config, its client certificate and its
rules again (as SIGHUP does). Keys that need a restart are named and keep
their old values. Exit status: 0 reloaded, 1 something did not load (the
old state stays in force), 2 the request failed.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c, err := client()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak reload:", err)
		return 2
	}
	var rep reloadReport
	code, err := c.do(http.MethodPost, "/admin/reload", &rep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak reload:", err)
		return 2
	}
	if len(rep.Applied) > 0 {
		fmt.Println("applied:", strings.Join(rep.Applied, ", "))
	}
	if len(rep.RestartNeeded) > 0 {
		fmt.Println("needs a restart (old values in force):", strings.Join(rep.RestartNeeded, ", "))
	}
	if rep.Certificate != "" {
		fmt.Println("certificate:", rep.Certificate)
	}
	if rep.Rules != "" {
		fmt.Printf("rules: %s (version %s)\n", rep.Rules, rep.RulesVersion)
	}
	for _, e := range rep.Errors {
		fmt.Println("error:", e)
	}
	if code != http.StatusOK || len(rep.Errors) > 0 {
		return 1
	}
	return 0
}

func runSessions(args []string) int {
	fs := flag.NewFlagSet("sessions", flag.ContinueOnError)
	client := adminFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	role := fs.String("role", "", "top: only this role")
	limit := fs.Int("limit", 20, "top: statements per role")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: pgcloak sessions [flags] [list | kill ID | top]

list      the sessions of a running pgcloak: login, role, end user, client,
          since, state, and the running statement's fingerprint and duration
kill ID   end a session: its statement is cancelled, its client gets
          FATAL 57P01
top       statements per role by total time (fingerprint, normalized text)`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	verb := "list"
	if fs.NArg() > 0 {
		verb = fs.Arg(0)
	}
	if (verb == "kill") != (fs.NArg() == 2) || fs.NArg() > 2 || (verb != "list" && verb != "kill" && verb != "top") {
		fs.Usage()
		return 2
	}
	c, err := client()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak sessions:", err)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "pgcloak sessions:", err)
		return 1
	}
	out := os.Stdout
	switch verb {
	case "list":
		var list []proxy.SessionView
		if _, err := c.do(http.MethodGet, "/admin/sessions", &list); err != nil {
			return fail(err)
		}
		if *asJSON {
			return printJSON(out, list)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tLOGIN\tROLE\tEND USER\tCLIENT\tSINCE\tSTATE\tSTATEMENT\tRUNNING")
		now := time.Now()
		for _, s := range list {
			fp, running := "-", "-"
			if st := s.Statement; st != nil {
				fp = cmp.Or(st.Fingerprint, "?") + " " + st.Kind
				running = fmt.Sprintf("%.1fms", st.DurationMS)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, cmp.Or(s.Login, "-"), cmp.Or(s.Role, "-"),
				cmp.Or(s.EndUser, "-"), s.Client, now.Sub(s.Since).Truncate(time.Second), s.State, fp, running)
		}
		tw.Flush()
	case "kill":
		var res map[string]string
		if _, err := c.do(http.MethodDelete, "/admin/sessions/"+url.PathEscape(fs.Arg(1)), &res); err != nil {
			return fail(err)
		}
		fmt.Fprintln(out, "terminated", res["terminated"])
	case "top":
		q := url.Values{"limit": {fmt.Sprint(*limit)}}
		if *role != "" {
			q.Set("role", *role)
		}
		var list []proxy.TopEntry
		if _, err := c.do(http.MethodGet, "/admin/top?"+q.Encode(), &list); err != nil {
			return fail(err)
		}
		if *asJSON {
			return printJSON(out, list)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLE\tFINGERPRINT\tCALLS\tERRORS\tTOTAL\tMEAN\tMAX\tQUERY")
		for _, e := range list {
			q := e.Query
			if len(q) > 80 {
				q = q[:77] + "..."
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1fms\t%.2fms\t%.1fms\t%s\n", cmp.Or(e.Role, "-"), e.Fingerprint, e.Calls, e.Errors,
				e.TotalMS, e.TotalMS/float64(max(e.Calls, 1)), e.MaxMS, q)
		}
		tw.Flush()
	}
	return 0
}

func printJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return 1
	}
	return 0
}

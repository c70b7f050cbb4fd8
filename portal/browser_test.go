//go:build browser

package portal

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// A customer walks the portal in headless Chromium: opens their link,
// reads their data, opts out of direct marketing and back in, sends a
// correction and sees it pending; pgcloak review approve (the real
// command) applies it and the page shows the new value. A tampered link
// gets 403. The screenshots in docs/img are the ones this test takes.
//
//	go test -tags browser -run TestBrowser ./portal/
func TestBrowserWalk(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	me, myEmail := e.customer(10)
	if _, err := e.owner.Exec(ctx, "DELETE FROM customer_opt_outs WHERE customer_id = $1::bigint AND purpose = 'direct_marketing'", me); err != nil {
		t.Fatal(err)
	}
	bin := buildPgcloak(t)
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, crm.Rules, 0o644); err != nil {
		t.Fatal(err)
	}
	imgDir := filepath.Join("..", "docs", "img")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.NoSandbox, chromedp.WindowSize(1100, 1000),
		chromedp.Flag("disable-dev-shm-usage", true))
	if p, err := exec.LookPath("chromium"); err == nil {
		opts = append(opts, chromedp.ExecPath(p))
	}
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 40*time.Second)
	defer cancel()

	// Every console error (a CSP violation included) fails the test.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	cctx, stopConsole := context.WithCancel(bctx)
	console := chromedp.Console(cctx)
	var consoleErrors []string
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == "error" || m.IsException() {
				consoleErrors = append(consoleErrors, m.String())
			}
		}
	}()

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(imgDir, "portal-"+name+".png"), buf, 0o644)
		})
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// Open the link: the page moves on to the customer's data.
	run("open the link",
		chromedp.Navigate(e.link(me, 24*time.Hour)),
		chromedp.WaitVisible(chromedp.CSS(`#subject`)),
		shot("data"))
	if got := text(`#subject td[data-column="email"]`); got != myEmail {
		t.Fatalf("the page shows e-mail %q, the CRM holds %q", got, myEmail)
	}

	// Opt out of direct marketing, then back in.
	run("opt out",
		chromedp.Click(chromedp.CSS(`#opt-out-direct_marketing`)),
		chromedp.WaitVisible(chromedp.CSS(`#opt-in-direct_marketing`)),
		shot("opted-out"))
	if !strings.Contains(text(`#state-direct_marketing`), "opted out") {
		t.Fatal("the page does not show the opt-out")
	}
	var out bool
	e.owner.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM customer_opt_outs WHERE customer_id = $1::bigint AND purpose = 'direct_marketing')", me).Scan(&out)
	if !out {
		t.Fatal("the opt-out is not in the database")
	}
	run("opt back in",
		chromedp.Click(chromedp.CSS(`#opt-in-direct_marketing`)),
		chromedp.WaitVisible(chromedp.CSS(`#opt-out-direct_marketing`)))
	e.owner.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM customer_opt_outs WHERE customer_id = $1::bigint AND purpose = 'direct_marketing')", me).Scan(&out)
	if out {
		t.Fatal("the opt-out is still in the database")
	}

	// Correct the e-mail address: it waits for review.
	newEmail := "new.address." + me + "@example.org"
	run("send a correction",
		chromedp.SetValue(chromedp.CSS(`#column`), "email"),
		chromedp.SendKeys(chromedp.CSS(`#value`), newEmail),
		chromedp.Click(chromedp.CSS(`#send-correction`)),
		chromedp.WaitVisible(chromedp.CSS(`#corrections .status-pending`)),
		chromedp.ScrollIntoView(chromedp.CSS(`#correct`)),
		shot("pending"))
	if got := text(`#subject td[data-column="email"]`); got != myEmail {
		t.Fatalf("before approval the page shows %q", got)
	}
	var id int64
	if err := e.owner.QueryRow(ctx, `SELECT id FROM pgcloak.change_requests WHERE status = 'pending'
		AND row_key = jsonb_build_object('customer_id', $1::bigint) AND new_values->>'email' = $2`, me, newEmail).Scan(&id); err != nil {
		t.Fatalf("the pending request: %v", err)
	}

	// The approver decides with the real command.
	args := []string{"review", "approve", "--database", ownerDSN(), "--rules", rulesFile, "--approver", "petra"}
	if usage, _ := exec.Command(bin, "review").CombinedOutput(); strings.Contains(string(usage), "--approver-database") {
		// review authenticates the approver through a login of their own.
		args = append(args, "--approver-database", pg.DSN("petra", pgtest.Database))
	}
	cmd := exec.Command(bin, append(args, fmt.Sprint(id))...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgcloak review approve: %v\n%s", err, out)
	}
	run("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#corrections .status-applied`)), shot("applied"))
	if got := text(`#subject td[data-column="email"]`); got != newEmail {
		t.Fatalf("after approval the page shows %q, want %q", got, newEmail)
	}

	// No console errors so far: no CSP violation, no missing resource.
	time.Sleep(200 * time.Millisecond) // let the last messages arrive
	stopConsole()
	<-consoleDone
	if len(consoleErrors) > 0 {
		t.Fatalf("console errors: %v", consoleErrors)
	}

	// A tampered link: 403, and no data.
	u, _ := url.Parse(e.link(me, time.Hour))
	q := u.Query()
	q.Set("subject", fmt.Sprint(mustAtoi(t, me)+1))
	u.RawQuery = q.Encode()
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered link: %s", resp.Status)
	}
	run("tampered link in the browser", chromedp.Navigate(u.String()), chromedp.WaitVisible(chromedp.CSS(`#error`)), shot("tampered-link"))
	if h := text(`h1`); !strings.HasPrefix(h, "403") {
		t.Fatalf("tampered link page: %q", h)
	}
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// buildPgcloak builds the pgcloak command for the test to run.
func buildPgcloak(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pgcloak")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/pgcloak").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
)

// An attribute-query login connects while the engine's own connection is
// busy (a catalog load holds it), and logins with attribute queries
// connect side by side, each with its own attributes, as many at once as
// the pool holds and more.
func TestAttributeQueriesBesideCatalog(t *testing.T) {
	release := eng.HoldConn()
	held := true
	defer func() {
		if held {
			release()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, cloaktest.DSN(proxyAddr, "erin", crm.DemoPassword))
	if err != nil {
		t.Fatalf("erin while the catalog connection is held: %v", err)
	}
	defer c.Close(context.Background())
	var regions string
	if err := c.QueryRow(ctx, "SELECT string_agg(DISTINCT region, ',') FROM customers").Scan(&regions); err != nil || regions != "east" {
		t.Fatalf("erin sees %q, %v; want east", regions, err)
	}
	release()
	held = false

	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := range 24 {
		login, want := "erin", "east"
		if i%3 == 0 {
			login, want = "alice", "north"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, cloaktest.DSN(proxyAddr, login, crm.DemoPassword))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			var got string
			if err := c.QueryRow(ctx, "SELECT string_agg(DISTINCT region, ',') FROM customers").Scan(&got); err != nil || got != want {
				t.Errorf("%s sees %q, %v; want %s", login, got, err, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

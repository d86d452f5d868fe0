package app_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/testenv"
)

// /metrics is served on the main address only with --public-metrics; the
// admin address always serves it.
func TestMetricsPrivateByDefault(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close()
	base := serve(t, testenv.SQLite(t), func(c *config.Config) { c.AdminAddr = adminAddr })
	if code, body := get(t, base+"/metrics"); code != http.StatusNotFound || strings.Contains(body, "herald_") {
		t.Fatalf("main address /metrics: %d %.80q; want 404", code, body)
	}
	var code int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get("http://" + adminAddr + "/metrics"); err == nil {
			code = res.StatusCode
			res.Body.Close()
			break
		}
	}
	if code != http.StatusOK {
		t.Fatalf("admin /metrics: %d", code)
	}
	public := serve(t, testenv.SQLite(t), func(c *config.Config) { c.PublicMetrics = true })
	if code, body := get(t, public+"/metrics"); code != http.StatusOK || !strings.Contains(body, "herald_realtime_connections") {
		t.Fatalf("with --public-metrics: %d %.80q", code, body)
	}
}

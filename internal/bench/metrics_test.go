package bench

import "testing"

// A server's metrics are read from its admin address when the bench knows
// it, since herald serves them on its main address only with
// --public-metrics.
func TestMetricsURL(t *testing.T) {
	ts, err := ParseTargets("127.0.0.1:8000,127.0.0.1:8001")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{targets: ts}
	if got := e.metricsURL(1); got != "http://127.0.0.1:8001/metrics" {
		t.Errorf("without admin addresses: %s", got)
	}
	e.admins = []string{"http://127.0.0.1:6060", "http://127.0.0.1:6061"}
	if got := e.metricsURL(1); got != "http://127.0.0.1:6061/metrics" {
		t.Errorf("with admin addresses: %s", got)
	}
}

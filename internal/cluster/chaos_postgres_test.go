package cluster

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// PostgreSQL (a server of this test's own) is stopped for 10 s. Writes
// meanwhile are refused with a 503 problem document; nothing committed is
// lost; clients cut off meanwhile get back in once it is back, and events
// flow again.
func TestChaosPostgresOutage(t *testing.T) {
	began := time.Now()
	pg := startPostgres(t)
	d := deployOn(t, pg.DSN(), 2, "")
	token, camp := room(t, d)
	subs := subscribers(t, d, camp, 24, 4)
	stop := startSubscribers(t, subs)
	w := startWriters(t, d, token, camp, writerConfig{rate: 40, workers: 4})
	more(t, w, 60, "before the outage")
	pg.stop()
	down := time.Now()
	okBefore := w.count()
	// Clients whose connections break during the outage must get back in
	// once it is over.
	for _, s := range []*subscriber{subs[0], subs[1], subs[24], subs[25]} {
		s.drop()
	}
	if !waitFor(30*time.Second, func() bool { return time.Since(down) >= 10*time.Second && w.stats().failed >= 20 }) {
		t.Fatalf("writes were not refused during the outage: %+v", w.stats().outcomes)
	}
	for _, p := range d.procs {
		if code := p.ready(); code != http.StatusServiceUnavailable {
			t.Errorf("process %s: /readyz answered %d during the outage, want 503", p.name, code)
		}
	}
	acceptedDuring := w.count() - okBefore
	pg.start()
	outage := time.Since(down)
	back := time.Now()
	more(t, w, 1, "after PostgreSQL came back")
	recovery := time.Since(back)
	more(t, w, 60, "after PostgreSQL came back")
	f := finish(t, d, token, camp, w, subs, stop, began)
	st := w.stats()
	t.Logf("PostgreSQL stopped for %v; writes acknowledged during it %d, refused %d (%v); first write acknowledged %v after it was back: %v",
		outage.Round(time.Millisecond), acceptedDuring, st.failed, st.outcomes, recovery.Round(time.Millisecond), f)
	assertInvariant(t, f)
	if f.reloads > 0 {
		t.Errorf("%d resumes answered recovered:false; want none", f.reloads)
	}
	if st.failed == 0 {
		t.Error("no write was refused while PostgreSQL was down")
	}
	if st.unclear > 0 {
		t.Errorf("%d of %d refusals were not a 503 problem document with a code; first ones:\n%s",
			st.unclear, st.failed, strings.Join(st.unclearOnes[:min(len(st.unclearOnes), 5)], "\n"))
	}
}

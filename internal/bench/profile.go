package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// profiler fetches CPU profiles of the server from its admin address
// (`herald serve --admin-addr`, net/http/pprof) while a phase runs.
type profiler struct {
	e      *env
	admins []string // http://127.0.0.1:6060, one per server process
	done   chan struct{}
	n      int
}

// profile starts a CPU profile of the server for the next d, written to
// <out>/<name> when it arrives; it does not wait. Without --profile it does
// nothing.
func (e *env) profile(ctx context.Context, name string, d time.Duration) {
	p := e.prof
	if p == nil {
		return
	}
	// A second short of the phase, so that the next phase's profile never
	// finds this one still running.
	secs := int(math.Ceil(d.Seconds()))
	if d >= 3*time.Second {
		secs = int(d.Seconds()) - 1
	}
	secs = min(max(secs, 1), int(MaxDuration.Seconds()))
	for k, admin := range p.admins {
		name := name
		if len(p.admins) > 1 { // cpu-connect.pprof → cpu-connect.p2.pprof
			name = fmt.Sprintf("%s.p%d%s", strings.TrimSuffix(name, ".pprof"), k+1, ".pprof")
		}
		p.n++
		go func() {
			defer func() { p.done <- struct{}{} }()
			err := p.fetch(ctx, admin, name, secs)
			if err != nil {
				e.note("CPU profile %s: %v", name, err)
				return
			}
			e.mu.Lock()
			e.res.Profiles = append(e.res.Profiles, name)
			e.mu.Unlock()
		}()
	}
}

func (p *profiler) fetch(ctx context.Context, admin, name string, secs int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, secs), nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 300))
		return fmt.Errorf("HTTP %d: %s", res.StatusCode, b)
	}
	if err := os.MkdirAll(p.e.o.Out, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(p.e.o.Out, name))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// wait waits for the profiles still being taken.
func (p *profiler) wait() {
	if p == nil {
		return
	}
	for ; p.n > 0; p.n-- {
		<-p.done
	}
}

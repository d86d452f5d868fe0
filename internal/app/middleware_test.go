package app

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/metrics"
)

// A handler that panics fails only its request: before it answered, with a
// 500 problem document; after it started answering, by cutting that
// response short; after it took the connection over, not at all. Other
// requests are served, and each panic is counted.
func TestRecoverPanics(t *testing.T) {
	m := metrics.New()
	mux := http.NewServeMux()
	mux.HandleFunc("/boom", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		panic("handler failed")
	})
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = w.Write([]byte("partial"))
		_ = http.NewResponseController(w).Flush() // on the wire: no client retries it
		panic("handler failed late")
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		nc, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\n\r\nmine")
		_ = rw.Flush()
		defer nc.Close()
		panic("handler failed after hijack")
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := httptest.NewServer(chain(mux, slog.New(slog.DiscardHandler), m, nil, nil, false))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Type, Title, Detail, Code string
		Status                    int
	}
	err = json.NewDecoder(res.Body).Decode(&p)
	res.Body.Close()
	if err != nil || res.StatusCode != 500 || res.Header.Get("Content-Type") != "application/problem+json" ||
		p.Status != 500 || p.Code != "error" || p.Title != "Internal Server Error" {
		t.Fatalf("panic before answering: %d %s %+v %v", res.StatusCode, res.Header.Get("Content-Type"), p, err)
	}

	if res, err := http.Get(srv.URL + "/late"); err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			t.Fatal("a response cut short by a panic read as complete")
		}
	}

	nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(nc, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	got, _ := io.ReadAll(bufio.NewReader(nc))
	nc.Close()
	if string(got) != "HTTP/1.1 101 Switching Protocols\r\n\r\nmine" {
		t.Fatalf("a hijacked connection got %q; want only what its handler wrote", got)
	}

	res, err = http.Get(srv.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("another request: %d", res.StatusCode)
	}
	// The hijacked connection's panic is recovered once its handler's
	// deferred close has run, which the client may see first.
	want := `herald_panics_total{where="http"} 3` + "\n"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if strings.Contains(rec.Body.String(), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %q", want)
		}
	}
}

// TestShedRequestsLogAtWarn: a 503 with Retry-After is load shed on purpose
// and logged at WARN; any other 5xx is a fault, at ERROR.
func TestShedRequestsLogAtWarn(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	// The access line is written after the response: the handler hands
	// each line over a channel.
	lines := make(chan []byte, 8)
	log := slog.New(slog.NewJSONHandler(lineWriter(lines), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(chain(mux, log, metrics.New(), nil, nil, false))
	defer srv.Close()
	for path, want := range map[string]string{"/busy": "WARN", "/down": "ERROR", "/fail": "ERROR"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		var line struct{ Level, Path string }
		select {
		case b := <-lines:
			if err := json.Unmarshal(b, &line); err != nil || line.Path != path || line.Level != want {
				t.Errorf(
					"%s logged %s (%v); want level %s",
					path, b, err, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no access line", path)
		}
	}
}

// The access log names the client: behind a proxy (trustProxy) the last
// X-Forwarded-For entry, which the proxy wrote, not the proxy's address
// (remote) nor what the client wrote before it; otherwise the peer.
func TestAccessLogNamesTheClient(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	for _, trust := range []bool{true, false} {
		lines := make(chan []byte, 8)
		log := slog.New(slog.NewJSONHandler(lineWriter(lines), &slog.HandlerOptions{Level: slog.LevelDebug}))
		srv := httptest.NewServer(chain(mux, log, metrics.New(), nil, nil, trust))
		req, _ := http.NewRequest("GET", srv.URL+"/ok", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9, 198.51.100.7")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		var line struct{ Remote, Client string }
		select {
		case b := <-lines:
			_ = json.Unmarshal(b, &line)
		case <-time.After(30 * time.Second):
			t.Fatal("no access line")
		}
		srv.Close()
		want := "198.51.100.7"
		if !trust {
			want = "127.0.0.1"
		}
		if line.Client != want || !strings.HasPrefix(line.Remote, "127.0.0.1:") {
			t.Errorf("trustProxy %v: logged client %q, remote %q; want client %s and the peer's address:port", trust, line.Client, line.Remote, want)
		}
	}
}

// lineWriter sends a copy of each write (slog writes a line at a time).
type lineWriter chan []byte

func (w lineWriter) Write(p []byte) (int, error) {
	w <- append([]byte(nil), p...)
	return len(p), nil
}

// A page on an allowed origin may send Idempotency-Key (the preflight
// allows it) and read Idempotent-Replayed.
func TestCORSAllowsIdempotencyKey(t *testing.T) {
	const origin = "https://app.example.com"
	h := cors([]string{origin}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	pre := httptest.NewRequest("OPTIONS", "/api/quests/", nil)
	pre.Header.Set("Origin", origin)
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "content-type,idempotency-key")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, pre)
	if allowed := w.Header().Get("Access-Control-Allow-Headers"); !strings.Contains(strings.ToLower(allowed), "idempotency-key") {
		t.Errorf("preflight allows %q, not Idempotency-Key", allowed)
	}
	req := httptest.NewRequest("POST", "/api/quests/", nil)
	req.Header.Set("Origin", origin)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if exposed := w.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(exposed, "Idempotent-Replayed") {
		t.Errorf("exposed headers %q lack Idempotent-Replayed", exposed)
	}
}

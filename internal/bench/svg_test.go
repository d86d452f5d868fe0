package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// svgStats parses an SVG document completely (failing on malformed XML)
// and counts its <rect class="bar"> elements.
func svgStats(t *testing.T, doc []byte) (bars int, texts []string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	root := ""
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
				if el.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root element in namespace %q", el.Name.Space)
				}
			}
			inText = el.Name.Local == "text"
			for _, a := range el.Attr {
				if el.Name.Local == "rect" && a.Name.Local == "class" && a.Value == "bar" {
					bars++
				}
			}
		case xml.CharData:
			if inText {
				texts = append(texts, string(el))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return bars, texts
}

func TestHistogramSVG(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i*i) * time.Microsecond)
	}
	bins := h.Bins(10)
	var buf bytes.Buffer
	title := `Fan-out <1000 subscribers> & "quotes"`
	if err := WriteHistogramSVG(&buf, title, "p99 & max", bins, []Mark{{1, "p50"}, {500, "p99"}, {0, "skipped"}}); err != nil {
		t.Fatal(err)
	}
	bars, texts := svgStats(t, buf.Bytes())
	if bars != len(bins) {
		t.Fatalf("%d bars for %d bins", bars, len(bins))
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{title, "p50", "p99", "1 ms", "1 s"} {
		if !strings.Contains(joined, want) {
			t.Errorf("chart text lacks %q: %s", want, joined)
		}
	}
	if strings.Contains(joined, "skipped") {
		t.Error("a mark at 0 should not be drawn on a log axis")
	}
}

func TestHistogramSVGEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHistogramSVG(&buf, "nothing", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if bars, _ := svgStats(t, buf.Bytes()); bars != 0 {
		t.Fatalf("%d bars for no bins", bars)
	}
}

func TestTimelineSVG(t *testing.T) {
	var samples []Sample
	for i := 1; i <= 37; i++ {
		samples = append(samples, Sample{T: float64(i), Value: float64(i * 12345)})
	}
	var buf bytes.Buffer
	if err := WriteTimelineSVG(&buf, "Deliveries per second", "run", "deliveries/s", samples, []Mark{{0, "10/s"}, {20, "20/s"}}); err != nil {
		t.Fatal(err)
	}
	bars, texts := svgStats(t, buf.Bytes())
	if bars != len(samples) {
		t.Fatalf("%d bars for %d samples", bars, len(samples))
	}
	joined := strings.Join(texts, "|")
	for _, want := range []string{"deliveries/s", "10/s", "20/s", "500k"} {
		if !strings.Contains(joined, want) {
			t.Errorf("chart text lacks %q: %s", want, joined)
		}
	}
}

func TestNiceNumbers(t *testing.T) {
	for v, want := range map[float64]float64{0: 1, 0.3: 0.5, 1: 1, 1.1: 2, 3: 5, 7: 10, 456789: 500000, 1e6: 1e6} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
	for v, want := range map[float64]string{12: "12", 12000: "12k", 2500000: "2.5M", 0.5: "0.5"} {
		if got := human(v); got != want {
			t.Errorf("human(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0.01: "10 µs", 1: "1 ms", 250: "250 ms", 1000: "1 s"} {
		if got := msLabel(v); got != want {
			t.Errorf("msLabel(%v) = %q, want %q", v, got, want)
		}
	}
}

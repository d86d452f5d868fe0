package consumers

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/groups"
)

// FuzzParseResume checks the reader of ?resume= and of an SSE stream's
// Last-Event-ID (both are parseResume): no input panics it, what it accepts
// is bounded, and every accepted position is written back and read again
// unchanged.
func FuzzParseResume(f *testing.F) {
	for _, s := range []string{
		"", "campaign_1:e1:0", "campaign_1:e1:3,user_2:e2:5",
		"campaign_1:e:9223372036854775807", "campaign_1:e:18446744073709551615",
		"campaign_1:e:18446744073709551616", "campaign_1:e:-1", "campaign_1:e:+1",
		"campaign_1::0", "campaign_1:e:", ":e:1", "::", ",", ",,", "campaign_1:e:1,",
		"campaign_1:e:1,,user_1:e:1", "campaign_0001:e:1", "Campaign_1:e:1",
		"campaign_1:e:1:2", "campaign_1:e:1,campaign_1:e:2", "campaign_1:e:0x10",
		"campaign_1:" + strings.Repeat("e", 64) + ":1", "campaign_1:" + strings.Repeat("e", 65) + ":1",
		strings.Repeat("g", 64) + ":e:1", strings.Repeat("g", 65) + ":e:1",
		"campaign_1:e:" + strings.Repeat("9", 1000), "campaign_\u00e9:e:1", "campaign_1:\x00:1",
		resumeList(maxResume), resumeList(maxResume + 1), strings.Repeat(",", 100000),
		"chat:lobby:e:1", "chat:lobby::0", "chat::e:1", "chat:a:b:e:1", "room_x:e:2,chat:y:e:3", "chat:lobby:e",
	} {
		f.Add(s)
	}
	c := resumeReader(f)
	parseResume := c.parseResume
	f.Fuzz(func(t *testing.T, v string) {
		ps, err := parseResume(v)
		if err != nil {
			if ps != nil {
				t.Fatalf("parseResume(%.80q) = %v with error %v", v, ps, err)
			}
			return
		}
		if len(ps) > maxResume {
			t.Fatalf("parseResume(%.80q) accepted %d positions", v, len(ps))
		}
		for g, p := range ps {
			if c.groups.Valid(g) != nil || len(p.Epoch) > 64 || strings.ContainsAny(p.Epoch, ":,") {
				t.Fatalf("parseResume(%.80q) accepted group %q epoch %q", v, g, p.Epoch)
			}
		}
		back, err := parseResume(formatResume(ps))
		if err != nil || !maps.Equal(back, ps) {
			t.Fatalf("parseResume(%.80q) = %v; written back and read again: %v, %v", v, ps, back, err)
		}
	})
}

// resumeReader is a Consumers whose registry has namespaces of both
// separators, the one with ':' making groups that hold the position's
// own separator.
func resumeReader(tb testing.TB) *Consumers {
	reg, err := groups.New([]groups.Namespace{
		{Name: "chat", Subscribe: groups.Anyone},
		{Name: "room", Sep: '_', Subscribe: groups.TokenHolder},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &Consumers{groups: reg}
}

// formatResume writes positions in the ?resume= form, groups in order.
func formatResume(ps map[string]position) string {
	var b strings.Builder
	for i, g := range slices.Sorted(maps.Keys(ps)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(g + ":" + ps[g].Epoch + ":" + strconv.FormatUint(ps[g].Offset, 10))
	}
	return b.String()
}

// resumeList is a ?resume= value with n distinct groups.
func resumeList(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "campaign_" + strconv.Itoa(i+1) + ":e:" + strconv.Itoa(i)
	}
	return strings.Join(parts, ",")
}

// TestParseResumeCostsItsLength: a hostile value is refused for what it
// costs to read, not for a multiple of it (splitting 1 MiB of commas first
// allocated 16 MiB).
func TestParseResumeCostsItsLength(t *testing.T) {
	parseResume := resumeReader(t).parseResume
	for _, v := range []string{
		strings.Repeat(",", 1<<20),
		"campaign_1" + strings.Repeat(":", 1<<20),
		strings.Repeat("campaign_1::0,", 1<<16),
	} {
		allocated := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := parseResume(v); err == nil {
					b.Fatal("accepted")
				}
			}
		}).AllocedBytesPerOp()
		if allocated > int64(len(v)) {
			t.Errorf(
				"%.20q… (%d bytes) allocated %d bytes",
				v, len(v), allocated)
		}
	}
}

package origin

import "testing"

func TestSame(t *testing.T) {
	for _, c := range []struct {
		origin, host string
		want         bool
	}{
		{"http://localhost:8000", "localhost:8000", true},
		{"https://App.Example.com", "app.example.com", true},
		{"http://localhost:3000", "localhost:8000", false},
		{"http://evil.example", "localhost:8000", false},
		{"null", "localhost:8000", false},
		{"http://localhost:8000", "", false},
	} {
		if got := Same(c.origin, c.host); got != c.want {
			t.Errorf("Same(%q, %q) = %v", c.origin, c.host, got)
		}
	}
}

func TestAllowed(t *testing.T) {
	list := []string{"http://localhost:3000", "https://*.example.com"}
	for origin, want := range map[string]bool{
		"http://localhost:3000":    true,
		"HTTP://LOCALHOST:3000":    true,
		"http://localhost:3001":    false,
		"https://app.example.com":  true,
		"https://a.b.example.com":  true,
		"https://example.com":      false,
		"http://app.example.com":   false,
		"https://evilexample.com":  false,
		"https://example.com.evil": false,
		"https://":                 false,
		"null":                     false,
		"":                         false,
	} {
		if got := Allowed(list, origin); got != want {
			t.Errorf("Allowed(%q) = %v; want %v", origin, got, want)
		}
	}
	if Allowed(nil, "http://localhost:3000") {
		t.Error("an empty list allowed an origin")
	}
	if !Allowed([]string{"*"}, "https://anything.example") {
		t.Error(`"*" did not allow an origin`)
	}
}

func TestHostAllowed(t *testing.T) {
	list := []string{"*", "http://localhost:3000", "https://*.example.com"}
	for host, want := range map[string]bool{
		"localhost:3000":   true,
		"LOCALHOST:3000":   true,
		"localhost:3001":   false,
		"app.example.com":  true,
		"a.b.example.com":  true,
		"example.com":      false,
		"evilexample.com":  false,
		"example.com.evil": false,
		"evil.example":     false,
		"":                 false,
	} {
		if got := HostAllowed(list, host); got != want {
			t.Errorf("HostAllowed(%q) = %v; want %v", host, got, want)
		}
	}
}

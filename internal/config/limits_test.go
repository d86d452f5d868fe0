package config

import (
	"strings"
	"testing"
)

// The hardening flags: their defaults, the environment, and a clear error
// for every value out of range.
func TestHardeningFlags(t *testing.T) {
	c, err := parseArgs(t, nil, nil)
	if err != nil || c.PasswordHashes != 0 || c.RegistrationsPerHour != 10 || c.PublicMetrics {
		t.Fatalf("defaults: hashes %d, registrations %d, public metrics %v, %v", c.PasswordHashes, c.RegistrationsPerHour, c.PublicMetrics, err)
	}
	c, err = parseArgs(t, []string{"--password-hashes", "3", "--registrations-per-hour", "-1"},
		map[string]string{"HERALD_PUBLIC_METRICS": "true", "HERALD_PASSWORD_HASHES": "9"})
	if err != nil || c.PasswordHashes != 3 || c.RegistrationsPerHour != -1 || !c.PublicMetrics {
		t.Fatalf("flags and environment: hashes %d, registrations %d, public metrics %v, %v", c.PasswordHashes, c.RegistrationsPerHour, c.PublicMetrics, err)
	}
	for _, bad := range [][]string{
		{"--password-hashes", "-1"},
		{"--password-hashes", "1025"},
		{"--password-hashes", "x"},
		{"--password-hashes", "99999999999999999999"},
		{"--registrations-per-hour", "0"},
		{"--registrations-per-hour", "-2"},
		{"--registrations-per-hour", "1e3"},
		{"--public-metrics=maybe"},
	} {
		name, _, _ := strings.Cut(bad[0], "=")
		if _, err := parseArgs(t, bad, nil); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v accepted (%v)", bad, err)
		}
	}
}

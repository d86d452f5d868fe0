package config

import (
	"strings"
	"testing"
)

// The publish API's limits: their defaults, flags over the environment, and
// a clear error for every value out of range.
func TestPublishFlags(t *testing.T) {
	c, err := parseArgs(t, nil, nil)
	if err != nil || c.PublishMaxData != 65536 || c.PublishRate != 100 {
		t.Fatalf("defaults: max data %d, rate %d, %v", c.PublishMaxData, c.PublishRate, err)
	}
	c, err = parseArgs(t, []string{"--publish-rate", "-1"},
		map[string]string{"HERALD_PUBLISH_MAX_DATA": "1048576", "HERALD_PUBLISH_RATE": "5"})
	if err != nil || c.PublishMaxData != 1<<20 || c.PublishRate != -1 {
		t.Fatalf("flags and environment: max data %d, rate %d, %v", c.PublishMaxData, c.PublishRate, err)
	}
	for _, bad := range [][]string{
		{"--publish-max-data", "0"},
		{"--publish-max-data", "1048577"},
		{"--publish-max-data", "-1"},
		{"--publish-max-data", "64KiB"},
		{"--publish-max-data", "99999999999999999999"},
		{"--publish-rate", "0"},
		{"--publish-rate", "-2"},
		{"--publish-rate", "1.5"},
	} {
		if _, err := parseArgs(t, bad, nil); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v accepted (%v)", bad, err)
		}
	}
}

package config

import (
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/store"
)

func TestOutboxPartitions(t *testing.T) {
	c, err := parseArgs(t, nil, nil)
	if err != nil || c.OutboxPartitions != store.DefaultOutboxPartitions {
		t.Fatalf("default: %d, %v", c.OutboxPartitions, err)
	}
	c, err = parseArgs(t, []string{"--outbox-partitions", "64"}, map[string]string{"HERALD_OUTBOX_PARTITIONS": "4"})
	if err != nil || c.OutboxPartitions != 64 {
		t.Fatalf("flag over the environment: %d, %v", c.OutboxPartitions, err)
	}
	if c, err = parseArgs(t, nil, map[string]string{"HERALD_OUTBOX_PARTITIONS": "1"}); err != nil || c.OutboxPartitions != 1 {
		t.Fatalf("environment: %d, %v", c.OutboxPartitions, err)
	}
	for _, bad := range []string{"0", "-1", "x", "65"} {
		if _, err := parseArgs(t, []string{"--outbox-partitions", bad}, nil); err == nil || !strings.Contains(err.Error(), "--outbox-partitions") {
			t.Errorf("--outbox-partitions %s accepted (%v)", bad, err)
		}
	}
}

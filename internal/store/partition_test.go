package store

import (
	"hash/fnv"
	"strconv"
	"testing"
)

// A group's partition is FNV-1a of its name modulo the count: stable
// across processes and versions, and in range.
func TestOutboxPartition(t *testing.T) {
	for _, parts := range []int{1, 2, 16, 63, MaxOutboxPartitions} {
		seen := map[int]bool{}
		for i := range 2000 {
			g := "campaign_" + strconv.Itoa(i)
			h := fnv.New32a()
			h.Write([]byte(g))
			want := int(h.Sum32() % uint32(parts))
			got := OutboxPartition(g, parts)
			if got != want || got < 0 || got >= parts {
				t.Fatalf("OutboxPartition(%q, %d) = %d; want %d", g, parts, got, want)
			}
			seen[got] = true
		}
		if len(seen) != parts {
			t.Errorf("%d partitions: 2000 groups fell in %d of them", parts, len(seen))
		}
	}
	for in, want := range map[int]int{0: DefaultOutboxPartitions, -3: 1, 1: 1, 64: 64, 65: MaxOutboxPartitions, 1000: MaxOutboxPartitions} {
		if got := OutboxPartitions(in); got != want {
			t.Errorf("OutboxPartitions(%d) = %d; want %d", in, got, want)
		}
	}
}

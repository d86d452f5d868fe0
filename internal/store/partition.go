package store

// The outbox is split into partitions by group, so that relays of several
// processes can publish different partitions at once while each group's
// events stay in one partition (relay). Every event row stores the
// partition it was written to and how many partitions its writer had
// (outbox.part, outbox.parts): a relay drains rows by what they store, so
// a change of the count never moves an unpublished event.

// DefaultOutboxPartitions is the number of outbox partitions unless
// configured otherwise.
const DefaultOutboxPartitions = 16

// MaxOutboxPartitions bounds the number of outbox partitions: a relay's
// wake-up names the partitions a write touched as one 64-bit mask, and
// one PostgreSQL gains nothing from more relays at once than that.
const MaxOutboxPartitions = 64

// OutboxPartition is the partition of the outbox that group's events go
// to when it has parts partitions (1 to MaxOutboxPartitions): the 32-bit
// FNV-1a hash of the group's name, modulo parts. It never changes for a
// given name and count.
func OutboxPartition(group string, parts int) int {
	if parts <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(group); i++ {
		h ^= uint32(group[i])
		h *= 16777619
	}
	return int(h % uint32(parts))
}

// OutboxPartitions is n if it is a valid number of outbox partitions, the
// default for 0, and otherwise the nearest bound.
func OutboxPartitions(n int) int {
	switch {
	case n == 0:
		return DefaultOutboxPartitions
	case n < 1:
		return 1
	case n > MaxOutboxPartitions:
		return MaxOutboxPartitions
	}
	return n
}

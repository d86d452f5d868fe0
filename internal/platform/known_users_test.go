package platform

import (
	"testing"
	"time"
)

// knownUsers forgets a user after knownUserTTL and never holds more than
// maxKnownUsers.
func TestKnownUsersBounded(t *testing.T) {
	var k knownUsers
	now := time.Now()
	k.add(1, now)
	if !k.fresh(1, now.Add(knownUserTTL-time.Millisecond)) {
		t.Fatal("a user just found is not remembered")
	}
	if k.fresh(1, now.Add(knownUserTTL)) {
		t.Fatal("a user is remembered past knownUserTTL")
	}
	if k.fresh(2, now) {
		t.Fatal("a user never found is remembered")
	}
	for id := range int64(3 * maxKnownUsers) {
		k.add(id, now)
		if len(k.until) > maxKnownUsers {
			t.Fatalf("%d users remembered; bound %d", len(k.until), maxKnownUsers)
		}
	}
}

package consumers

import (
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// The platform records a room's reset under the type the channel layer acts
// on; a mismatch would publish it as an ordinary event and keep the room's
// history.
func TestRoomResetIsALayerReset(t *testing.T) {
	if platform.EventRoomReset != layer.TypeReset {
		t.Fatalf("platform.EventRoomReset = %q, layer.TypeReset = %q", platform.EventRoomReset, layer.TypeReset)
	}
}

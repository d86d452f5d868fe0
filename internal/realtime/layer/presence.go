package layer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// PresenceCounter is implemented by layers that span several processes: it
// records how many members this process has in a group and returns the
// total over every process. A layer without it counts one process only.
type PresenceCounter interface {
	Presence(ctx context.Context, group string, local int) (total int, err error)
}

// presenceStale is how long a process's count stands without being renewed;
// a process that died stops counting after that.
const presenceStale = 5 * time.Second

// presenceScript stores this process's count (with the time, from Redis's
// clock) in the group's presence hash and sums the fresh counts; stale ones
// are removed.
// KEYS[1] presence hash; ARGV[1] process id, ARGV[2] local count, ARGV[3] staleness ms.
const presenceScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. now)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local total = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local n, at = string.match(all[i + 1], '^(%d+):(%d+)$')
  if n and tonumber(at) >= now - tonumber(ARGV[3]) then
    total = total + tonumber(n)
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return total
`

var presenceLua = redis.NewScript(presenceScript)

// Presence implements PresenceCounter: counts are kept per process in Redis
// and summed; each process renews its own at least every presenceStale.
func (r *Redis) Presence(ctx context.Context, group string, local int) (int, error) {
	if r.isClosed() {
		return 0, ErrClosed
	}
	n, err := presenceLua.Run(ctx, r.cmd, []string{r.key(group, "p")}, r.id, strconv.Itoa(max(local, 0)), presenceStale.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("layer: presence of %q: %w", group, err)
	}
	return n, nil
}

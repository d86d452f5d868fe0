package bench

import (
	"bufio"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisInfo is what the channel layer's Redis says about itself (INFO).
type RedisInfo struct {
	UsedBytes      int64 `json:"used_memory"`
	RSSBytes       int64 `json:"used_memory_rss"`
	PubsubChannels int64 `json:"pubsub_channels"`
	PID            int   `json:"pid,omitempty"`
}

// redisURL is the spawned servers' Redis channel layer, "" without one.
func (e *env) redisURL() string {
	v, _ := flagValue(e.o.ServeArgs, "layer")
	if !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") {
		return ""
	}
	return v
}

// redisInfo reads the layer's Redis INFO; nil without a Redis layer or
// when it cannot be read (noted).
func (e *env) redisInfo(ctx context.Context) *RedisInfo {
	u := e.redisURL()
	if u == "" {
		return nil
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		e.note("redis INFO: %v", err)
		return nil
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	raw, err := rc.Info(ctx, "server", "memory", "stats").Result()
	if err != nil {
		e.note("redis INFO: %v", err)
		return nil
	}
	return parseRedisInfo(raw)
}

func parseRedisInfo(raw string) *RedisInfo {
	ri := &RedisInfo{}
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "used_memory":
			ri.UsedBytes = n
		case "used_memory_rss":
			ri.RSSBytes = n
		case "pubsub_channels":
			ri.PubsubChannels = n
		case "process_id":
			ri.PID = int(n)
		}
	}
	return ri
}

// redisCPU starts measuring the layer's Redis's CPU (nil figures without
// one).
func (e *env) redisCPU(ctx context.Context) cpuMeter {
	ri := e.redisInfo(ctx)
	if ri == nil || ri.PID == 0 {
		return cpuMeter{}
	}
	return startCPU(ri.PID)
}

package bench

import (
	"bufio"
	"context"
	"os"
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

// postgresMeter measures the CPU of this machine's PostgreSQL processes
// (every process named postgres: the postmaster, its background workers
// and the backends of every client), which backends coming and going
// during the measurement do not spoil: a process seen only at the end
// counts all its CPU, one gone by then counts until its last reading.
type postgresMeter struct {
	cpu0  map[int]time.Duration
	wall0 time.Time
}

func startPostgresCPU() *postgresMeter {
	return &postgresMeter{cpu0: postgresCPU(), wall0: time.Now()}
}

func (m *postgresMeter) stop() *ProcessFigures {
	if m == nil || len(m.cpu0) == 0 {
		return nil
	}
	var d time.Duration
	now := postgresCPU()
	for pid, c := range now {
		d += c - m.cpu0[pid]
	}
	wall := time.Since(m.wall0).Seconds()
	return &ProcessFigures{CPUSecs: round3(d.Seconds()), WallSecs: round3(wall), Cores: round3(d.Seconds() / max(wall, 1e-3))}
}

// postgresCPU is the CPU time of each process named postgres.
func postgresCPU() map[int]time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := map[int]time.Duration{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if c, err := CPUTime(pid); err == nil {
			out[pid] = c
		}
	}
	return out
}

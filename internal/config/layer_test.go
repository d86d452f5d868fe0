package config

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func parseArgs(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	resolve := FlagSet(fs, func(k string) string { return env[k] })
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return resolve()
}

func TestLayerOptions(t *testing.T) {
	c, err := parseArgs(t, nil, nil)
	if err != nil || c.Layer != "memory" || c.RedisSharded || c.RedisPrefix != "herald:" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = parseArgs(t, nil, map[string]string{"HERALD_LAYER": "redis://10.0.0.5:6379/2", "HERALD_REDIS_PREFIX": "prod:"})
	if err != nil || c.Layer != "redis://10.0.0.5:6379/2" || c.RedisPrefix != "prod:" {
		t.Fatalf("from the environment: %+v, %v", c, err)
	}
	c, err = parseArgs(t, []string{"--layer", "redis://a:7000?addr=b:7000", "--redis-sharded=true"}, map[string]string{"HERALD_LAYER": "memory"})
	if err != nil || c.Layer != "redis://a:7000?addr=b:7000" || !c.RedisSharded {
		t.Fatalf("flags over the environment: %+v, %v", c, err)
	}
	for _, bad := range [][]string{
		{"--layer", "redis"},
		{"--layer", "http://x:6379"},
		{"--layer", "redis://"},
		{"--redis-sharded=true"},
		{"--layer", "redis://a:7000/3", "--redis-sharded=true"},
		{"--layer", "redis://a:6379", "--redis-prefix", "{x}"},
		{"--redis-sharded=maybe"},
	} {
		if _, err := parseArgs(t, bad, nil); err == nil || !strings.Contains(err.Error(), "-") {
			t.Errorf("%v accepted (%v)", bad, err)
		}
	}
}

func TestDBMaxConns(t *testing.T) {
	c, err := parseArgs(t, nil, nil)
	if err != nil || c.DBMaxConns != 0 {
		t.Fatalf("default: %d, %v", c.DBMaxConns, err)
	}
	c, err = parseArgs(t, []string{"--db-max-conns", "8"}, map[string]string{"HERALD_DB_MAX_CONNS": "4"})
	if err != nil || c.DBMaxConns != 8 {
		t.Fatalf("flag over the environment: %d, %v", c.DBMaxConns, err)
	}
	for _, bad := range []string{"-1", "x", "1001"} {
		if _, err := parseArgs(t, []string{"--db-max-conns", bad}, nil); err == nil || !strings.Contains(err.Error(), "--db-max-conns") {
			t.Errorf("--db-max-conns %s accepted (%v)", bad, err)
		}
	}
}

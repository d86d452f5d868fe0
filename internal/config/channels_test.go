package config

import (
	"strings"
	"testing"
)

func TestChannelsRedisFlags(t *testing.T) {
	c, err := parseArgs(t, nil, nil)
	if err != nil || c.ChannelsRedis != "" || c.ChannelsPrefix != "asgi" || c.ChannelsLayer != "core" {
		t.Fatalf("defaults: %q %q %q, %v", c.ChannelsRedis, c.ChannelsPrefix, c.ChannelsLayer, err)
	}
	env := map[string]string{"HERALD_CHANNELS_REDIS": "redis://10.0.0.7:6379/1", "HERALD_CHANNELS_PREFIX": "shop", "HERALD_CHANNELS_LAYER": "pubsub"}
	c, err = parseArgs(t, nil, env)
	if err != nil || c.ChannelsRedis != "redis://10.0.0.7:6379/1" || c.ChannelsPrefix != "shop" || c.ChannelsLayer != "pubsub" {
		t.Fatalf("from the environment: %q %q %q, %v", c.ChannelsRedis, c.ChannelsPrefix, c.ChannelsLayer, err)
	}
	c, err = parseArgs(t, []string{"--channels-redis", "rediss://r:6380/0", "--channels-layer", "core"}, env)
	if err != nil || c.ChannelsRedis != "rediss://r:6380/0" || c.ChannelsLayer != "core" || c.ChannelsPrefix != "shop" {
		t.Fatalf("flags over the environment: %q %q %q, %v", c.ChannelsRedis, c.ChannelsPrefix, c.ChannelsLayer, err)
	}
	for _, bad := range []struct {
		args []string
		flag string
	}{
		{[]string{"--channels-redis", "localhost:6379"}, "--channels-redis"},
		{[]string{"--channels-redis", "http://r:6379"}, "--channels-redis"},
		{[]string{"--channels-redis", "redis://"}, "--channels-redis"},
		{[]string{"--channels-layer", "RedisChannelLayer"}, "--channels-layer"},
		{[]string{"--channels-layer", ""}, "--channels-layer"},
		{[]string{"--channels-prefix", ""}, "--channels-prefix"},
		{[]string{"--channels-prefix", "a b"}, "--channels-prefix"},
	} {
		if _, err := parseArgs(t, bad.args, nil); err == nil || !strings.Contains(err.Error(), bad.flag) {
			t.Errorf("%v accepted or not named (%v)", bad.args, err)
		}
	}
}

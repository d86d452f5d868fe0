package app

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/channelsredis"
	"github.com/heraldhq/herald/internal/platform"
)

// initChannelsRedis makes this process a member of the Django app's
// channels_redis layer named by --channels-redis: the app's group_send
// messages to the groups herald serves are recorded as events of herald's
// log, which the relay publishes to herald's clients.
func (a *App) initChannelsRedis(ctx context.Context) error {
	if a.cfg.ChannelsRedis == "" {
		return nil
	}
	kind := channelsredis.Layer(a.cfg.ChannelsLayer)
	if kind == "" {
		kind = channelsredis.Core
	}
	m, err := channelsredis.New(ctx, a.cfg.ChannelsRedis, channelsredis.Options{
		Layer:  kind,
		Prefix: a.cfg.ChannelsPrefix,
		Record: func(ctx context.Context, group, typ string, data []byte) error {
			err := a.platform.RecordExternal(ctx, group, typ, data)
			if platform.KindOf(err) == platform.KindInvalid {
				return fmt.Errorf("%w: %v", channelsredis.ErrRejected, err)
			}
			return err
		},
		RecordBatch: func(ctx context.Context, events []channelsredis.Event) error {
			evs := make([]platform.ExternalEvent, len(events))
			for i, e := range events {
				evs[i] = platform.ExternalEvent{Group: e.Group, Type: e.Type, Data: e.Data}
			}
			_, err := a.platform.RecordExternalBatch(ctx, evs)
			if platform.KindOf(err) == platform.KindInvalid {
				return fmt.Errorf("%w: %v", channelsredis.ErrRejected, err)
			}
			return err
		},
		GroupKind: func(group string) (string, bool) {
			ns, _, ok := a.groups.Lookup(group)
			if !ok {
				return "", false
			}
			return ns.Name, true
		},
		Groups:  a.hub.Groups,
		Types:   channelsredis.SeedTypes(),
		Logger:  a.log,
		OnPanic: a.metrics.Panicked,
	})
	if err != nil {
		return fmt.Errorf("--channels-redis: %w", err)
	}
	a.channels = m
	if err := a.metrics.Registry().Register(channelsCollector{m}); err != nil {
		return fmt.Errorf("channels_redis metrics: %w", err)
	}
	a.log.Info("member of a Django channel layer", "layer", kind, "prefix", a.cfg.ChannelsPrefix)
	return nil
}

// runChannelsRedis runs the membership until ctx ends; the channel it
// returns is closed once it has stopped (at once when there is none).
func (a *App) runChannelsRedis(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if a.channels == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		a.channels.Run(ctx)
	}()
	return done
}

var (
	channelsReceived = prometheus.NewDesc("herald_channels_redis_received_total",
		"Messages taken from the Django app's channel layer.", nil, nil)
	channelsRecorded = prometheus.NewDesc("herald_channels_redis_recorded_total",
		"Messages of the Django app's channel layer recorded as events.", nil, nil)
	channelsReturned = prometheus.NewDesc("herald_channels_redis_returned_total",
		"Messages given back to the Django app's channel layer unrecorded, for the next leader.", nil, nil)
	channelsDropped = prometheus.NewDesc("herald_channels_redis_dropped_total",
		"Messages of the Django app's channel layer dropped, by reason.", []string{"reason"}, nil)
	channelsLeader = prometheus.NewDesc("herald_channels_redis_leader",
		"1 while this process takes the Django app's channel layer messages.", nil, nil)
)

// channelsCollector reads a Member's counts at scrape time.
type channelsCollector struct{ m *channelsredis.Member }

func (c channelsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{channelsReceived, channelsRecorded, channelsReturned, channelsDropped, channelsLeader} {
		ch <- d
	}
}

func (c channelsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Stats()
	ch <- prometheus.MustNewConstMetric(channelsReceived, prometheus.CounterValue, float64(s.Received))
	ch <- prometheus.MustNewConstMetric(channelsRecorded, prometheus.CounterValue, float64(s.Recorded))
	ch <- prometheus.MustNewConstMetric(channelsReturned, prometheus.CounterValue, float64(s.Returned))
	for _, r := range channelsredis.DropReasons() {
		ch <- prometheus.MustNewConstMetric(channelsDropped, prometheus.CounterValue, float64(s.Dropped[r]), r)
	}
	leader := 0.0
	if s.Leader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(channelsLeader, prometheus.GaugeValue, leader)
}

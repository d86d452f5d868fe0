package consumers

// Hooks are the test hooks of the real-time endpoints (testHooks), for
// tests that start herald through package app.
type Hooks struct {
	// BeforeJoin runs before a connection joins group; for a resume, after
	// its position was found within the window.
	BeforeJoin func(group string)
	// BeforeFresh runs when a join could not replay, before the fresh
	// state is read while the group's events are held.
	BeforeFresh func(group string)
	// Announced runs once the connections following a quest announcement
	// (quest_created on a control group) were handled.
	Announced func(questID int64)
	h         *testHooks
}

// Install sets the hooks in cc; pass it to app.WithConsumersConfig.
func (h *Hooks) Install(cc *Config) {
	h.h = &testHooks{beforeJoin: h.BeforeJoin, beforeFresh: h.BeforeFresh, announced: h.Announced}
	cc.hooks = h.h
}

// SnapshotLoads is how many times the consumers read a campaign_data from
// the database.
func (h *Hooks) SnapshotLoads() uint64 { return h.h.consumers.snaps.loads.Load() }

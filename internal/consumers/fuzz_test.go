package consumers

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/store"
)

type nopTransport struct{}

func (nopTransport) Wake() {}

// FuzzClientMessage feeds arbitrary client messages to both endpoints'
// decoders (on a real database and hub): none may panic or close the
// connection, and each gets at most one answer.
func FuzzClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"comment","data":{"id":1}}`, `{"type":"contribution","data":{"id":"1"}}`,
		`{"type":"update","data":{}}`, `{"type":"x"}`, `{`, `[]`, `null`, `""`, `{"type":1}`,
		`{"type":"milestone","data":{"id":1e400}}`, `{"type":"release","data":{"id":-0}}`, "\x00",
	} {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		f.Fatal(err)
	}
	p, err := platform.New(db, platform.Options{Hasher: auth.Hasher{Params: auth.PasswordParams{Memory: 64, Time: 1, Threads: 1}}})
	if err != nil {
		f.Fatal(err)
	}
	u, _ := p.Register(ctx, platform.Registration{Username: "fuzzer", Password: "fuzzer password"})
	title, goal, active := "Fuzz", money.Cents(100), platform.CampaignActive
	camp, err := p.CreateCampaign(ctx, u.ID, platform.CampaignInput{Title: &title, GoalAmount: &goal, Status: &active})
	if err != nil {
		f.Fatal(err)
	}
	content := "hello"
	if _, err := p.PostComment(ctx, u.ID, camp.ID, platform.CommentInput{Content: &content}); err != nil {
		f.Fatal(err)
	}
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: slog.New(slog.DiscardHandler)}, func(d func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(d, layer.MemoryOptions{}), nil
	})
	if err != nil {
		f.Fatal(err)
	}
	defer hub.Close()
	c := New(Config{Platform: p, Hub: hub, Logger: slog.New(slog.DiscardHandler)})
	room := &campaignRoom{c: c, id: camp.ID, group: platform.CampaignGroup(camp.ID)}

	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, h := range []interface {
			OnMessage(*realtime.Conn, []byte)
		}{room, applicationHandler{c}} {
			link := hub.Attach(realtime.ConnConfig{UserID: u.ID}, nopTransport{})
			conn := link.Conn()
			h.OnMessage(conn, msg)
			if conn.Closed() {
				t.Fatalf("message %q closed the connection", msg)
			}
			b := link.Take()
			if b != nil && len(b.Frames) > 1 {
				t.Fatalf("message %q got %d answers", msg, len(b.Frames))
			}
			link.Finish()
		}
	})
}

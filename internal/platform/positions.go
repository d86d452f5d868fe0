package platform

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Position is where an event stands in its group's log: its offset in the
// group's epoch, as clients receive it.
type Position struct {
	Group  string
	Offset int64
	Epoch  string
}

// Positions returns the positions of the outbox events ids that the relay
// has numbered, by id. An event not numbered yet is absent, and so is one
// already pruned from the log (published and out of the history window).
func (p *Platform) Positions(ctx context.Context, ids []int64) (map[int64]Position, error) {
	out := make(map[int64]Position, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	marks := make([]string, len(ids))
	for i, id := range ids {
		args[i], marks[i] = id, "$"+strconv.Itoa(i+1)
	}
	rows, err := p.db.QueryContext(ctx, "SELECT id, grp, epoch, off FROM outbox WHERE epoch <> '' AND id IN ("+strings.Join(marks, ",")+")", args...)
	if err != nil {
		return nil, fmt.Errorf("read event positions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var pos Position
		if err := rows.Scan(&id, &pos.Group, &pos.Epoch, &pos.Offset); err != nil {
			return nil, fmt.Errorf("read event positions: %w", err)
		}
		out[id] = pos
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read event positions: %w", err)
	}
	return out, nil
}

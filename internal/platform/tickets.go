package platform

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// TicketTTL is how long a connection ticket stays valid.
const TicketTTL = 30 * time.Second

// IssueTicket returns a one-use ticket that opens one real-time connection as
// userID within TicketTTL. Only its hash is stored, so a database dump does
// not hold usable tickets.
func (p *Platform) IssueTicket(ctx context.Context, userID int64) (string, error) {
	if err := requireUser(userID); err != nil {
		return "", err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("issue ticket: %w", err)
	}
	ticket := base64.RawURLEncoding.EncodeToString(b[:])
	now := p.now()
	// Expired tickets are swept here, by the writers, so the table stays small
	// without a background job.
	err := p.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM ws_tickets WHERE expires_at < $1", now); err != nil {
			return fmt.Errorf("issue ticket: sweep: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO ws_tickets (ticket_hash, user_id, expires_at) VALUES ($1, $2, $3)",
			ticketHash(ticket), userID, now.Add(TicketTTL)); err != nil {
			return fmt.Errorf("issue ticket: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return ticket, nil
}

// RedeemTicket spends a ticket and returns its user. A ticket works once,
// on any process sharing the database.
func (p *Platform) RedeemTicket(ctx context.Context, ticket string) (int64, error) {
	if len(ticket) == 0 || len(ticket) > 64 {
		return 0, &Error{Kind: KindUnauthorized, Message: "invalid ticket"}
	}
	var uid int64
	err := p.db.QueryRowContext(ctx, "DELETE FROM ws_tickets WHERE ticket_hash = $1 AND expires_at >= $2 RETURNING user_id",
		ticketHash(ticket), p.now()).Scan(&uid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, &Error{Kind: KindUnauthorized, Message: "invalid, used or expired ticket"}
	}
	if err != nil {
		return 0, fmt.Errorf("redeem ticket: %w", err)
	}
	return uid, nil
}

func ticketHash(ticket string) string {
	h := sha256.Sum256([]byte(ticket))
	return hex.EncodeToString(h[:])
}

package session

import (
	"context"
)

// Log is the ordered, deduplicated message log of every conversation: the hot path of send and sync.
// Implementations: SQLLog (SQLite or MySQL as the system of record) and RedisLog (Redis hot tier in
// front of the SQL warm store, moved by Flush).
type Log interface {
	// Append dedupes on (conversation, client_msg_id), assigns the next consecutive seq and stores
	// the message in one atomic step. A resend returns the stored message and dup=true.
	Append(ctx context.Context, m Message) (stored Message, dup bool, err error)
	// After returns up to limit messages with seq > after, in seq order.
	After(ctx context.Context, conversationID, after int64, limit int) ([]Message, error)
	// Before returns up to limit messages with seq < before (the newest of them), in seq order.
	Before(ctx context.Context, conversationID, before int64, limit int) ([]Message, error)
	// LastSeq returns the highest seq handed out in the conversation, 0 when it is empty.
	LastSeq(ctx context.Context, conversationID int64) (int64, error)
}

// Unread keeps per-reader unread counters per conversation and a total, changed together.
type Unread interface {
	// Add counts message seq as unread for reader; idempotent: a seq at or below the last counted one
	// changes nothing.
	Add(ctx context.Context, reader string, conversationID, seq int64) (UnreadCount, error)
	// Read marks everything up to seq as read by reader.
	Read(ctx context.Context, reader string, conversationID, seq int64) (UnreadCount, error)
	// Get returns reader's per-conversation counters (non-zero ones) and the total.
	Get(ctx context.Context, reader string) (map[int64]int64, int64, error)
}

// UnreadCount is a reader's unread count in one conversation and in all of them.
type UnreadCount struct {
	ConversationID int64 `json:"conversation_id"`
	Count          int64 `json:"count"`
	Total          int64 `json:"total"`
	ReadSeq        int64 `json:"read_seq"`
}

// Pusher delivers events to every online device of the given parties, on whichever node they are
// connected. Delivery is best effort: devices catch up by sync, never by a push arriving.
type Pusher interface {
	Push(ctx context.Context, to []Party, ev Event)
}

// Router is told when sessions open and close, so that it can assign agents and release capacity.
// The routing package implements it; until it is wired, sessions wait for a manual assignment.
type Router interface {
	Opened(ctx context.Context, s *Session) error
	Closed(ctx context.Context, s *Session) error
}

// Event is a server-to-device frame caused by the domain: a message, a read receipt, an unread
// change, typing, or a session change.
type Event struct {
	Type           string       `json:"type"`
	ConversationID int64        `json:"conversation_id,omitempty"`
	Message        *Message     `json:"message,omitempty"`
	Seq            int64        `json:"seq,omitempty"`
	From           *Party       `json:"from,omitempty"`
	Unread         *UnreadCount `json:"unread,omitempty"`
	Session        *Session     `json:"session,omitempty"`
	Note           string       `json:"note,omitempty"`
	// Status is a staff member's new status, in "status" events.
	Status string `json:"status,omitempty"`
	// Queue is a waiting session's place in its shop's queue, in "queue" events.
	Queue *QueuePlace `json:"queue,omitempty"`
}

// QueuePlace is where a waiting session stands: its 1-based position, the queue's length, and the
// expected wait in seconds (0 when there is no estimate yet).
type QueuePlace struct {
	SessionID  int64 `json:"session_id"`
	Position   int   `json:"position"`
	Total      int   `json:"total"`
	ETASeconds int   `json:"eta_seconds"`
}

// Event types pushed to devices.
const (
	EventMessage = "message"
	EventRead    = "read"
	EventUnread  = "unread"
	EventTyping  = "typing"
	EventSession = "session"
	EventQueue   = "queue"
)

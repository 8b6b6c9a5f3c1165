package session

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Store keeps conversations and service sessions in the SQL warm store (SQLite or MySQL).
type Store struct {
	db *gorm.DB
}

// NewStore returns a Store over db, whose schema the migrations created.
func NewStore(db *gorm.DB) *Store { return &Store{db: db} }

// FindOrCreateConversation returns the conversation of buyer with shop, creating it if needed.
// The unique (shop_id, buyer_id) key is the buyer×shop mapping table; the id is global and increasing.
func (s *Store) FindOrCreateConversation(ctx context.Context, shopID, buyerID int64, ec EntryContext) (*Conversation, bool, error) {
	db := s.db.WithContext(ctx)
	var c Conversation
	err := db.Where("shop_id = ? AND buyer_id = ?", shopID, buyerID).Take(&c).Error
	if err == nil {
		if ec != (EntryContext{}) && ec != c.Context {
			c.Context = ec
			if err := db.Model(&c).Select("context").Updates(&c).Error; err != nil {
				return nil, false, unavailable(err, "update conversation context")
			}
		}
		return &c, false, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, false, unavailable(err, "find conversation")
	}
	now := time.Now().UTC()
	c = Conversation{ShopID: shopID, BuyerID: buyerID, Context: ec, CreatedAt: now, UpdatedAt: now}
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&c).Error; err != nil {
		return nil, false, unavailable(err, "create conversation")
	}
	if c.ID == 0 { // lost a race with another creator
		if err := db.Where("shop_id = ? AND buyer_id = ?", shopID, buyerID).Take(&c).Error; err != nil {
			return nil, false, unavailable(err, "find conversation")
		}
		return &c, false, nil
	}
	return &c, true, nil
}

// Conversation returns the conversation with id, ENOTFOUND if there is none.
func (s *Store) Conversation(ctx context.Context, id int64) (*Conversation, error) {
	var c Conversation
	err := s.db.WithContext(ctx).Take(&c, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, Errorf(ENOTFOUND, "conversation %d not found", id)
	}
	if err != nil {
		return nil, unavailable(err, "load conversation")
	}
	return &c, nil
}

// ConversationsByID returns the conversations of shop among ids, in no particular order; unknown
// ids and other shops' conversations are left out.
func (s *Store) ConversationsByID(ctx context.Context, shopID int64, ids []int64) ([]Conversation, error) {
	var out []Conversation
	if len(ids) == 0 {
		return out, nil
	}
	if err := s.db.WithContext(ctx).Where("shop_id = ? AND id IN ?", shopID, ids).Find(&out).Error; err != nil {
		return nil, unavailable(err, "load conversations")
	}
	return out, nil
}

// SessionsOf returns the sessions of shop's conversations convIDs, newest first, at most 500 per
// conversation on average.
func (s *Store) SessionsOf(ctx context.Context, shopID int64, convIDs []int64) ([]Session, error) {
	var out []Session
	if len(convIDs) == 0 {
		return out, nil
	}
	err := s.db.WithContext(ctx).Where("shop_id = ? AND conversation_id IN ?", shopID, convIDs).
		Order("id DESC").Limit(500 * len(convIDs)).Find(&out).Error
	if err != nil {
		return nil, unavailable(err, "list sessions")
	}
	return out, nil
}

// ConversationFilter selects conversations for a list.
type ConversationFilter struct {
	ShopID  int64
	BuyerID int64
	// AgentID restricts to conversations whose current or last session is the agent's.
	AgentID int64
	Limit   int
}

// Conversations lists conversations, most recently updated first.
func (s *Store) Conversations(ctx context.Context, f ConversationFilter) ([]Conversation, error) {
	q := s.db.WithContext(ctx).Model(&Conversation{}).Where("shop_id = ?", f.ShopID)
	if f.BuyerID != 0 {
		q = q.Where("buyer_id = ?", f.BuyerID)
	}
	if f.AgentID != 0 {
		q = q.Where("id IN (?)", s.db.Model(&Session{}).Select("conversation_id").Where("shop_id = ? AND agent_id = ?", f.ShopID, f.AgentID))
	}
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	var out []Conversation
	if err := q.Order("updated_at DESC, id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, unavailable(err, "list conversations")
	}
	return out, nil
}

// Touch records that the conversation's log reached seq, for the recent-conversation list.
func (s *Store) Touch(ctx context.Context, id, seq int64, at time.Time) error {
	err := s.db.WithContext(ctx).Model(&Conversation{}).Where("id = ? AND last_seq < ?", id, seq).
		Updates(map[string]any{"last_seq": seq, "updated_at": at}).Error
	return unavailable(err, "touch conversation")
}

// openKey is the column that makes "one open or queued session per conversation" a unique key:
// it holds the conversation id while the session is live and NULL once it closes.
type sessionRow struct {
	Session
	OpenKey *int64
}

func (sessionRow) TableName() string { return "service_sessions" }

// OpenSession opens a session in conversation c unless one is already live, which it returns instead.
// The unique open_key, not a read first, finds the live one: a buyer's first message (the usual
// case) then costs one statement.
func (s *Store) OpenSession(ctx context.Context, c *Conversation, firstSeq int64, at time.Time) (*Session, bool, error) {
	key := c.ID
	row := sessionRow{Session: Session{
		ConversationID: c.ID, ShopID: c.ShopID, BuyerID: c.BuyerID, Kind: c.Context.Kind(), Context: c.Context,
		State: StateQueued, FirstSeq: firstSeq, OpenedAt: at, LastActivityAt: at,
	}, OpenKey: &key}
	err := s.db.WithContext(ctx).Create(&row).Error
	if err != nil {
		if isDuplicate(err) {
			live, lerr := s.LiveSession(ctx, c.ID)
			return live, false, lerr
		}
		return nil, false, unavailable(err, "open session")
	}
	return &row.Session, true, nil
}

// OpenSessionIf is OpenSession for a caller holding a copy of the conversation that may be stale: in
// one statement it opens the session with c's entry context only if the conversation's row still
// holds that context (ok). ok false means the row's context is not c's (changed since c was read,
// perhaps on another node): nothing was written, and the caller reads the conversation again.
func (s *Store) OpenSessionIf(ctx context.Context, c *Conversation, firstSeq int64, at time.Time) (ss *Session, created, ok bool, err error) {
	stored, err := json.Marshal(c.Context) // as the column's json serializer writes it
	if err != nil {
		return nil, false, false, Errorf(EINTERNAL, "encode entry context: %v", err)
	}
	kind := c.Context.Kind()
	res, err := s.db.WithContext(ctx).Statement.ConnPool.ExecContext(ctx,
		`INSERT INTO service_sessions (conversation_id, shop_id, buyer_id, kind, context, state, first_seq, opened_at, last_activity_at, open_key)
		SELECT id, shop_id, buyer_id, ?, context, ?, ?, ?, ?, id FROM conversations WHERE id = ? AND context = ?`,
		string(kind), string(StateQueued), firstSeq, at, at, c.ID, string(stored))
	if err != nil {
		if isDuplicate(err) {
			live, lerr := s.LiveSession(ctx, c.ID)
			return live, false, true, lerr
		}
		return nil, false, false, unavailable(err, "open session")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, false, false, unavailable(err, "open session")
	}
	if n == 0 {
		return nil, false, false, nil
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, false, false, unavailable(err, "open session")
	}
	return &Session{ID: id, ConversationID: c.ID, ShopID: c.ShopID, BuyerID: c.BuyerID, Kind: kind, Context: c.Context,
		State: StateQueued, FirstSeq: firstSeq, OpenedAt: at, LastActivityAt: at}, true, true, nil
}

// LiveSession returns the conversation's queued or open session, nil when there is none.
func (s *Store) LiveSession(ctx context.Context, conversationID int64) (*Session, error) {
	var out Session
	err := s.db.WithContext(ctx).Where("open_key = ?", conversationID).Take(&out).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(err, "load live session")
	}
	return &out, nil
}

// Session returns the session with id, ENOTFOUND if there is none.
func (s *Store) Session(ctx context.Context, id int64) (*Session, error) {
	var out Session
	err := s.db.WithContext(ctx).Take(&out, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, Errorf(ENOTFOUND, "session %d not found", id)
	}
	if err != nil {
		return nil, unavailable(err, "load session")
	}
	return &out, nil
}

// SessionFilter selects sessions for a list.
type SessionFilter struct {
	ShopID         int64
	ConversationID int64
	AgentID        int64
	States         []State
	// BeforeID, when set, lists only sessions with a smaller id: the next page after a page whose
	// last session had that id.
	BeforeID int64
	// IDs, when set, lists only these sessions (of ShopID).
	IDs   []int64
	Limit int
}

// Sessions lists sessions, newest first.
func (s *Store) Sessions(ctx context.Context, f SessionFilter) ([]Session, error) {
	q := s.db.WithContext(ctx).Model(&Session{}).Where("shop_id = ?", f.ShopID)
	if f.ConversationID != 0 {
		q = q.Where("conversation_id = ?", f.ConversationID)
	}
	if f.AgentID != 0 {
		q = q.Where("agent_id = ?", f.AgentID)
	}
	if len(f.States) > 0 {
		q = q.Where("state IN ?", f.States)
	}
	if f.BeforeID > 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	if len(f.IDs) > 0 {
		q = q.Where("id IN ?", f.IDs)
	}
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	var out []Session
	if err := q.Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, unavailable(err, "list sessions")
	}
	return out, nil
}

// AssignSession sets the session's agent if it is still live; ECONFLICT if it closed meanwhile. cur
// is the session as the caller last read it: when the row still has cur's state and agent, the
// assigned copy of cur is returned without reading the row again.
func (s *Store) AssignSession(ctx context.Context, cur *Session, agentID int64, by string, at time.Time) (*Session, error) {
	at = at.UTC().Truncate(time.Microsecond) // the columns' precision, so the copy equals a read
	set := map[string]any{"agent_id": agentID, "assigned_by": by, "assigned_at": at, "state": StateOpen}
	res := s.db.WithContext(ctx).Model(&Session{}).Where("id = ? AND state = ? AND agent_id = ?", cur.ID, cur.State, cur.AgentID).Updates(set)
	if res.Error != nil {
		return nil, unavailable(res.Error, "assign session")
	}
	if res.RowsAffected == 1 && cur.State != StateClosed {
		out := *cur
		out.AgentID, out.AssignedBy, out.State = agentID, by, StateOpen
		out.AssignedAt = &at
		return &out, nil
	}
	// The row changed since cur was read: assign whatever live session it is now.
	res = s.db.WithContext(ctx).Model(&Session{}).Where("id = ? AND state <> ?", cur.ID, StateClosed).Updates(set)
	if res.Error != nil {
		return nil, unavailable(res.Error, "assign session")
	}
	if res.RowsAffected == 0 {
		if _, err := s.Session(ctx, cur.ID); err != nil {
			return nil, err
		}
		return nil, Errorf(ECONFLICT, "session %d is closed", cur.ID)
	}
	return s.Session(ctx, cur.ID)
}

// CloseSessionIf closes the session only if its row is still live with cur's state and agent, and
// returns the closed copy and true; false, and nothing changed, when the row is not as cur says.
func (s *Store) CloseSessionIf(ctx context.Context, cur *Session, by, outcome string, at time.Time) (*Session, bool, error) {
	if cur.State == StateClosed {
		return nil, false, nil
	}
	at = at.UTC().Truncate(time.Microsecond) // the columns' precision, so the copy equals a read
	set := map[string]any{"state": StateClosed, "closed_at": at, "closed_by": by, "outcome": outcome, "open_key": nil}
	res := s.db.WithContext(ctx).Model(&sessionRow{}).Where("id = ? AND state = ? AND agent_id = ?", cur.ID, cur.State, cur.AgentID).Updates(set)
	if res.Error != nil {
		return nil, false, unavailable(res.Error, "close session")
	}
	if res.RowsAffected != 1 {
		return nil, false, nil
	}
	out := *cur
	out.State, out.ClosedBy, out.Outcome = StateClosed, by, outcome
	out.ClosedAt = &at
	return &out, true, nil
}

// CloseSession closes the session if it is live and returns it; ECONFLICT if it was already closed.
// cur is the session as the caller last read it: when the row still has cur's state and agent, the
// closed copy of cur is returned without reading the row again.
func (s *Store) CloseSession(ctx context.Context, cur *Session, by, outcome string, at time.Time) (*Session, error) {
	out, ok, err := s.CloseSessionIf(ctx, cur, by, outcome, at)
	if err != nil || ok {
		return out, err
	}
	// The row changed since cur was read (or cur was already closed): close whatever it is now.
	at = at.UTC().Truncate(time.Microsecond)
	set := map[string]any{"state": StateClosed, "closed_at": at, "closed_by": by, "outcome": outcome, "open_key": nil}
	res := s.db.WithContext(ctx).Model(&sessionRow{}).Where("id = ? AND state <> ?", cur.ID, StateClosed).Updates(set)
	if res.Error != nil {
		return nil, unavailable(res.Error, "close session")
	}
	if res.RowsAffected == 0 {
		if _, err := s.Session(ctx, cur.ID); err != nil {
			return nil, err
		}
		return nil, Errorf(ECONFLICT, "session %d is already closed", cur.ID)
	}
	return s.Session(ctx, cur.ID)
}

// RateSession records the buyer's rating of a closed session, once: ECONFLICT when the session is
// still live or already rated.
func (s *Store) RateSession(ctx context.Context, id int64, rating int, comment string, at time.Time) (*Session, error) {
	res := s.db.WithContext(ctx).Model(&Session{}).Where("id = ? AND state = ? AND rating = 0", id, StateClosed).
		Updates(map[string]any{"rating": rating, "rating_comment": comment, "rated_at": at})
	if res.Error != nil {
		return nil, unavailable(res.Error, "rate session")
	}
	if res.RowsAffected == 0 {
		cur, err := s.Session(ctx, id)
		if err != nil {
			return nil, err
		}
		if cur.State != StateClosed {
			return nil, Errorf(ECONFLICT, "session %d is not closed yet: a rating comes after the close", id)
		}
		return nil, Errorf(ECONFLICT, "session %d is already rated", id)
	}
	return s.Session(ctx, id)
}

// MarkActivity records activity on a live session and, for an agent's first reply, the response time.
func (s *Store) MarkActivity(ctx context.Context, id int64, at time.Time, firstResponse bool) error {
	db := s.db.WithContext(ctx)
	if err := db.Model(&Session{}).Where("id = ? AND last_activity_at < ?", id, at).Update("last_activity_at", at).Error; err != nil {
		return unavailable(err, "mark session activity")
	}
	if firstResponse {
		if err := db.Model(&Session{}).Where("id = ? AND first_response_at IS NULL", id).Update("first_response_at", at).Error; err != nil {
			return unavailable(err, "mark first response")
		}
	}
	return nil
}

// IdleSessions returns live sessions with no activity since before.
func (s *Store) IdleSessions(ctx context.Context, before time.Time, limit int) ([]Session, error) {
	var out []Session
	err := s.db.WithContext(ctx).Where("state <> ? AND last_activity_at < ?", StateClosed, before).
		Order("last_activity_at").Limit(limit).Find(&out).Error
	return out, unavailable(err, "list idle sessions")
}

func isDuplicate(err error) bool {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "Duplicate entry") || strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "1062")
}

package session

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Caller is who is acting: a buyer or a staff member of ShopID.
type Caller struct {
	Party
	ShopID  int64
	Manager bool
}

// Directory answers questions about staff that session needs without importing agent.
type Directory interface {
	// StaffName returns the display name of staff member id of shop, ENOTFOUND if they are not in it.
	StaffName(ctx context.Context, shopID, id int64) (string, error)
}

// Uploads tells whether an uploaded file exists, so that image and file messages only ever point at
// the shop's own uploads.
type Uploads interface {
	UploadExists(ctx context.Context, key string) (bool, error)
}

// UploadPrefix is the key prefix of a shop's uploads.
func UploadPrefix(shopID int64) string { return "uploads/" + strconv.FormatInt(shopID, 10) + "/" }

// Config holds the limits of the messaging core.
type Config struct {
	MaxTextBytes int
	RecallWindow time.Duration
	MaxPage      int
	// CacheTTL bounds how long a node trusts its cached view of a conversation's live session; another
	// node's assignment is seen after at most this long.
	CacheTTL time.Duration
}

// DefaultConfig returns the documented defaults: 4 KiB text, 2 minute recall, pages of up to 200.
func DefaultConfig() Config {
	return Config{MaxTextBytes: 4096, RecallWindow: 2 * time.Minute, MaxPage: 200, CacheTTL: time.Second}
}

// Service is the messaging core: conversations, sessions, send, sync, unread, read receipts, recall.
type Service struct {
	Store     *Store
	Log       Log
	Unread    Unread
	Push      Pusher
	Router    Router
	Directory Directory
	Uploads   Uploads
	Config    Config
	Logger    *slog.Logger
	Now       func() time.Time

	mu    sync.Mutex
	convs map[int64]*Conversation
	live  map[int64]liveEntry
	// liveIDs maps the id of each session cached in live to its conversation.
	liveIDs map[int64]int64
	// order serialises, per conversation (striped), storing a message and queueing its pushes, so that
	// every device connected to this node receives a conversation's messages in seq order.
	order [256]sync.Mutex
}

type liveEntry struct {
	s       *Session // nil: no live session
	fetched time.Time
	marked  time.Time
}

// now is the service's clock, to the microsecond the warm store keeps (DATETIME(6)): a message's
// server time must read the same from the hot tier, the warm store and a cold segment.
func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// StartConversation finds or creates the caller's (a buyer's) conversation with their shop and records
// where they came from, which decides the kind of the next session.
func (s *Service) StartConversation(ctx context.Context, c Caller, ec EntryContext) (*Conversation, error) {
	if c.Kind != PartyBuyer {
		return nil, Errorf(EFORBIDDEN, "only buyers start conversations")
	}
	if err := checkContext(ec); err != nil {
		return nil, err
	}
	conv, _, err := s.Store.FindOrCreateConversation(ctx, c.ShopID, c.ID, ec)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.convs != nil {
		s.convs[conv.ID] = conv
	}
	s.mu.Unlock()
	return s.withLastSeq(ctx, conv)
}

func checkContext(ec EntryContext) error {
	for _, f := range []string{ec.Page, ec.ProductID, ec.ProductName, ec.Category, ec.OrderID, ec.OrderStatus, ec.Language} {
		if len(f) > 512 {
			return Errorf(EINVALID, "context fields are limited to 512 bytes")
		}
	}
	return nil
}

func (s *Service) withLastSeq(ctx context.Context, conv *Conversation) (*Conversation, error) {
	last, err := s.Log.LastSeq(ctx, conv.ID)
	if err != nil {
		return nil, err
	}
	out := *conv
	if last > out.LastSeq {
		out.LastSeq = last
	}
	return &out, nil
}

// conversation returns the conversation, cached: its shop and buyer never change.
func (s *Service) conversation(ctx context.Context, id int64) (*Conversation, error) {
	s.mu.Lock()
	if s.convs == nil {
		s.convs = map[int64]*Conversation{}
	}
	c := s.convs[id]
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := s.Store.Conversation(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.convs) > 100000 {
		s.convs = map[int64]*Conversation{}
	}
	s.convs[id] = c
	s.mu.Unlock()
	return c, nil
}

// liveSession returns the conversation's queued or open session, trusting a cached copy for CacheTTL.
func (s *Service) liveSession(ctx context.Context, convID int64) (*Session, error) {
	now := s.now()
	s.mu.Lock()
	e, ok := s.live[convID]
	s.mu.Unlock()
	if ok && now.Sub(e.fetched) < s.Config.CacheTTL {
		return e.s, nil
	}
	live, err := s.Store.LiveSession(ctx, convID)
	if err != nil {
		return nil, err
	}
	s.setLive(convID, live, now)
	return live, nil
}

func (s *Service) setLive(convID int64, live *Session, at time.Time) {
	s.mu.Lock()
	if s.live == nil || len(s.live) > 100000 {
		s.live, s.liveIDs = map[int64]liveEntry{}, map[int64]int64{}
	}
	e := s.live[convID]
	if e.s != nil {
		delete(s.liveIDs, e.s.ID)
	}
	if live != nil {
		s.liveIDs[live.ID] = convID
	}
	s.live[convID] = liveEntry{s: live, fetched: at, marked: e.marked}
	s.mu.Unlock()
}

// cachedSession returns a copy of this node's cached view of live session id, however old, or nil:
// for a caller that acts on it only if the row still matches (Store.CloseSessionIf).
func (s *Service) cachedSession(id int64) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	conv, ok := s.liveIDs[id]
	if !ok {
		return nil
	}
	if e := s.live[conv]; e.s != nil && e.s.ID == id {
		cp := *e.s
		return &cp
	}
	return nil
}

// Conversation returns a conversation the caller may read, with its current last seq.
func (s *Service) Conversation(ctx context.Context, c Caller, id int64) (*Conversation, error) {
	conv, err := s.access(ctx, c, id)
	if err != nil {
		return nil, err
	}
	return s.withLastSeq(ctx, conv)
}

// access loads the conversation and checks that the caller may read it: its shop's staff, or its buyer.
// Another shop's conversation is reported as not found, so ids cannot be probed.
func (s *Service) access(ctx context.Context, c Caller, id int64) (*Conversation, error) {
	conv, err := s.conversation(ctx, id)
	if err != nil {
		return nil, err
	}
	if conv.ShopID != c.ShopID || (c.Kind == PartyBuyer && conv.BuyerID != c.ID) || c.Kind == PartySystem {
		return nil, Errorf(ENOTFOUND, "conversation %d not found", id)
	}
	return conv, nil
}

// ConversationView is one row of a recent-conversation list.
type ConversationView struct {
	Conversation
	Unread  int64    `json:"unread"`
	Session *Session `json:"session,omitempty"`
}

// Conversations lists the caller's recent conversations with last seq (so a device notices a lost last
// message), unread count and live session. Agents see those they handle or handled, managers all.
func (s *Service) Conversations(ctx context.Context, c Caller, limit int) ([]ConversationView, int64, error) {
	f := ConversationFilter{ShopID: c.ShopID, Limit: limit}
	switch {
	case c.Kind == PartyBuyer:
		f.BuyerID = c.ID
	case !c.Manager:
		f.AgentID = c.ID
	}
	convs, err := s.Store.Conversations(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	per, total, err := s.Unread.Get(ctx, c.Key())
	if err != nil {
		return nil, 0, err
	}
	out := make([]ConversationView, 0, len(convs))
	for i := range convs {
		cv, err := s.withLastSeq(ctx, &convs[i])
		if err != nil {
			return nil, 0, err
		}
		live, err := s.Store.LiveSession(ctx, cv.ID)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, ConversationView{Conversation: *cv, Unread: per[cv.ID], Session: live})
	}
	return out, total, nil
}

// checkBody validates a message body from a client.
func (s *Service) checkBody(b *Body) error {
	switch b.Type {
	case TypeText:
		if b.Text == "" {
			return Errorf(EINVALID, "text must not be empty")
		}
		if len(b.Text) > s.Config.MaxTextBytes {
			return Errorf(ETOOLARGE, "text is %d bytes; the limit is %d", len(b.Text), s.Config.MaxTextBytes)
		}
		if !utf8.ValidString(b.Text) {
			return Errorf(EINVALID, "text must be UTF-8")
		}
		*b = Body{Type: TypeText, Text: b.Text}
	case TypeImage, TypeFile:
		if b.BlobKey == "" || len(b.BlobKey) > 256 {
			return Errorf(EINVALID, "%s messages need the blob_key returned by the upload", b.Type)
		}
		if len(b.Name) > 255 || len(b.MIME) > 128 {
			return Errorf(EINVALID, "name or mime too long")
		}
		*b = Body{Type: b.Type, BlobKey: b.BlobKey, Name: b.Name, MIME: b.MIME, Size: b.Size, Text: ""}
	case TypeProduct, TypeOrder:
		if b.Card == nil || b.Card.ID == "" {
			return Errorf(EINVALID, "%s cards need card.id", b.Type)
		}
		c := b.Card
		for _, f := range []string{c.ID, c.Title, c.Price, c.Image, c.Status, c.URL} {
			if len(f) > 1024 {
				return Errorf(ETOOLARGE, "card fields are limited to 1024 bytes")
			}
		}
		*b = Body{Type: b.Type, Card: c}
	case TypeRecall:
		if b.RecallSeq <= 0 {
			return Errorf(EINVALID, "recall needs recall_seq")
		}
		*b = Body{Type: TypeRecall, RecallSeq: b.RecallSeq}
	case TypeSystem:
		return Errorf(EFORBIDDEN, "only the server sends system notices")
	case "":
		return Errorf(EINVALID, "body.type is required")
	default:
		return Errorf(EINVALID, "unknown body.type %q", b.Type)
	}
	return nil
}

// Send stores a message from the caller and pushes it to both sides. A resend with the same
// clientMsgID returns the stored message and dup=true without storing or pushing anything.
func (s *Service) Send(ctx context.Context, c Caller, convID int64, clientMsgID string, body Body) (Message, bool, error) {
	if clientMsgID == "" || len(clientMsgID) > 64 {
		return Message{}, false, Errorf(EINVALID, "client_msg_id must be 1-64 characters")
	}
	if err := s.checkBody(&body); err != nil {
		return Message{}, false, err
	}
	conv, err := s.access(ctx, c, convID)
	if err != nil {
		return Message{}, false, err
	}
	live, err := s.liveSession(ctx, convID)
	if err != nil {
		return Message{}, false, err
	}
	if c.Kind == PartyStaff && !c.Manager && (live == nil || live.AgentID != c.ID) {
		return Message{}, false, Errorf(EFORBIDDEN, "conversation %d is not assigned to you", convID)
	}
	now := s.now()
	if body.Type == TypeRecall {
		if err := s.checkRecall(ctx, c, convID, body.RecallSeq, now); err != nil {
			return Message{}, false, err
		}
	}
	if body.BlobKey != "" {
		if err := s.checkUpload(ctx, conv.ShopID, body.BlobKey); err != nil {
			return Message{}, false, err
		}
	}
	lock := &s.order[uint64(convID)%uint64(len(s.order))]
	lock.Lock()
	m, dup, err := s.Log.Append(ctx, Message{ConversationID: convID, ClientMsgID: clientMsgID, ShopID: conv.ShopID,
		SenderKind: c.Kind, SenderID: c.ID, Body: body, CreatedAt: now})
	if err != nil || dup {
		lock.Unlock()
		return m, dup, err
	}
	// The message is stored and will be acknowledged; what follows must not fail the send.
	s.deliver(ctx, conv, live, m)
	lock.Unlock()
	// Outside the lock: opening a session routes it, and an assignment appends a notice.
	s.afterSend(ctx, c, conv, live, m)
	return m, false, nil
}

// appendSystem stores a system notice in the conversation and pushes it, in order with sends.
func (s *Service) appendSystem(ctx context.Context, conv *Conversation, live *Session, event, text string) {
	lock := &s.order[uint64(conv.ID)%uint64(len(s.order))]
	lock.Lock()
	defer lock.Unlock()
	if notice, err := s.system(ctx, conv, event, text); err == nil {
		s.deliver(ctx, conv, live, notice)
	} else {
		s.logger().Warn("system notice", "conversation", conv.ID, "event", event, "err", err)
	}
}

// afterSend opens a session on a buyer's first message and records activity and first response.
func (s *Service) afterSend(ctx context.Context, c Caller, conv *Conversation, live *Session, m Message) {
	if c.Kind == PartyBuyer && live == nil {
		// The message is stored and acknowledged: the session it opens must follow, even when the
		// caller's deadline passes now (else the buyer waits unseen until their next message).
		ctx, cancel := AfterCommit(ctx)
		defer cancel()
		// This node's copy of the conversation has the entry context it last saw; the insert checks
		// it against the row, and only a context changed elsewhere costs a read and a second try.
		opened, created, ok, err := s.Store.OpenSessionIf(ctx, conv, m.Seq, m.CreatedAt)
		if err == nil && !ok {
			var full *Conversation
			if full, err = s.Store.Conversation(ctx, conv.ID); err != nil {
				s.logger().Warn("open session: load conversation", "conversation", conv.ID, "err", err)
				return
			}
			s.mu.Lock()
			if s.convs != nil {
				s.convs[full.ID] = full
			}
			s.mu.Unlock()
			opened, created, err = s.Store.OpenSession(ctx, full, m.Seq, m.CreatedAt)
		}
		if err != nil {
			s.logger().Warn("open session", "conversation", conv.ID, "err", err)
			return
		}
		s.setLive(conv.ID, opened, m.CreatedAt)
		// The router's assignment, if any, updates the cached live session (AssignTo).
		if created {
			s.sessionChanged(ctx, opened, "opened")
			if s.Router != nil {
				if err := s.Router.Opened(ctx, opened); err != nil {
					s.logger().Warn("route session", "session", opened.ID, "err", err)
				}
			}
		}
		return
	}
	if live == nil {
		return
	}
	first := c.Kind == PartyStaff && live.FirstResponseAt == nil && live.AgentID == c.ID
	s.mu.Lock()
	e := s.live[conv.ID]
	stale := m.CreatedAt.Sub(e.marked) > 15*time.Second
	if stale || first {
		e.marked = m.CreatedAt
		s.live[conv.ID] = e
	}
	s.mu.Unlock()
	if stale || first {
		if err := s.Store.MarkActivity(ctx, live.ID, m.CreatedAt, first); err != nil {
			s.logger().Warn("mark session activity", "session", live.ID, "err", err)
		} else if first {
			t := m.CreatedAt
			cp := *live
			cp.FirstResponseAt, cp.LastActivityAt = &t, t
			s.setLive(conv.ID, &cp, m.CreatedAt)
		} else {
			// The cached copy says what the row says (a close may answer from it), without
			// counting as a fresh read.
			s.mu.Lock()
			if e := s.live[conv.ID]; e.s != nil && e.s.ID == live.ID {
				cp := *e.s
				cp.LastActivityAt = m.CreatedAt
				e.s = &cp
				s.live[conv.ID] = e
			}
			s.mu.Unlock()
		}
	}
}

// deliver pushes the message to every device of both sides; each reader's copy carries their unread
// counters, bumped first, so that one frame per device says both.
func (s *Service) deliver(ctx context.Context, conv *Conversation, live *Session, m Message) {
	to := s.participants(conv, live)
	from := m.Sender()
	if from.Kind == PartyStaff && !containsParty(to, from) {
		to = append(to, from) // a manager writing into a conversation that is not theirs
	}
	ev := Event{Type: EventMessage, ConversationID: m.ConversationID, Message: &m, Seq: m.Seq}
	var writers []Party
	for _, p := range to {
		if p == from || m.Body.Type == TypeRecall { // a recall hides a message; nothing new to read
			writers = append(writers, p)
			continue
		}
		reader := ev
		uc, err := s.Unread.Add(ctx, p.Key(), m.ConversationID, m.Seq)
		if err != nil {
			s.logger().Warn("unread add", "reader", p.Key(), "conversation", m.ConversationID, "err", err)
		} else {
			reader.Unread = &uc
		}
		s.Push.Push(ctx, []Party{p}, reader)
	}
	if len(writers) > 0 {
		s.Push.Push(ctx, writers, ev)
	}
}

func containsParty(ps []Party, p Party) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// participants are the buyer and, when assigned, the agent of the live session.
func (s *Service) participants(conv *Conversation, live *Session) []Party {
	to := []Party{BuyerParty(conv.BuyerID)}
	if live != nil && live.AgentID != 0 {
		to = append(to, StaffParty(live.AgentID))
	}
	return to
}

func (s *Service) checkUpload(ctx context.Context, shopID int64, key string) error {
	if !strings.HasPrefix(key, UploadPrefix(shopID)) || strings.Contains(key, "..") {
		return Errorf(EINVALID, "blob_key %q is not an upload of this shop", key)
	}
	if s.Uploads == nil {
		return nil
	}
	ok, err := s.Uploads.UploadExists(ctx, key)
	if err != nil {
		return unavailable(err, "check upload")
	}
	if !ok {
		return Errorf(ENOTFOUND, "upload %q not found", key)
	}
	return nil
}

func (s *Service) checkRecall(ctx context.Context, c Caller, convID, seq int64, now time.Time) error {
	msgs, err := s.Log.After(ctx, convID, seq-1, 1)
	if err != nil {
		return err
	}
	if len(msgs) == 0 || msgs[0].Seq != seq {
		return Errorf(ENOTFOUND, "message %d not found", seq)
	}
	orig := msgs[0]
	if orig.Sender() != c.Party {
		return Errorf(EFORBIDDEN, "only the sender may recall a message")
	}
	if orig.Body.Type == TypeRecall || orig.Body.Type == TypeSystem {
		return Errorf(EINVALID, "this message cannot be recalled")
	}
	if now.Sub(orig.CreatedAt) > s.Config.RecallWindow {
		return Errorf(EFORBIDDEN, "messages can be recalled within %s", s.Config.RecallWindow)
	}
	return nil
}

// History returns up to limit messages of the conversation after seq `after` (or, when before > 0,
// the newest ones before seq `before`), in seq order. Recalled messages are marked; for buyers and
// agents their content is hidden, managers see it.
func (s *Service) History(ctx context.Context, c Caller, convID, after, before int64, limit int) ([]Message, error) {
	if _, err := s.access(ctx, c, convID); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > s.Config.MaxPage {
		limit = s.Config.MaxPage
	}
	if after < 0 || before < 0 {
		return nil, Errorf(EINVALID, "after and before must not be negative")
	}
	var msgs []Message
	var err error
	if before > 0 {
		msgs, err = s.Log.Before(ctx, convID, before, limit)
	} else {
		msgs, err = s.Log.After(ctx, convID, after, limit)
	}
	if err != nil || len(msgs) == 0 {
		return msgs, err
	}
	return s.markRecalled(ctx, c, msgs)
}

// markRecalled finds recalls of the page's messages: a recall comes within the recall window after its
// original, so only the page and what followed it within that window need reading.
func (s *Service) markRecalled(ctx context.Context, c Caller, msgs []Message) ([]Message, error) {
	recalled := map[int64]bool{}
	scan := msgs
	last := msgs[len(msgs)-1]
	deadline := last.CreatedAt.Add(s.Config.RecallWindow)
	for after := last.Seq; ; {
		more, err := s.Log.After(ctx, last.ConversationID, after, 100)
		if err != nil {
			return nil, err
		}
		stop := len(more) < 100
		for _, m := range more {
			if m.CreatedAt.After(deadline) {
				stop = true
				break
			}
			scan = append(scan, m)
			after = m.Seq
		}
		if stop {
			break
		}
	}
	for _, m := range scan {
		if m.Body.Type == TypeRecall {
			recalled[m.Body.RecallSeq] = true
		}
	}
	if len(recalled) == 0 {
		return msgs, nil
	}
	out := make([]Message, len(msgs))
	copy(out, msgs)
	for i := range out {
		if recalled[out[i].Seq] {
			out[i].Recalled = true
			if !c.Manager {
				out[i].Body = Body{Type: out[i].Body.Type}
			}
		}
	}
	return out, nil
}

// MarkRead records that the caller has read the conversation up to seq, and tells the other side.
func (s *Service) MarkRead(ctx context.Context, c Caller, convID, seq int64) (UnreadCount, error) {
	conv, err := s.access(ctx, c, convID)
	if err != nil {
		return UnreadCount{}, err
	}
	last, err := s.Log.LastSeq(ctx, convID)
	if err != nil {
		return UnreadCount{}, err
	}
	if seq <= 0 || seq > last {
		return UnreadCount{}, Errorf(EINVALID, "seq %d is outside 1..%d", seq, last)
	}
	uc, err := s.Unread.Read(ctx, c.Key(), convID, seq)
	if err != nil {
		return UnreadCount{}, err
	}
	live, err := s.liveSession(ctx, convID)
	if err != nil {
		return uc, nil
	}
	me := c.Party
	var others []Party
	for _, p := range s.participants(conv, live) {
		if p != me {
			others = append(others, p)
		}
	}
	s.Push.Push(ctx, others, Event{Type: EventRead, ConversationID: convID, Seq: seq, From: &me})
	s.Push.Push(ctx, []Party{me}, Event{Type: EventUnread, ConversationID: convID, Unread: &uc})
	return uc, nil
}

// Typing relays a typing indicator to the other side; nothing is stored.
func (s *Service) Typing(ctx context.Context, c Caller, convID int64) error {
	conv, err := s.access(ctx, c, convID)
	if err != nil {
		return err
	}
	live, err := s.liveSession(ctx, convID)
	if err != nil {
		return err
	}
	me := c.Party
	var others []Party
	for _, p := range s.participants(conv, live) {
		if p != me {
			others = append(others, p)
		}
	}
	s.Push.Push(ctx, others, Event{Type: EventTyping, ConversationID: convID, From: &me})
	return nil
}

// Unreads returns the caller's unread counters and total.
func (s *Service) Unreads(ctx context.Context, c Caller) (map[int64]int64, int64, error) {
	return s.Unread.Get(ctx, c.Key())
}

// Session returns a session of the caller's shop; buyers only see their own.
func (s *Service) Session(ctx context.Context, c Caller, id int64) (*Session, error) {
	ss, err := s.Store.Session(ctx, id)
	if err != nil {
		return nil, err
	}
	if ss.ShopID != c.ShopID || (c.Kind == PartyBuyer && ss.BuyerID != c.ID) {
		return nil, Errorf(ENOTFOUND, "session %d not found", id)
	}
	return ss, nil
}

// Sessions lists sessions of the caller's shop; agents see their own unless they are managers.
func (s *Service) Sessions(ctx context.Context, c Caller, f SessionFilter) ([]Session, error) {
	if c.Kind != PartyStaff {
		return nil, Errorf(EFORBIDDEN, "staff only")
	}
	f.ShopID = c.ShopID
	if !c.Manager {
		f.AgentID = c.ID
	}
	return s.Store.Sessions(ctx, f)
}

// Assign gives a live session to agentID by a manager's hand. It is recorded as a manual assignment,
// which may exceed the agent's capacity.
func (s *Service) Assign(ctx context.Context, c Caller, sessionID, agentID int64, by string) (*Session, error) {
	if c.Kind != PartyStaff || !c.Manager {
		return nil, Errorf(EFORBIDDEN, "only managers assign sessions by hand")
	}
	return s.AssignTo(ctx, c.ShopID, sessionID, agentID, by)
}

// AssignTo gives a live session of shop to agentID, records who decided (by: "manual", "routing", …),
// tells both sides and moves the session's unread messages to the new agent.
func (s *Service) AssignTo(ctx context.Context, shopID, sessionID, agentID int64, by string) (*Session, error) {
	ss, err := s.Store.Session(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if ss.ShopID != shopID {
		return nil, Errorf(ENOTFOUND, "session %d not found", sessionID)
	}
	return s.AssignFrom(ctx, ss, agentID, by)
}

// AssignFrom is AssignTo for a caller that has just read the session: cur, whose shop and id say
// which session it is. When the row changed since, the assignment still applies to what it is now
// (ECONFLICT if it closed).
func (s *Service) AssignFrom(ctx context.Context, cur *Session, agentID int64, by string) (*Session, error) {
	name, err := s.Directory.StaffName(ctx, cur.ShopID, agentID)
	if err != nil {
		return nil, err
	}
	prev := cur.AgentID
	now := s.now()
	ss, err := s.Store.AssignSession(ctx, cur, agentID, by, now)
	if err != nil {
		return nil, err
	}
	// The assignment is recorded: the agent's unread counters, the notice and the pushes must follow
	// even when the caller's deadline passes now.
	ctx, cancel := AfterCommit(ctx)
	defer cancel()
	s.setLive(ss.ConversationID, ss, now)
	conv, err := s.conversation(ctx, ss.ConversationID)
	if err != nil {
		return ss, nil
	}
	// The new agent owes a reply to everything written since the session opened; counted before the
	// notice below, whose seq would otherwise make the earlier ones look already counted.
	if last, err := s.Log.LastSeq(ctx, conv.ID); err == nil && last >= ss.FirstSeq {
		for seq := ss.FirstSeq; seq <= last; seq++ {
			if _, err := s.Unread.Add(ctx, StaffParty(agentID).Key(), conv.ID, seq); err != nil {
				break
			}
		}
	}
	s.appendSystem(ctx, conv, ss, "assigned", name)
	to := s.participants(conv, ss)
	if prev != 0 && prev != agentID {
		to = append(to, StaffParty(prev))
	}
	s.Push.Push(ctx, to, Event{Type: EventSession, ConversationID: conv.ID, Session: ss})
	return ss, nil
}

// system appends a system notice to the conversation.
func (s *Service) system(ctx context.Context, conv *Conversation, event, text string) (Message, error) {
	now := s.now()
	m, _, err := s.Log.Append(ctx, Message{ConversationID: conv.ID, ClientMsgID: "sys-" + event + "-" + now.Format("20060102T150405.000000000"),
		ShopID: conv.ShopID, SenderKind: PartySystem, Body: Body{Type: TypeSystem, Event: event, Text: text}, CreatedAt: now})
	return m, err
}

// Close ends a live session: by its agent, a manager, or the buyer.
func (s *Service) Close(ctx context.Context, c Caller, sessionID int64, outcome string) (*Session, error) {
	if len(outcome) > 64 {
		return nil, Errorf(EINVALID, "outcome is limited to 64 bytes")
	}
	by := string(c.Kind)
	// This node's copy of the live session, when it has one, saves reading the row: the caller is
	// checked against it, and the close applies only if the row still says the same (its state and
	// agent), so a copy that went stale (a transfer on another node) falls back to a fresh read.
	if ss := s.cachedSession(sessionID); ss != nil && s.mayClose(c, ss) == nil {
		closed, ok, err := s.Store.CloseSessionIf(ctx, ss, by, outcome, s.now())
		if err != nil {
			return nil, err
		}
		if ok {
			return s.closed(ctx, closed, outcome), nil
		}
	}
	ss, err := s.Session(ctx, c, sessionID)
	if err != nil {
		return nil, err
	}
	if err := s.mayClose(c, ss); err != nil {
		return nil, err
	}
	return s.close(ctx, ss, by, outcome)
}

// mayClose says whether the caller may close ss: its buyer, a manager of its shop, or its agent.
func (s *Service) mayClose(c Caller, ss *Session) error {
	if ss.ShopID != c.ShopID || (c.Kind == PartyBuyer && ss.BuyerID != c.ID) {
		return Errorf(ENOTFOUND, "session %d not found", ss.ID)
	}
	if c.Kind == PartyStaff && !c.Manager && ss.AgentID != c.ID {
		return Errorf(EFORBIDDEN, "session %d is not assigned to you", ss.ID)
	}
	return nil
}

func (s *Service) close(ctx context.Context, ss *Session, by, outcome string) (*Session, error) {
	closed, err := s.Store.CloseSession(ctx, ss, by, outcome, s.now())
	if err != nil {
		return nil, err
	}
	return s.closed(ctx, closed, outcome), nil
}

// closed follows a recorded close: the slot's release, the notice and the pushes.
func (s *Service) closed(ctx context.Context, closed *Session, outcome string) *Session {
	now := s.now()
	// The close is recorded: the slot's release, the notice and the pushes must follow even when the
	// caller gives up now.
	ctx, cancel := AfterCommit(ctx)
	defer cancel()
	s.setLive(closed.ConversationID, nil, now)
	if s.Router != nil {
		if err := s.Router.Closed(ctx, closed); err != nil {
			s.logger().Warn("release session", "session", closed.ID, "err", err)
		}
	}
	conv, err := s.conversation(ctx, closed.ConversationID)
	if err != nil {
		return closed
	}
	s.appendSystem(ctx, conv, closed, "closed", outcome)
	s.sessionChanged(ctx, closed, "closed")
	return closed
}

// MaxRatingCommentBytes bounds a rating's comment.
const MaxRatingCommentBytes = 500

// Rate records the buyer's 1-5 satisfaction rating of their closed session, with an optional
// comment, once; the session's agent hears of it.
func (s *Service) Rate(ctx context.Context, c Caller, sessionID int64, rating int, comment string) (*Session, error) {
	if c.Kind != PartyBuyer {
		return nil, Errorf(EFORBIDDEN, "only the session's buyer rates it")
	}
	if rating < 1 || rating > 5 {
		return nil, Errorf(EINVALID, "rating must be 1 to 5")
	}
	if len(comment) > MaxRatingCommentBytes || !utf8.ValidString(comment) {
		return nil, Errorf(EINVALID, "the comment must be UTF-8 text of at most %d bytes", MaxRatingCommentBytes)
	}
	if _, err := s.Session(ctx, c, sessionID); err != nil {
		return nil, err
	}
	rated, err := s.Store.RateSession(ctx, sessionID, rating, comment, s.now())
	if err != nil {
		return nil, err
	}
	s.sessionChanged(ctx, rated, "rated")
	return rated, nil
}

func (s *Service) sessionChanged(ctx context.Context, ss *Session, _ string) {
	conv, err := s.conversation(ctx, ss.ConversationID)
	if err != nil {
		return
	}
	s.Push.Push(ctx, s.participants(conv, ss), Event{Type: EventSession, ConversationID: ss.ConversationID, Session: ss})
}

// SweepIdle closes live sessions with no message for their shop's idle timeout, and returns how many
// it closed. shortest bounds every shop's timeout from below, so one query finds every candidate.
func (s *Service) SweepIdle(ctx context.Context, shortest time.Duration, idleOf func(shopID int64) time.Duration) (int, error) {
	now := s.now()
	candidates, err := s.Store.IdleSessions(ctx, now.Add(-shortest), 200)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range candidates {
		ss := &candidates[i]
		if now.Sub(ss.LastActivityAt) < idleOf(ss.ShopID) {
			continue
		}
		if _, err := s.close(ctx, ss, "idle", "idle"); err == nil {
			n++
		}
	}
	return n, nil
}

// afterCommitTimeout bounds the work that follows a recorded change once the caller's context ended.
const afterCommitTimeout = 10 * time.Second

// AfterCommit returns a context that outlives ctx's cancellation and deadline, for a bounded time:
// the steps after a recorded change are not the caller's to cancel. The routing engine uses it too.
func AfterCommit(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), afterCommitTimeout)
}

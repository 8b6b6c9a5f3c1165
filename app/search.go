package app

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/archive"
	"github.com/shopdesk/shopdesk/archive/search"
	"github.com/shopdesk/shopdesk/session"
	"github.com/shopdesk/shopdesk/session/crashpoint"
)

// indexBatch is how many messages of a shop one index step reads and indexes.
const indexBatch = 1000

// openSearch opens the message index: Elasticsearch when --es-url is set, else the embedded index
// under the data directory (one process at a time: only a serving node opens it).
func (a *App) openSearch(ctx context.Context) error {
	cfg := search.Config{Dir: filepath.Join(a.cfg.Data, "search")}
	if a.cfg.ESURL != "" {
		cfg.Elastic = search.ElasticConfig{URLs: strings.Split(a.cfg.ESURL, ","), Analyzer: a.cfg.ESAnalyzer}
	}
	idx, err := search.Open(ctx, cfg)
	if err != nil {
		return err
	}
	a.search = idx
	return nil
}

// searchCursor is how far the index job has read a shop's warm messages.
type searchCursor struct {
	ShopID         int64 `gorm:"primaryKey"`
	CreatedAt      time.Time
	ConversationID int64
	Seq            int64
	UpdatedAt      time.Time
}

func (searchCursor) TableName() string { return "search_cursors" }

// at is the place in the warm store the cursor stands for.
func (c searchCursor) at() session.MessageCursor {
	return session.MessageCursor{CreatedAt: c.CreatedAt, ConversationID: c.ConversationID, Seq: c.Seq}
}

// shopCursor reads the shop's index cursor; the zero cursor (the start) when it has none yet.
func (a *App) shopCursor(ctx context.Context, shopID int64) (searchCursor, error) {
	var cur searchCursor
	err := a.db.WithContext(ctx).Where("shop_id = ?", shopID).Take(&cur).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		err = nil
	}
	return cur, err
}

// indexJob brings every message of the warm store into the search index, shop by shop, after each
// shop's cursor. Documents have deterministic ids, so a run that crashed after indexing and before
// moving its cursor only indexes the same messages again. Messages reach the warm store when they
// are flushed from the hot tier (by the flush job, every --flush-schedule), and are indexed from
// there before the archive job can move them (days later); the cursors stop at the log's WarmBefore,
// as a message still hot may be older than one already warm. A --shop scope indexes one shop.
func (a *App) indexJob(ctx context.Context) (archive.JobResult, error) {
	var res archive.JobResult
	if a.search == nil {
		return res, errNoSearch
	}
	shops, err := a.indexShops(ctx)
	if err != nil {
		return res, err
	}
	warm := session.NewSQLLog(a.db)
	// The cursors move in created_at order, so they stop where a message could still arrive behind
	// them: a conversation the flush job has not reached yet, a send not yet committed.
	var before time.Time
	if a.hotLog != nil {
		before, err = a.hotLog.WarmBefore(ctx)
	} else {
		before, err = warm.WarmBefore(ctx)
	}
	if err != nil || before.IsZero() { // no flush has drained the hot tier yet
		return res, err
	}
	var errs []error
	for _, shop := range shops {
		for ctx.Err() == nil {
			n, err := a.indexShop(ctx, warm, shop, before)
			res.Processed += int64(n)
			res.Moved += int64(n)
			archive.ReportProgress(ctx, archive.Progress{Result: res})
			if err != nil {
				res.Errors++
				errs = append(errs, err)
				break
			}
			if n < indexBatch {
				break
			}
		}
	}
	return res, errors.Join(errs...)
}

// indexedBefore says whether the index job has taken every warm message of the shop created before
// before: none is left after the shop's cursor below that time. The archive job asks it before it
// moves a period out of the warm store, which is all the index job reads.
func (a *App) indexedBefore(ctx context.Context, shopID int64, before time.Time) (bool, error) {
	cur, err := a.shopCursor(ctx, shopID)
	if err != nil {
		return false, err
	}
	next, err := session.NewSQLLog(a.db).MessagesAfter(ctx, shopID, cur.at(), before, 1)
	return len(next) == 0, err
}

// indexShop indexes the next batch of the shop's messages created before before and moves its cursor.
func (a *App) indexShop(ctx context.Context, warm *session.SQLLog, shopID int64, before time.Time) (int, error) {
	cur, err := a.shopCursor(ctx, shopID)
	if err != nil {
		return 0, err
	}
	msgs, err := warm.MessagesAfter(ctx, shopID, cur.at(), before, indexBatch)
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	docs, err := a.documents(ctx, msgs)
	if err != nil {
		return 0, err
	}
	if err := a.search.Index(ctx, docs); err != nil {
		return 0, err
	}
	crashpoint.Hit("index.after_bulk") // indexed, but the cursor has not moved
	last := msgs[len(msgs)-1]
	cur = searchCursor{ShopID: shopID, CreatedAt: last.CreatedAt, ConversationID: last.ConversationID, Seq: last.Seq, UpdatedAt: time.Now()}
	err = a.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "shop_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"created_at", "conversation_id", "seq", "updated_at"})}).Create(&cur).Error
	return len(msgs), err
}

// documents turns messages into search documents, with their conversation's buyer and the session
// each belongs to; a recall also indexes the message it recalls again, marked recalled. The batch's
// conversations and their sessions are read in two queries, not two per conversation.
func (a *App) documents(ctx context.Context, msgs []session.Message) ([]search.Document, error) {
	convs, sessions, err := a.indexContext(ctx, msgs)
	if err != nil {
		return nil, err
	}
	var docs []search.Document
	add := func(m session.Message) error {
		conv, ok := convs[m.ConversationID]
		if !ok {
			c, err := a.sessions.Store.Conversation(ctx, m.ConversationID)
			if err != nil {
				return err
			}
			conv, convs[m.ConversationID] = c, c
		}
		var in *session.Session
		for i := range sessions[conv.ID] { // newest first: the first that opened at or before the message
			if s := &sessions[conv.ID][i]; s.FirstSeq <= m.Seq {
				in = s
				break
			}
		}
		docs = append(docs, search.FromMessage(m, *conv, in))
		return nil
	}
	for _, m := range msgs {
		if err := add(m); err != nil {
			return nil, err
		}
		if m.Body.Type == session.TypeRecall && m.Body.RecallSeq > 0 {
			orig, err := a.sessions.Log.After(ctx, m.ConversationID, m.Body.RecallSeq-1, 1)
			if err != nil {
				return nil, err
			}
			if len(orig) == 1 && orig[0].Seq == m.Body.RecallSeq {
				orig[0].Recalled = true
				if err := add(orig[0]); err != nil {
					return nil, err
				}
			}
		}
	}
	return docs, nil
}

// indexContext reads the conversations of msgs (all of one shop) and their sessions, newest first.
func (a *App) indexContext(ctx context.Context, msgs []session.Message) (map[int64]*session.Conversation, map[int64][]session.Session, error) {
	convs := map[int64]*session.Conversation{}
	sessions := map[int64][]session.Session{}
	if len(msgs) == 0 {
		return convs, sessions, nil
	}
	var ids []int64
	seen := map[int64]bool{}
	for _, m := range msgs {
		if !seen[m.ConversationID] {
			seen[m.ConversationID] = true
			ids = append(ids, m.ConversationID)
		}
	}
	list, err := a.sessions.Store.ConversationsByID(ctx, msgs[0].ShopID, ids)
	if err != nil {
		return nil, nil, err
	}
	for i := range list {
		convs[list[i].ID] = &list[i]
	}
	ss, err := a.sessions.Store.SessionsOf(ctx, msgs[0].ShopID, ids)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range ss {
		sessions[s.ConversationID] = append(sessions[s.ConversationID], s)
	}
	return convs, sessions, nil
}

// searchMessages answers GET /api/search: staff search their shop's history; agents only their own
// sessions' when the shop's settings say so.
func (a *App) searchMessages(c *gin.Context) {
	id := who(c)
	if id.staff == nil {
		fail(c, errorf(codeForbidden, "staff only"))
		return
	}
	if a.search == nil {
		fail(c, errorf(codeUnavailable, "search is not running on this node"))
		return
	}
	q := search.Query{ShopID: id.shop.ID, Keyword: c.Query("q"), Kind: session.Kind(c.Query("kind"))}
	ints := []struct {
		name string
		dst  *int64
	}{{"agent_id", &q.AgentID}, {"buyer_id", &q.BuyerID}, {"conversation_id", &q.ConversationID}}
	for _, f := range ints {
		v, ok := queryInt(c, f.name)
		if !ok {
			return
		}
		*f.dst = v
	}
	// A shop may keep each agent's search to their own sessions: the agent filter is then theirs.
	if id.staff.Role == agent.RoleAgent && id.shop.Settings.SearchOwnSessionsOnly {
		if q.AgentID != 0 && q.AgentID != id.staff.ID {
			fail(c, errorf(codeForbidden, "this shop lets agents search only their own sessions"))
			return
		}
		q.AgentID = id.staff.ID
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"offset", &q.Offset}, {"limit", &q.Limit}} {
		if s := c.Query(f.name); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 {
				fail(c, errorf(codeInvalid, f.name+" must be a non-negative integer"))
				return
			}
			*f.dst = v
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := c.Query(f.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				fail(c, errorf(codeInvalid, f.name+" must be an RFC 3339 time"))
				return
			}
			*f.dst = t
		}
	}
	res, err := a.search.Search(c.Request.Context(), q)
	if err != nil {
		fail(c, err)
		return
	}
	if res.Hits == nil {
		res.Hits = []search.Hit{}
	}
	c.JSON(http.StatusOK, res)
}

package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/shopdesk/shopdesk/archive"
	"github.com/shopdesk/shopdesk/session"
)

// Retention, erasure and export: the wiring of archive.Privacy, its scheduler job, and the endpoints.

// eraseTimeout bounds one erasure; it runs on after the request's client goes away.
const eraseTimeout = 30 * time.Minute

// eraseHold bounds how long an erasure keeps the flush and index jobs from running, and
// eraseHoldWait how long it waits for runs under way before answering EUNAVAILABLE.
const (
	eraseHold     = 2 * time.Minute
	eraseHoldWait = 20 * time.Second
)

// wirePrivacy builds retention and erasure over every tier and registers the "retention" job.
func (a *App) wirePrivacy() error {
	var hot archive.HotEraser
	if a.hotLog != nil {
		hot = a.hotLog
	}
	p, err := archive.NewPrivacy(a.db, a.sessions.Log, a.cold, a.blobs, archive.PrivacyConfig{
		Shops: func(ctx context.Context) ([]int64, error) {
			shops, err := a.agents.Store.Shops(ctx)
			ids := make([]int64, len(shops))
			for i, s := range shops {
				ids[i] = s.ID
			}
			return ids, err
		},
		Days: func(ctx context.Context, shopID int64) (int, error) {
			shop, err := a.agents.Store.Shop(ctx, shopID)
			if err != nil {
				return 0, err
			}
			return shop.Settings.RetentionDays, nil
		},
		Hot: hot,
		// The index is opened when the node starts serving (and by `shopdesk archive retention`
		// with Elasticsearch); a process without it (that command in embedded mode, where the
		// index belongs to the serving node) leaves the index part pending for the node's next run.
		Index: func() archive.IndexEraser {
			if a.search == nil {
				return nil
			}
			return a.search
		},
		Anonymize: a.agents.Store.AnonymizeBuyer,
	})
	if err != nil {
		return err
	}
	a.privacy = p
	if err := a.scheduler.Add(archive.Job{Name: "retention", Spec: a.cfg.RetentionSchedule, LeaseTTL: time.Hour,
		Takes: archive.ScopeShop | archive.ScopeUntil, Run: p.Run}); err != nil {
		return fmt.Errorf("retention-schedule: %w", err)
	}
	return nil
}

// mountPrivacy registers the erasure, deletion record and export endpoints.
func (a *App) mountPrivacy(au, mgr *gin.RouterGroup) {
	mgr.POST("/buyers/:id/erase", a.eraseBuyer)
	mgr.GET("/data-deletions", a.listDeletions)
	mgr.GET("/data-exports", a.listExports)
	au.GET("/conversations/:id/export", a.exportConversation)
	au.GET("/sessions/:id/export", a.exportSession)
}

// eraseBuyer answers POST /api/buyers/:id/erase: a manager erases one of the shop's buyers.
func (a *App) eraseBuyer(c *gin.Context) {
	buyerID, ok := idParam(c, "id")
	if !ok {
		return
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if !bind(c, &in) {
		return
	}
	if in.Reason == "" {
		fail(c, errorf(codeInvalid, "reason is required: say why (e.g. the request's reference)"))
		return
	}
	id := who(c)
	if _, err := a.agents.Store.Buyer(c.Request.Context(), id.shop.ID, buyerID); err != nil {
		fail(c, err)
		return
	}
	// One erasure per shop at a time: two rewriting the same cold segment would make one of them fail.
	release, ok := a.lease.acquire(c.Request.Context(), "erase:"+strconv.FormatInt(id.shop.ID, 10), eraseTimeout)
	if !ok {
		fail(c, errorf(codeConflict, "another erasure is running for this shop; try again when it is done"))
		return
	}
	defer release()
	// The erasure goes on if the client leaves: stopping midway would only make a rerun necessary.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), eraseTimeout)
	defer cancel()
	// No flush or index batch runs meanwhile, on any node: one that read the buyer's messages before
	// they went would write them back to the warm store or the index. Runs take well under a second;
	// the hold is bounded so that a node dying mid-erasure delays them by eraseHold at most.
	wait, stop := context.WithTimeout(ctx, eraseHoldWait)
	unhold, err := a.scheduler.Hold(wait, eraseHold, "flush", "index")
	stop()
	if err != nil {
		fail(c, errorf(codeUnavailable, "the flush or index job is busy ("+err.Error()+"); try again"))
		return
	}
	defer unhold()
	rec, err := a.privacy.EraseBuyer(ctx, archive.ErasureRequest{ShopID: id.shop.ID, BuyerID: buyerID, Reason: in.Reason,
		RequestedBy: "staff:" + strconv.FormatInt(id.staff.ID, 10)})
	a.auth.forgetBuyer(buyerID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"deletion": rec})
}

// forgetBuyer drops this node's cached tokens of a buyer, so that an erased buyer's token is checked
// again (other nodes keep theirs until the token expires).
func (a *auth) forgetBuyer(buyerID int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, cb := range a.buyers {
		if cb.buyer.ID == buyerID {
			delete(a.buyers, k)
		}
	}
}

// listDeletions answers GET /api/data-deletions: the shop's record of retention runs and erasures.
func (a *App) listDeletions(c *gin.Context) {
	limit, ok := queryInt(c, "limit")
	if !ok {
		return
	}
	list, err := a.privacy.Deletions().List(c.Request.Context(), who(c).shop.ID, int(limit))
	if err != nil {
		fail(c, err)
		return
	}
	if list == nil {
		list = []archive.Deletion{}
	}
	c.JSON(http.StatusOK, gin.H{"deletions": list})
}

// listExports answers GET /api/data-exports: who exported what from the shop, newest first.
func (a *App) listExports(c *gin.Context) {
	limit, ok := queryInt(c, "limit")
	if !ok {
		return
	}
	if limit <= 0 || limit > 500 {
		limit = 500
	}
	list := []dataExport{}
	err := a.db.WithContext(c.Request.Context()).Where("shop_id = ?", who(c).shop.ID).Order("id DESC").Limit(int(limit)).Find(&list).Error
	if err != nil {
		fail(c, session.Errorf(session.EUNAVAILABLE, "export log: %v", err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"exports": list})
}

// dataExport is one row of the export log (migration 00007).
type dataExport struct {
	ID         int64      `json:"id" gorm:"primaryKey;autoIncrement"`
	ShopID     int64      `json:"shop_id"`
	StaffID    int64      `json:"staff_id"`
	Subject    string     `json:"subject"`
	Format     string     `json:"format"`
	State      string     `json:"state"`
	Messages   int64      `json:"messages"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

func (dataExport) TableName() string { return "data_exports" }

// exportRange is what one export covers: a conversation's messages with seq in [from, to].
type exportRange struct {
	subject  string
	title    string
	conv     *session.Conversation
	from, to int64
}

// exportConversation answers GET /api/conversations/:id/export?format=jsonl|html.
func (a *App) exportConversation(c *gin.Context) {
	id := who(c)
	if id.staff == nil {
		fail(c, errorf(codeForbidden, "staff only"))
		return
	}
	convID, ok := idParam(c, "id")
	if !ok {
		return
	}
	conv, err := a.sessions.Conversation(c.Request.Context(), id.caller, convID)
	if err != nil {
		fail(c, err)
		return
	}
	a.export(c, exportRange{subject: "conversation:" + strconv.FormatInt(conv.ID, 10),
		title: fmt.Sprintf("Conversation %d", conv.ID), conv: conv, from: 1, to: conv.LastSeq})
}

// exportSession answers GET /api/sessions/:id/export?format=jsonl|html: the messages from the
// session's first one up to the next session's first one.
func (a *App) exportSession(c *gin.Context) {
	id := who(c)
	if id.staff == nil {
		fail(c, errorf(codeForbidden, "staff only"))
		return
	}
	sid, ok := idParam(c, "id")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	s, err := a.sessions.Session(ctx, id.caller, sid)
	if err != nil {
		fail(c, err)
		return
	}
	conv, err := a.sessions.Conversation(ctx, id.caller, s.ConversationID)
	if err != nil {
		fail(c, err)
		return
	}
	r := exportRange{subject: "session:" + strconv.FormatInt(s.ID, 10), conv: conv, from: max(1, s.FirstSeq), to: conv.LastSeq,
		title: fmt.Sprintf("Session %d of conversation %d", s.ID, conv.ID)}
	list, err := a.sessions.Store.Sessions(ctx, session.SessionFilter{ShopID: s.ShopID, ConversationID: s.ConversationID, Limit: 500})
	if err != nil {
		fail(c, err)
		return
	}
	for _, o := range list {
		if o.ID != s.ID && o.FirstSeq > s.FirstSeq && o.FirstSeq-1 < r.to {
			r.to = o.FirstSeq - 1
		}
	}
	a.export(c, r)
}

// export streams the range page by page through the history API (every tier), recalled messages
// marked and shown, and logs who exported what. The first page is read before anything is written,
// so a failing store gets a proper error status; a failure later ends the stream with an error
// line (JSON Lines) or an error paragraph (HTML), and the log row says "failed".
func (a *App) export(c *gin.Context, r exportRange) {
	id := who(c)
	ctx := c.Request.Context()
	format := c.DefaultQuery("format", "jsonl")
	if format != "jsonl" && format != "html" {
		fail(c, errorf(codeInvalid, "format must be jsonl or html"))
		return
	}
	// Every export reads as a manager does: recalled messages keep their content, marked recalled.
	reader := session.Caller{Party: id.caller.Party, ShopID: id.shop.ID, Manager: true}
	page, err := a.exportPage(ctx, reader, r, r.from-1)
	if err != nil {
		fail(c, err)
		return
	}
	row := dataExport{ShopID: id.shop.ID, StaffID: id.staff.ID, Subject: r.subject, Format: format, State: "running", CreatedAt: time.Now().UTC()}
	if err := a.db.WithContext(ctx).Create(&row).Error; err != nil {
		fail(c, session.Errorf(session.EUNAVAILABLE, "export log: %v", err))
		return
	}
	name := fmt.Sprintf("%s-%s.%s", id.shop.Slug, r.subject, format)
	w := bufio.NewWriterSize(c.Writer, 32<<10)
	var out exportWriter
	switch format {
	case "jsonl":
		c.Header("Content-Type", "application/x-ndjson; charset=utf-8")
		c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
		out = &jsonlExport{w: w}
	default:
		c.Header("Content-Type", "text/html; charset=utf-8")
		c.Header("Content-Disposition", `inline; filename="`+name+`"`)
		// The page is self-contained: it may load nothing, run nothing.
		c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		loc, lerr := time.LoadLocation(id.shop.TimeZone)
		if lerr != nil {
			loc = time.UTC
		}
		he := &htmlExport{w: w, loc: loc, names: map[int64]string{}}
		if staff, err := a.agents.Store.StaffOf(ctx, id.shop.ID); err == nil {
			for _, st := range staff {
				he.names[st.ID] = st.DisplayName
			}
		}
		out = he
	}
	c.Header("X-Content-Type-Options", "nosniff")
	c.Status(http.StatusOK)
	werr := out.begin(exportHeader{Title: r.title, Shop: id.shop.Name, Conversation: r.conv.ID, Buyer: r.conv.BuyerID,
		From: r.from, To: r.to, By: id.staff.DisplayName, At: time.Now().In(time.UTC).Format(time.RFC3339)})
	for werr == nil && err == nil && len(page) > 0 {
		for _, m := range page {
			if werr = out.message(m); werr != nil {
				break
			}
			row.Messages++
		}
		if werr == nil {
			werr = w.Flush()
			c.Writer.Flush()
		}
		last := page[len(page)-1].Seq
		if werr != nil || last >= r.to {
			break
		}
		page, err = a.exportPage(ctx, reader, r, last)
	}
	if werr == nil {
		werr = out.end(row.Messages, err)
		if ferr := w.Flush(); werr == nil {
			werr = ferr
		}
	}
	now := time.Now().UTC()
	row.FinishedAt, row.State = &now, "done"
	if err != nil || werr != nil {
		row.State = "failed"
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if e := a.db.WithContext(lctx).Save(&row).Error; e != nil {
		a.log.Warn("export log", "err", e)
	}
	if err != nil {
		a.log.Warn("export stopped", "subject", r.subject, "err", err)
	}
}

// exportPage reads the next page of the range after seq `after`, cut at the range's end.
func (a *App) exportPage(ctx context.Context, reader session.Caller, r exportRange, after int64) ([]session.Message, error) {
	if after >= r.to {
		return nil, nil
	}
	page, err := a.sessions.History(ctx, reader, r.conv.ID, after, 0, 200)
	if err != nil {
		return nil, err
	}
	for i, m := range page {
		if m.Seq > r.to {
			return page[:i], nil
		}
	}
	return page, nil
}

// exportHeader describes an export at its top.
type exportHeader struct {
	Title        string
	Shop         string
	Conversation int64
	Buyer        int64
	From, To     int64
	By           string
	At           string
}

// exportWriter renders an export as it streams.
type exportWriter interface {
	begin(h exportHeader) error
	message(m session.Message) error
	// end closes the document; failed is the error that cut the export short, if any.
	end(count int64, failed error) error
}

// jsonlExport writes one message per line, as the history API returns them to managers.
type jsonlExport struct {
	w   *bufio.Writer
	enc *json.Encoder
}

func (e *jsonlExport) begin(exportHeader) error {
	e.enc = json.NewEncoder(e.w)
	return nil
}

func (e *jsonlExport) message(m session.Message) error { return e.enc.Encode(m) }

func (e *jsonlExport) end(count int64, failed error) error {
	if failed == nil {
		return nil
	}
	return e.enc.Encode(map[string]any{"error": map[string]any{"code": errorCode(failed), "message": errorMessage(failed),
		"messages_written": count}})
}

// htmlExport writes a printable page that needs nothing else: inline style, no scripts, no images
// (uploads are named, not embedded). html/template escapes every value.
type htmlExport struct {
	w     *bufio.Writer
	loc   *time.Location
	names map[int64]string
}

var exportHTML = template.Must(template.New("head").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · {{.Shop}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#111}
h1{font-size:1.3em;margin:0 0 .3em}
.meta{color:#555;margin:0 0 1.5em}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
td.seq,td.time{white-space:nowrap;color:#555}
tr.system td{color:#666;font-style:italic}
tr.recalled td.body{text-decoration:line-through}
.tag{display:inline-block;border:1px solid #b00;color:#b00;font-size:.8em;padding:0 .3em;margin-left:.4em;text-decoration:none}
.text{white-space:pre-wrap;word-break:break-word}
@media print{body{margin:0}tr{page-break-inside:avoid}}
</style></head><body>
<h1>{{.Title}}</h1>
<p class="meta">Shop {{.Shop}} · conversation {{.Conversation}} · buyer #{{.Buyer}} · messages {{.From}}–{{.To}}<br>
Exported {{.At}} by {{.By}}</p>
<table><thead><tr><th>#</th><th>Time</th><th>From</th><th>Message</th></tr></thead><tbody>
`))

var exportRow = template.Must(template.New("row").Parse(`<tr class="{{.Class}}"><td class="seq">{{.Seq}}</td><td class="time">{{.Time}}</td><td>{{.From}}</td><td class="body"><span class="text">{{.Text}}</span>{{if .Recalled}}<span class="tag">recalled</span>{{end}}</td></tr>
`))

var exportFoot = template.Must(template.New("foot").Parse(`</tbody></table>
<p class="meta">{{.Count}} messages.{{if .Failed}} <strong>The export stopped early: {{.Failed}}</strong>{{end}}</p>
</body></html>
`))

func (e *htmlExport) begin(h exportHeader) error { return exportHTML.Execute(e.w, h) }

func (e *htmlExport) message(m session.Message) error {
	row := struct {
		Class, Time, From, Text string
		Seq                     int64
		Recalled                bool
	}{Seq: m.Seq, Time: m.CreatedAt.In(e.loc).Format("2006-01-02 15:04:05 MST"), Recalled: m.Recalled}
	switch m.SenderKind {
	case session.PartyBuyer:
		row.From = fmt.Sprintf("Buyer #%d", m.SenderID)
	case session.PartyStaff:
		row.From = e.names[m.SenderID]
		if row.From == "" {
			row.From = fmt.Sprintf("Staff #%d", m.SenderID)
		}
	default:
		row.From, row.Class = "System", "system"
	}
	if m.Recalled {
		row.Class = "recalled"
	}
	b := m.Body
	switch b.Type {
	case session.TypeImage, session.TypeFile:
		row.Text = fmt.Sprintf("[%s] %s (%d bytes, %s)", b.Type, b.Name, b.Size, b.BlobKey)
	case session.TypeProduct, session.TypeOrder:
		if b.Card != nil {
			row.Text = fmt.Sprintf("[%s %s] %s %s %s %s", b.Type, b.Card.ID, b.Card.Title, b.Card.Price, b.Card.Status, b.Card.URL)
		}
		if b.Text != "" {
			row.Text += "\n" + b.Text
		}
	case session.TypeRecall:
		row.Text = fmt.Sprintf("[recalled message #%d]", b.RecallSeq)
	case session.TypeSystem:
		row.Text = b.Event
		if b.Text != "" {
			row.Text += ": " + b.Text
		}
	default:
		row.Text = b.Text
	}
	return exportRow.Execute(e.w, row)
}

func (e *htmlExport) end(count int64, failed error) error {
	msg := ""
	if failed != nil {
		msg = errorMessage(failed)
	}
	return exportFoot.Execute(e.w, struct {
		Count  int64
		Failed string
	}{count, msg})
}

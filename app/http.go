package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/archive"
	"github.com/shopdesk/shopdesk/session"
)

// maxJSONBody bounds REST request bodies; uploads have their own limit.
const maxJSONBody = 64 << 10

// Handler returns the node's HTTP handler: REST API, WebSocket gateway, health and metrics.
func (a *App) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), a.cors())
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) { fail(c, errorf(codeNotFound, "no such endpoint")) })
	r.NoMethod(func(c *gin.Context) { fail(c, errorf(codeMethod, "method not allowed")) })

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "alive", "node": a.nodeID}) })
	r.GET("/readyz", a.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{})))
	r.GET("/ws", a.serveWS)

	api := r.Group("/api")
	api.GET("/gateway", a.gateway)
	api.POST("/login", a.login)
	api.POST("/logout", a.logout)
	api.POST("/visitor", a.visitor)

	op := api.Group("/operator", a.operatorOnly)
	op.POST("/shops", a.createShop)
	op.GET("/shops", a.listShops)
	op.GET("/jobs", a.getJobs)

	au := api.Group("", a.auth.authenticated())
	au.GET("/me", a.me)
	au.PUT("/me/status", a.putStatus)
	au.POST("/conversations", a.startConversation)
	au.GET("/conversations", a.listConversations)
	au.GET("/conversations/:id", a.getConversation)
	au.GET("/conversations/:id/messages", a.history)
	au.POST("/conversations/:id/messages", a.sendREST)
	au.POST("/conversations/:id/read", a.markRead)
	au.GET("/unread", a.unread)
	au.GET("/sessions", a.listSessions)
	au.GET("/sessions/:id", a.getSession)
	au.POST("/sessions/:id/assign", a.assign)
	au.POST("/sessions/:id/close", a.closeSession)
	au.POST("/sessions/:id/rating", a.rateSession)
	au.POST("/uploads", a.upload)
	au.GET("/blobs/*key", a.blob)
	au.GET("/search", a.searchMessages)
	a.mountUIAPI(au)

	mgr := au.Group("", a.managerOnly)
	mgr.GET("/shop", a.getShop)
	mgr.PATCH("/shop", a.patchShop)
	mgr.GET("/staff", a.listStaff)
	mgr.POST("/staff", a.createStaff)
	mgr.PATCH("/staff/:id", a.patchStaff)
	a.mountRouting(au, mgr)
	a.mountPrivacy(au, mgr)
	a.mountUI(r)
	return r
}

// cors answers preflights and marks responses readable by the shop pages that embed the widget.
// Which origins may act is decided per shop after authentication (auth.authenticated), so the
// preflight itself allows any origin and never allows credentials: buyers use tokens, not cookies.
func (a *App) cors() gin.HandlerFunc {
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin != "" && c.Request.Host != strings.TrimPrefix(strings.TrimPrefix(origin, "http://"), "https://") {
			h := c.Writer.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Vary", "Origin")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Shop")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Max-Age", "600")
			if c.Request.Method == http.MethodOptions {
				c.AbortWithStatus(http.StatusNoContent)
				return
			}
		}
		c.Next()
	}
}

// bind decodes a JSON body of at most maxJSONBody bytes into v.
func bind(c *gin.Context, v any) bool {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxJSONBody)
	dec := json.NewDecoder(c.Request.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if ok := asMaxBytes(err, &mbe); ok {
			fail(c, errorf(codeTooLarge, fmt.Sprintf("request body larger than %d bytes", maxJSONBody)))
			return false
		}
		if err == io.EOF {
			fail(c, errorf(codeInvalid, "request body is required"))
			return false
		}
		fail(c, errorf(codeInvalid, "malformed JSON: "+err.Error()))
		return false
	}
	return true
}

func asMaxBytes(err error, target **http.MaxBytesError) bool {
	e, ok := err.(*http.MaxBytesError)
	if ok {
		*target = e
	}
	return ok || strings.Contains(err.Error(), "request body too large")
}

func idParam(c *gin.Context, name string) (int64, bool) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id <= 0 {
		fail(c, errorf(codeInvalid, name+" must be a positive integer"))
		return 0, false
	}
	return id, true
}

func queryInt(c *gin.Context, name string) (int64, bool) {
	v := c.Query(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		fail(c, errorf(codeInvalid, name+" must be a non-negative integer"))
		return 0, false
	}
	return n, true
}

func (a *App) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	out := gin.H{"node": a.nodeID, "mode": a.mode}
	ok := true
	if s, err := a.db.DB(); err != nil || s.PingContext(ctx) != nil {
		ok = false
		out["warm_store"] = "unreachable"
	} else {
		out["warm_store"] = "ok"
	}
	if a.rdb != nil {
		if err := a.rdb.Ping(ctx).Err(); err != nil {
			ok = false
			out["redis"] = "unreachable"
		} else {
			out["redis"] = "ok"
		}
		out["durability"] = a.redisDur
	} else {
		out["durability"] = gin.H{"mode": "sql-commit", "promise": "a message is committed to the warm store (" + string(a.mode) + ") before its ack"}
	}
	if a.hotLog != nil {
		n := a.hotLog.Conflicts()
		out["flush_conflicts"] = n
		if n > 0 {
			ok = false
		}
	}
	if a.draining.Load() {
		ok = false
		out["draining"] = true
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	out["ready"] = ok
	c.JSON(status, out)
}

// gateway is the access schedule service: the WebSocket URL of the live node with fewest connections.
func (a *App) gateway(c *gin.Context) {
	nodes, err := a.nodes.live(c.Request.Context())
	if err != nil || len(nodes) == 0 {
		nodes = []nodeInfo{a.selfInfo()}
	}
	nodes = leastLoaded(nodes)
	pick := nodes[0]
	ws := "ws" + strings.TrimPrefix(pick.URL, "http") + "/ws"
	c.JSON(http.StatusOK, gin.H{"url": ws, "http_url": pick.URL, "node": pick.ID, "nodes": len(nodes)})
}

func (a *App) operatorOnly(c *gin.Context) {
	if !a.auth.operator(c.Request) {
		fail(c, errorf(codeUnauth, "operator token required"))
	}
}

func (a *App) managerOnly(c *gin.Context) {
	if id := who(c); id.staff == nil || id.staff.Role != agent.RoleManager {
		fail(c, errorf(codeForbidden, "managers only"))
	}
}

func (a *App) createShop(c *gin.Context) {
	var in agent.NewShop
	if !bind(c, &in) {
		return
	}
	shop, mgr, err := a.agents.CreateShop(c.Request.Context(), in)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"shop": shop, "manager": mgr, "buyer_secret": shop.BuyerSecrets[0]})
}

func (a *App) listShops(c *gin.Context) {
	shops, err := a.agents.Store.Shops(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"shops": shops})
}

func (a *App) login(c *gin.Context) {
	var in struct{ Shop, Username, Password string }
	if !bind(c, &in) {
		return
	}
	shop, st, err := a.agents.Login(c.Request.Context(), in.Shop, in.Username, in.Password)
	if err != nil {
		if agent.ErrorCode(err) == agent.EFORBIDDEN {
			err = errorf(codeUnauth, errorMessage(err))
		}
		fail(c, err)
		return
	}
	tok := a.auth.staffToken(st)
	http.SetCookie(c.Writer, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Request.TLS != nil || c.GetHeader("X-Forwarded-Proto") == "https",
		MaxAge: int(staffTokenLife / time.Second)})
	c.JSON(http.StatusOK, gin.H{"token": tok, "staff": st, "shop": shop})
}

func (a *App) logout(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	c.JSON(http.StatusOK, gin.H{"ok": true})
}

// visitor issues an anonymous buyer token for a shop's page.
func (a *App) visitor(c *gin.Context) {
	var in struct {
		Shop string `json:"shop"`
	}
	if !bind(c, &in) {
		return
	}
	shop, err := a.auth.shopRef(c.Request.Context(), in.Shop)
	if err != nil {
		fail(c, err)
		return
	}
	if !originAllowed(shop, c.GetHeader("Origin"), c.Request.Host) {
		fail(c, errorf(codeOrigin, "origin not allowed for this shop"))
		return
	}
	tok, claims, err := session.NewVisitorToken(a.auth.visitorKey(), shop.ID, time.Now())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"token": tok, "shop_id": shop.ID, "sub": claims.Subject, "expires": claims.Expires})
}

func (a *App) me(c *gin.Context) {
	id := who(c)
	out := gin.H{"shop": id.shop, "party": id.caller.Party}
	if id.staff != nil {
		out["staff"] = id.staff
	}
	if id.buyer != nil {
		out["buyer"] = id.buyer
	}
	c.JSON(http.StatusOK, out)
}

func (a *App) putStatus(c *gin.Context) {
	id := who(c)
	if id.staff == nil {
		fail(c, errorf(codeForbidden, "only staff have a status"))
		return
	}
	var in struct {
		Status agent.Status `json:"status"`
	}
	if !bind(c, &in) {
		return
	}
	st, err := a.setStatus(c.Request.Context(), id, in.Status)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": st})
}

func (a *App) startConversation(c *gin.Context) {
	var in struct {
		Context session.EntryContext `json:"context"`
	}
	if !bind(c, &in) {
		return
	}
	conv, err := a.sessions.StartConversation(c.Request.Context(), who(c).caller, in.Context)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"conversation": conv})
}

func (a *App) listConversations(c *gin.Context) {
	limit, ok := queryInt(c, "limit")
	if !ok {
		return
	}
	convs, total, err := a.sessions.Conversations(c.Request.Context(), who(c).caller, int(limit))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"conversations": convs, "unread_total": total})
}

func (a *App) getConversation(c *gin.Context) {
	id, ok := idParam(c, "id")
	if !ok {
		return
	}
	conv, err := a.sessions.Conversation(c.Request.Context(), who(c).caller, id)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"conversation": conv})
}

func (a *App) history(c *gin.Context) {
	id, ok := idParam(c, "id")
	if !ok {
		return
	}
	after, ok1 := queryInt(c, "after")
	before, ok2 := queryInt(c, "before")
	limit, ok3 := queryInt(c, "limit")
	if !ok1 || !ok2 || !ok3 {
		return
	}
	msgs, err := a.sessions.History(c.Request.Context(), who(c).caller, id, after, before, int(limit))
	if err != nil {
		fail(c, err)
		return
	}
	if msgs == nil {
		msgs = []session.Message{}
	}
	c.JSON(http.StatusOK, gin.H{"messages": msgs})
}

func (a *App) sendREST(c *gin.Context) {
	id, ok := idParam(c, "id")
	if !ok {
		return
	}
	var in struct {
		ClientMsgID string       `json:"client_msg_id"`
		Body        session.Body `json:"body"`
	}
	if !bind(c, &in) {
		return
	}
	m, dup, err := a.sessions.Send(c.Request.Context(), who(c).caller, id, in.ClientMsgID, in.Body)
	if err != nil {
		fail(c, err)
		return
	}
	if !dup {
		a.metrics.sent.Inc()
	}
	c.JSON(http.StatusOK, gin.H{"client_msg_id": m.ClientMsgID, "conversation_id": m.ConversationID, "seq": m.Seq, "server_time": m.CreatedAt, "dup": dup})
}

func (a *App) markRead(c *gin.Context) {
	id, ok := idParam(c, "id")
	if !ok {
		return
	}
	var in struct {
		Seq int64 `json:"seq"`
	}
	if !bind(c, &in) {
		return
	}
	uc, err := a.sessions.MarkRead(c.Request.Context(), who(c).caller, id, in.Seq)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"unread": uc})
}

func (a *App) unread(c *gin.Context) {
	per, total, err := a.sessions.Unreads(c.Request.Context(), who(c).caller)
	if err != nil {
		fail(c, err)
		return
	}
	conv := map[string]int64{}
	for k, v := range per {
		conv[strconv.FormatInt(k, 10)] = v
	}
	c.JSON(http.StatusOK, gin.H{"conversations": conv, "total": total})
}

func (a *App) listSessions(c *gin.Context) {
	f := session.SessionFilter{}
	if st := c.Query("state"); st != "" {
		for _, s := range strings.Split(st, ",") {
			switch session.State(s) {
			case session.StateQueued, session.StateOpen, session.StateClosed:
				f.States = append(f.States, session.State(s))
			default:
				fail(c, errorf(codeInvalid, "state must be queued, open or closed"))
				return
			}
		}
	}
	conv, ok := queryInt(c, "conversation_id")
	limit, ok2 := queryInt(c, "limit")
	before, ok3 := queryInt(c, "before_id")
	if !ok || !ok2 || !ok3 {
		return
	}
	f.ConversationID, f.Limit, f.BeforeID = conv, int(limit), before
	list, err := a.sessions.Sessions(c.Request.Context(), who(c).caller, f)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"sessions": list})
}

func (a *App) getSession(c *gin.Context) {
	id, ok := idParam(c, "id")
	if !ok {
		return
	}
	s, err := a.sessions.Session(c.Request.Context(), who(c).caller, id)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"session": s})
}

func (a *App) closeSession(c *gin.Context) {
	id, ok := idParam(c, "id")
	if !ok {
		return
	}
	var in struct {
		Outcome string `json:"outcome"`
	}
	if !bind(c, &in) {
		return
	}
	s, err := a.sessions.Close(c.Request.Context(), who(c).caller, id, in.Outcome)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"session": s})
}

// rateSession records a buyer's satisfaction rating of a closed session.
func (a *App) rateSession(c *gin.Context) {
	id, ok := idParam(c, "id")
	if !ok {
		return
	}
	var in struct {
		Rating  int    `json:"rating"`
		Comment string `json:"comment"`
	}
	if !bind(c, &in) {
		return
	}
	s, err := a.sessions.Rate(c.Request.Context(), who(c).caller, id, in.Rating, in.Comment)
	answer(c, err, gin.H{"session": s})
}

// uploadTypes are the content types accepted for uploads, checked against the bytes themselves.
var uploadTypes = map[string]string{
	"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
	"application/pdf": ".pdf", "text/plain; charset=utf-8": ".txt", "application/zip": ".zip",
}

func (a *App) upload(c *gin.Context) {
	id := who(c)
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, a.cfg.UploadMax+4096)
	fh, err := c.FormFile("file")
	if err != nil {
		var mbe *http.MaxBytesError
		if asMaxBytes(err, &mbe) {
			fail(c, errorf(codeTooLarge, fmt.Sprintf("upload larger than %d bytes", a.cfg.UploadMax)))
			return
		}
		fail(c, errorf(codeInvalid, "multipart form with a \"file\" field required"))
		return
	}
	if fh.Size > a.cfg.UploadMax {
		fail(c, errorf(codeTooLarge, fmt.Sprintf("upload larger than %d bytes", a.cfg.UploadMax)))
		return
	}
	f, err := fh.Open()
	if err != nil {
		fail(c, errorf(codeInvalid, "cannot read upload"))
		return
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	sniffed := http.DetectContentType(head[:n])
	ext, ok := uploadTypes[sniffed]
	if !ok {
		fail(c, errorf(codeInvalid, "file type "+sniffed+" is not accepted (images, PDF, text, zip)"))
		return
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		fail(c, err)
		return
	}
	key := session.UploadPrefix(id.shop.ID) + time.Now().UTC().Format("2006/01/") + randomHex(12) + ext
	if err := a.blobs.Put(c.Request.Context(), key, f, fh.Size, sniffed); err != nil {
		fail(c, session.Errorf(session.EUNAVAILABLE, "blob store: %v", err))
		return
	}
	kind := session.TypeFile
	if strings.HasPrefix(sniffed, "image/") {
		kind = session.TypeImage
	}
	name := path.Base(strings.ReplaceAll(fh.Filename, "\\", "/"))
	mt, _, _ := mime.ParseMediaType(sniffed)
	c.JSON(http.StatusCreated, gin.H{"blob_key": key, "type": kind, "name": name, "mime": mt, "size": fh.Size,
		"url": "/api/blobs/" + key})
}

// blob serves an upload to staff and buyers of the shop it belongs to.
func (a *App) blob(c *gin.Context) {
	key := strings.TrimPrefix(c.Param("key"), "/")
	if !strings.HasPrefix(key, session.UploadPrefix(who(c).shop.ID)) {
		fail(c, errorf(codeNotFound, "no such blob"))
		return
	}
	r, err := a.blobs.Get(c.Request.Context(), key)
	if errors.Is(err, archive.ErrNotFound) {
		fail(c, errorf(codeNotFound, "no such blob"))
		return
	}
	if err != nil {
		fail(c, session.Errorf(session.EUNAVAILABLE, "blob store: %v", err))
		return
	}
	defer r.Close()
	ct := mime.TypeByExtension(path.Ext(key))
	if ct == "" {
		ct = "application/octet-stream"
	}
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Cache-Control", "private, max-age=86400")
	c.DataFromReader(http.StatusOK, -1, ct, r, nil)
}

func (a *App) getShop(c *gin.Context) {
	id := who(c)
	c.JSON(http.StatusOK, gin.H{"shop": id.shop, "buyer_secrets": id.shop.BuyerSecrets})
}

func (a *App) patchShop(c *gin.Context) {
	var in agent.ShopUpdate
	if !bind(c, &in) {
		return
	}
	shop, err := a.agents.UpdateShop(c.Request.Context(), who(c).shop.ID, in)
	if err != nil {
		fail(c, err)
		return
	}
	a.auth.forgetShop(shop.ID)
	c.JSON(http.StatusOK, gin.H{"shop": shop, "buyer_secrets": shop.BuyerSecrets})
}

func (a *App) listStaff(c *gin.Context) {
	list, err := a.agents.Store.StaffOf(c.Request.Context(), who(c).shop.ID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"staff": list})
}

func (a *App) createStaff(c *gin.Context) {
	var in agent.NewStaff
	if !bind(c, &in) {
		return
	}
	st, err := a.agents.CreateStaff(c.Request.Context(), who(c).shop.ID, in)
	if err != nil {
		fail(c, err)
		return
	}
	a.agentChanged(c, st.ShopID, st.ID)
	c.JSON(http.StatusCreated, gin.H{"staff": st})
}

func (a *App) patchStaff(c *gin.Context) {
	id, ok := idParam(c, "id")
	if !ok {
		return
	}
	var in agent.StaffUpdate
	if !bind(c, &in) {
		return
	}
	st, err := a.agents.UpdateStaff(c.Request.Context(), who(c).shop.ID, id, in)
	if err != nil {
		fail(c, err)
		return
	}
	a.agentChanged(c, st.ShopID, st.ID)
	c.JSON(http.StatusOK, gin.H{"staff": st})
}

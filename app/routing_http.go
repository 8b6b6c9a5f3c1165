package app

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/routing"
	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// maxRuleSetBody bounds a request carrying a rule set: MaxRules rules of four expressions of at most
// MaxSourceBytes each, with names and JSON around them.
const maxRuleSetBody = 4 << 20

// mountRouting adds the shunting engine's endpoints: rule sets for managers, transfer and traces for
// agents, the queue place for buyers.
func (a *App) mountRouting(au, mgr *gin.RouterGroup) {
	au.POST("/sessions/:id/transfer", a.transfer)
	au.GET("/sessions/:id/traces", a.sessionTraces)
	au.GET("/sessions/:id/queue", a.sessionQueue)

	r := mgr.Group("/routing")
	r.GET("", a.routingOverview)
	r.GET("/environment", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"environment": rules.Fields()}) })
	r.GET("/versions", a.listVersions)
	r.POST("/versions", a.saveVersion)
	r.GET("/versions/:number", a.getVersion)
	r.GET("/versions/:number/diff", a.diffVersion)
	r.POST("/publish", a.activateVersion(false))
	r.POST("/rollback", a.activateVersion(true))
	r.GET("/audit", a.routingAudit)
	r.POST("/validate", a.validateRules)
	r.GET("/draft", a.getDraft)
	r.PUT("/draft", a.putDraft)
	r.DELETE("/draft", a.deleteDraft)
	r.POST("/simulate", a.simulate)
	r.GET("/shadow", a.shadowResults)
	r.GET("/schedules", a.getSchedules)
	r.PUT("/schedules", a.putSchedules)
	r.GET("/queue", a.routingQueue)
	r.GET("/claims", a.routingClaims)
	r.GET("/agents", a.routingAgents)
}

// answer writes body with 200, or err when there is one.
func answer(c *gin.Context, err error, body gin.H) {
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, body)
}

// answerList writes {key: list} with 200 (an empty list as [], never null), or err when there is one.
func answerList[T any](c *gin.Context, err error, key string, list []T) {
	if list == nil {
		list = []T{}
	}
	answer(c, err, gin.H{key: list})
}

// bindLarge is bind with a larger body limit, for rule sets.
func bindLarge(c *gin.Context, v any) bool {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxRuleSetBody)
	return bind(c, v)
}

func versionParam(c *gin.Context, name string) (int, bool) {
	n, err := strconv.Atoi(c.Param(name))
	if err != nil || n < 0 {
		fail(c, errorf(codeInvalid, name+" must be a version number"))
		return 0, false
	}
	return n, true
}

func (a *App) routingOverview(c *gin.Context) {
	ctx, shop := c.Request.Context(), who(c).shop.ID
	st := a.routing.Store()
	active, err := st.Active(ctx, shop)
	if err != nil {
		fail(c, err)
		return
	}
	scheds, err := st.Schedules(ctx, shop)
	if err != nil {
		fail(c, err)
		return
	}
	out := gin.H{"active": active, "in_force": rules.Active(scheds, active, time.Now()), "schedules": scheds, "draft": nil}
	if d, err := st.Draft(ctx, shop); err == nil {
		out["draft"] = d
	} else if errorCode(err) != codeNotFound {
		fail(c, err)
		return
	}
	n, err := a.routing.QueueLength(ctx, shop)
	if err != nil {
		fail(c, err)
		return
	}
	out["queue_length"] = n
	out["stats"] = a.routing.Stats()
	c.JSON(http.StatusOK, out)
}

func (a *App) listVersions(c *gin.Context) {
	limit, ok := queryInt(c, "limit")
	if !ok {
		return
	}
	ctx, shop := c.Request.Context(), who(c).shop.ID
	list, err := a.routing.Store().Versions(ctx, shop, int(limit))
	if err != nil {
		fail(c, err)
		return
	}
	active, err := a.routing.Store().Active(ctx, shop)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"versions": list, "active": active})
}

func (a *App) saveVersion(c *gin.Context) {
	var in struct {
		RuleSet *rules.RuleSet `json:"rule_set"`
		Comment string         `json:"comment"`
		Publish bool           `json:"publish"`
	}
	if !bindLarge(c, &in) {
		return
	}
	if in.RuleSet == nil {
		fail(c, errorf(codeInvalid, "rule_set is required"))
		return
	}
	id := who(c)
	ctx := c.Request.Context()
	v, err := a.routing.Store().SaveVersion(ctx, id.shop.ID, *in.RuleSet, id.staff.ID, in.Comment)
	if err != nil {
		fail(c, err)
		return
	}
	if in.Publish {
		if err := a.routing.Store().Publish(ctx, id.shop.ID, v.Number, id.staff.ID, in.Comment); err != nil {
			fail(c, err)
			return
		}
		a.rulesChanged(c, id.shop.ID)
	}
	c.JSON(http.StatusCreated, gin.H{"version": v, "published": in.Publish})
}

func (a *App) getVersion(c *gin.Context) {
	n, ok := versionParam(c, "number")
	if !ok {
		return
	}
	v, err := a.routing.Store().Version(c.Request.Context(), who(c).shop.ID, n)
	answer(c, err, gin.H{"version": v})
}

// diffVersion compares a version with another (?against=, default: the one before it).
func (a *App) diffVersion(c *gin.Context) {
	n, ok := versionParam(c, "number")
	if !ok {
		return
	}
	against := n - 1
	if s := c.Query("against"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			fail(c, errorf(codeInvalid, "against must be a version number"))
			return
		}
		against = v
	}
	against = max(against, 0)
	ctx, shop := c.Request.Context(), who(c).shop.ID
	from, err := a.routing.Store().Version(ctx, shop, against)
	if err != nil {
		fail(c, err)
		return
	}
	to, err := a.routing.Store().Version(ctx, shop, n)
	if err != nil {
		fail(c, err)
		return
	}
	lines := rules.Diff(from.RuleSet, to.RuleSet)
	if lines == nil {
		lines = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"from": against, "to": n, "changes": lines})
}

func (a *App) activateVersion(rollback bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		var in struct {
			Version *int   `json:"version"`
			Note    string `json:"note"`
		}
		if !bind(c, &in) {
			return
		}
		if in.Version == nil || *in.Version < 0 {
			fail(c, errorf(codeInvalid, "version is required (0 is the built-in default rule set)"))
			return
		}
		id := who(c)
		ctx := c.Request.Context()
		var err error
		if rollback {
			err = a.routing.Store().Rollback(ctx, id.shop.ID, *in.Version, id.staff.ID, in.Note)
		} else {
			err = a.routing.Store().Publish(ctx, id.shop.ID, *in.Version, id.staff.ID, in.Note)
		}
		if err != nil {
			fail(c, err)
			return
		}
		a.rulesChanged(c, id.shop.ID)
		c.JSON(http.StatusOK, gin.H{"active": *in.Version})
	}
}

// rulesChanged makes this node use the shop's new rules at once and serves the queue with them; other
// nodes reload them within the engine's cache time (a second).
func (a *App) rulesChanged(c *gin.Context, shopID int64) {
	a.routing.RulesChanged(shopID)
	if _, err := a.routing.Drain(c.Request.Context(), shopID); err != nil {
		a.log.Warn("routing: drain after a rules change", "shop", shopID, "err", err)
	}
}

func (a *App) routingAudit(c *gin.Context) {
	limit, ok := queryInt(c, "limit")
	if !ok {
		return
	}
	list, err := a.routing.Store().Audit(c.Request.Context(), who(c).shop.ID, int(limit))
	answer(c, err, gin.H{"audit": list})
}

// validateRules answers 200 with every problem of a rule set (none when it compiles): editors call it
// while a manager types.
func (a *App) validateRules(c *gin.Context) {
	var in struct {
		RuleSet *rules.RuleSet `json:"rule_set"`
	}
	if !bindLarge(c, &in) {
		return
	}
	if in.RuleSet == nil {
		fail(c, errorf(codeInvalid, "rule_set is required"))
		return
	}
	problems := rules.Validate(*in.RuleSet)
	if problems == nil {
		problems = []rules.FieldError{}
	}
	c.JSON(http.StatusOK, gin.H{"valid": len(problems) == 0, "errors": problems})
}

func (a *App) getDraft(c *gin.Context) {
	d, err := a.routing.Store().Draft(c.Request.Context(), who(c).shop.ID)
	if err != nil {
		fail(c, err)
		return
	}
	problems := rules.Validate(d.RuleSet)
	if problems == nil {
		problems = []rules.FieldError{}
	}
	c.JSON(http.StatusOK, gin.H{"draft": d, "errors": problems})
}

func (a *App) putDraft(c *gin.Context) {
	var in struct {
		RuleSet *rules.RuleSet `json:"rule_set"`
		Shadow  bool           `json:"shadow"`
	}
	if !bindLarge(c, &in) {
		return
	}
	if in.RuleSet == nil {
		fail(c, errorf(codeInvalid, "rule_set is required"))
		return
	}
	id := who(c)
	problems, err := a.routing.Store().SaveDraft(c.Request.Context(), id.shop.ID, *in.RuleSet, id.staff.ID, in.Shadow)
	if err != nil {
		fail(c, err)
		return
	}
	if problems == nil {
		problems = []rules.FieldError{}
	}
	a.rulesChanged(c, id.shop.ID)
	c.JSON(http.StatusOK, gin.H{"saved": true, "shadow": in.Shadow, "errors": problems})
}

func (a *App) deleteDraft(c *gin.Context) {
	id := who(c)
	if err := a.routing.Store().DeleteDraft(c.Request.Context(), id.shop.ID); err != nil {
		fail(c, err)
		return
	}
	a.rulesChanged(c, id.shop.ID)
	c.JSON(http.StatusOK, gin.H{"deleted": true})
}

func (a *App) simulate(c *gin.Context) {
	var in struct {
		RuleSet       *rules.RuleSet `json:"rule_set"`
		Draft         bool           `json:"draft"`
		Version       int            `json:"version"`
		Session       rules.Session  `json:"session"`
		SessionID     int64          `json:"session_id"`
		LastAgentID   int64          `json:"last_agent_id"`
		WaitedSeconds int            `json:"waited_seconds"`
	}
	if !bindLarge(c, &in) {
		return
	}
	if in.Version < 0 || in.WaitedSeconds < 0 || in.WaitedSeconds > rules.MaxTimeoutSeconds*rules.MaxRules {
		fail(c, errorf(codeInvalid, "version and waited_seconds must be non-negative (and waited_seconds sensible)"))
		return
	}
	if in.Session.Kind == "" {
		in.Session.Kind = rules.KindUnknown
	}
	tr, err := a.routing.Simulate(c.Request.Context(), who(c).shop.ID, routing.SimulateRequest{RuleSet: in.RuleSet, Draft: in.Draft,
		Version: in.Version, Session: in.Session, SessionID: in.SessionID, LastAgentID: in.LastAgentID,
		Waited: time.Duration(in.WaitedSeconds) * time.Second})
	answer(c, err, gin.H{"trace": tr})
}

func (a *App) shadowResults(c *gin.Context) {
	limit, ok := queryInt(c, "limit")
	if !ok {
		return
	}
	since := time.Now().Add(-24 * time.Hour)
	if s := c.Query("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			fail(c, errorf(codeInvalid, "since must be an RFC 3339 time"))
			return
		}
		since = t
	}
	list, total, differ, err := a.routing.Store().ShadowResults(c.Request.Context(), who(c).shop.ID, since, int(limit))
	if err != nil {
		fail(c, err)
		return
	}
	if list == nil {
		list = []routing.ShadowResult{}
	}
	c.JSON(http.StatusOK, gin.H{"results": list, "total": total, "differ": differ, "since": since.UTC()})
}

func (a *App) getSchedules(c *gin.Context) {
	list, err := a.routing.Store().Schedules(c.Request.Context(), who(c).shop.ID)
	answerList(c, err, "schedules", list)
}

func (a *App) putSchedules(c *gin.Context) {
	var in struct {
		Schedules []rules.Schedule `json:"schedules"`
	}
	if !bind(c, &in) {
		return
	}
	id := who(c)
	if err := a.routing.Store().SetSchedules(c.Request.Context(), id.shop.ID, in.Schedules, id.staff.ID, time.Now()); err != nil {
		fail(c, err)
		return
	}
	a.rulesChanged(c, id.shop.ID)
	if in.Schedules == nil {
		in.Schedules = []rules.Schedule{}
	}
	c.JSON(http.StatusOK, gin.H{"schedules": in.Schedules})
}

func (a *App) routingQueue(c *gin.Context) {
	limit, ok := queryInt(c, "limit")
	if !ok {
		return
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	ctx, shop := c.Request.Context(), who(c).shop.ID
	list, err := a.routing.Queue(ctx, shop, int(limit))
	if err != nil {
		fail(c, err)
		return
	}
	n, err := a.routing.QueueLength(ctx, shop)
	if err != nil {
		fail(c, err)
		return
	}
	if list == nil {
		list = []routing.QueueView{}
	}
	c.JSON(http.StatusOK, gin.H{"length": n, "entries": list})
}

// routingClaims returns the claim log and its replay: a shop's audit that no agent was given more than
// their capacity (only manual assignments, marked forced, may exceed it).
func (a *App) routingClaims(c *gin.Context) {
	events, err := a.routing.Claims(c.Request.Context(), who(c).shop.ID)
	if events == nil {
		events = []routing.ClaimEvent{}
	}
	answer(c, err, gin.H{"events": events, "replay": routing.ReplayClaims(events)})
}

// assign gives a session to an agent by a manager's hand, through the engine (a forced claim).
func (a *App) assign(c *gin.Context) {
	sid, ok := idParam(c, "id")
	if !ok {
		return
	}
	var in struct {
		AgentID int64 `json:"agent_id"`
	}
	if !bind(c, &in) {
		return
	}
	id := who(c)
	if id.staff == nil || id.staff.Role != agent.RoleManager {
		fail(c, errorf(codeForbidden, "only managers assign sessions by hand"))
		return
	}
	tr, err := a.routing.Assign(c.Request.Context(), id.shop.ID, sid, in.AgentID, id.staff.ID)
	a.answerHandover(c, sid, tr, err)
}

func (a *App) transfer(c *gin.Context) {
	sid, ok := idParam(c, "id")
	if !ok {
		return
	}
	var in struct {
		routing.TransferTo
		Note string `json:"note"`
	}
	if !bind(c, &in) {
		return
	}
	id := who(c)
	if id.staff == nil {
		fail(c, errorf(codeForbidden, "only staff transfer sessions"))
		return
	}
	tr, err := a.routing.Transfer(c.Request.Context(), id.shop.ID, sid, in.TransferTo, in.Note, id.staff.ID)
	a.answerHandover(c, sid, tr, err)
}

// answerHandover answers an assignment or a transfer with the session as it is now and the trace;
// a refused transfer still returns its trace, which says why no one could take it.
func (a *App) answerHandover(c *gin.Context, sessionID int64, tr *routing.Trace, err error) {
	if err != nil {
		code := errorCode(err)
		body := gin.H{"code": code, "message": errorMessage(err)}
		if tr != nil {
			c.AbortWithStatusJSON(httpStatus(code), gin.H{"error": body, "trace": tr})
			return
		}
		fail(c, err)
		return
	}
	s, err := a.sessions.Session(c.Request.Context(), who(c).caller, sessionID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"session": s, "trace": tr})
}

// sessionTraces returns the explain traces of a session: to managers, and to the agent it is assigned
// to.
func (a *App) sessionTraces(c *gin.Context) {
	sid, ok := idParam(c, "id")
	if !ok {
		return
	}
	id := who(c)
	if id.staff == nil {
		fail(c, errorf(codeForbidden, "staff only"))
		return
	}
	s, err := a.sessions.Session(c.Request.Context(), id.caller, sid)
	if err != nil {
		fail(c, err)
		return
	}
	if id.staff.Role != agent.RoleManager && s.AgentID != id.staff.ID {
		fail(c, errorf(codeForbidden, "session is not assigned to you"))
		return
	}
	// Traces are written in batches off the hot path; write what is pending so the answer is whole.
	if err := a.routing.Flush(c.Request.Context()); err != nil {
		a.log.Warn("flush routing traces", "err", err)
	}
	list, err := a.routing.Store().Traces(c.Request.Context(), id.shop.ID, sid)
	answerList(c, err, "traces", list)
}

// sessionQueue returns a waiting session's place: for its buyer and the shop's staff.
func (a *App) sessionQueue(c *gin.Context) {
	sid, ok := idParam(c, "id")
	if !ok {
		return
	}
	id := who(c)
	s, err := a.sessions.Session(c.Request.Context(), id.caller, sid)
	if err != nil {
		fail(c, err)
		return
	}
	pos, total, eta, err := a.routing.Position(c.Request.Context(), id.shop.ID, s.ID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"queue": session.QueuePlace{SessionID: s.ID, Position: pos, Total: total,
		ETASeconds: int(eta.Round(time.Second) / time.Second)}, "state": s.State})
}

// validationDetails returns the itemised problems of a rejected rule set or schedule list, if err is one.
func validationDetails(err error) any {
	var ve *rules.ValidationError
	if errors.As(err, &ve) {
		return ve.Errors
	}
	var se *routing.ScheduleErrors
	if errors.As(err, &se) {
		return se.Errors
	}
	return nil
}

// agentLoad is a staff member as routing sees them: status, heartbeat, and the capacity units held.
type agentLoad struct {
	agent.Staff
	Load      int  `json:"load"`
	Heartbeat bool `json:"heartbeat"`
}

// routingAgents lists the shop's staff with their live loads: the figures behind a live view and the
// check that no one waits while an eligible agent has room.
func (a *App) routingAgents(c *gin.Context) {
	ctx, shop := c.Request.Context(), who(c).shop.ID
	staff, err := a.agents.Store.StaffOf(ctx, shop)
	if err != nil {
		fail(c, err)
		return
	}
	ids := make([]int64, len(staff))
	for i, st := range staff {
		ids[i] = st.ID
	}
	loads, err := a.routing.Loads(ctx, shop, ids)
	if err != nil {
		fail(c, err)
		return
	}
	beating, err := a.presence.Online(ctx, shop, time.Now().Add(-a.cfg.PresenceTimeout))
	if err != nil {
		fail(c, err)
		return
	}
	alive := make(map[int64]bool, len(beating))
	for _, id := range beating {
		alive[id] = true
	}
	out := make([]agentLoad, len(staff))
	for i, st := range staff {
		out[i] = agentLoad{Staff: st, Load: loads[st.ID], Heartbeat: alive[st.ID]}
	}
	c.JSON(http.StatusOK, gin.H{"agents": out})
}

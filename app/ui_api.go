package app

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/shopdesk/shopdesk/agent"
)

// mountUIAPI adds the endpoints the workspace and the widget need beyond the messaging core's: both
// sides' read positions (read receipts after a reload), whether anyone is at work (the widget's
// "leave a message"), the colleagues an agent may transfer to, and a manager's take-over from the
// live view.
func (a *App) mountUIAPI(au *gin.RouterGroup) {
	au.GET("/conversations/:id/reads", a.conversationReads)
	au.GET("/availability", a.availability)
	au.GET("/colleagues", a.colleagues)
	au.POST("/sessions/:id/takeover", a.takeOver)
}

// availability answers whether any staff member of the caller's shop is online or busy.
func (a *App) availability(c *gin.Context) {
	ok, err := a.agents.Available(c.Request.Context(), who(c).shop.ID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"available": ok})
}

// conversationReads answers how far the buyer and the staff have read a conversation.
func (a *App) conversationReads(c *gin.Context) {
	id, ok := idParam(c, "id")
	if !ok {
		return
	}
	r, err := a.sessions.Reads(c.Request.Context(), who(c).caller, id)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"reads": r})
}

// colleague is what any staff member may see of another: enough to pick a transfer target.
type colleague struct {
	ID          int64    `json:"id"`
	DisplayName string   `json:"display_name"`
	Role        string   `json:"role"`
	Groups      []string `json:"groups"`
	Status      string   `json:"status"`
}

// colleagues lists the active staff of the caller's shop, for staff only.
func (a *App) colleagues(c *gin.Context) {
	id := who(c)
	if id.staff == nil {
		fail(c, errorf(codeForbidden, "staff only"))
		return
	}
	list, err := a.agents.Store.StaffOf(c.Request.Context(), id.shop.ID)
	if err != nil {
		fail(c, err)
		return
	}
	out := []colleague{}
	for _, st := range list {
		if st.Active {
			out = append(out, colleague{ID: st.ID, DisplayName: st.DisplayName, Role: string(st.Role), Groups: st.Groups, Status: string(st.Status)})
		}
	}
	c.JSON(http.StatusOK, gin.H{"colleagues": out})
}

// takeOver gives a live session to the manager asking, as a recorded transfer (routing.TakeOver).
func (a *App) takeOver(c *gin.Context) {
	sid, ok := idParam(c, "id")
	if !ok {
		return
	}
	var in struct {
		Note string `json:"note"`
	}
	if !bind(c, &in) {
		return
	}
	id := who(c)
	if id.staff == nil || id.staff.Role != agent.RoleManager {
		fail(c, errorf(codeForbidden, "only managers take sessions over"))
		return
	}
	tr, err := a.routing.TakeOver(c.Request.Context(), id.shop.ID, sid, id.staff.ID, in.Note)
	a.answerHandover(c, sid, tr, err)
}

// clusterOrigin reports whether a browser origin is the public URL of a live node of this cluster:
// the workspace loaded from one node connects its WebSocket to whichever node /api/gateway picks, and
// that node must accept the staff connection as it accepts one from its own pages.
func (a *App) clusterOrigin(ctx context.Context, origin string) bool {
	o, err := url.Parse(origin)
	if err != nil || o.Host == "" {
		return false
	}
	nodes, err := a.nodes.live(ctx)
	if err != nil {
		return false
	}
	for _, n := range nodes {
		if u, err := url.Parse(n.URL); err == nil && strings.EqualFold(u.Host, o.Host) && u.Scheme == o.Scheme {
			return true
		}
	}
	return false
}

package app

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/shopdesk/shopdesk/agent"
)

// mountUIAPI adds the endpoints the workspace and the widget need beyond the messaging core's: both
// sides' read positions (read receipts after a reload), whether anyone is at work (the widget's
// "leave a message") and a manager's take-over from the live view.
func (a *App) mountUIAPI(au *gin.RouterGroup) {
	au.GET("/conversations/:id/reads", a.conversationReads)
	au.GET("/availability", a.availability)
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

package rules

import "time"

// Session kinds as expressions see them in session.kind.
const (
	KindPreSale   = "presale"
	KindAfterSale = "aftersale"
	KindUnknown   = "unknown"
)

// Agent statuses as expressions see them in agent.status.
const (
	StatusOnline  = "online"
	StatusBusy    = "busy"
	StatusAway    = "away"
	StatusOffline = "offline"
)

// Session is what an expression sees of the service session being routed, as `session`. The caller
// fills it once per routing decision from the session, its entry context, the buyer and the shop; the
// package never reads live state. Strings the buyer typed (FirstMessage) should be cut to a few hundred
// bytes by the caller: evaluation cost grows with the data.
type Session struct {
	// Kind is presale, aftersale or unknown.
	Kind string `expr:"kind" json:"kind"`
	// Product is the product page the buyer came from, if any.
	Product Product `expr:"product" json:"product"`
	// Order is the order the buyer asks about, if any.
	Order Order `expr:"order" json:"order"`
	// Buyer describes the buyer as the shop knows them.
	Buyer Buyer `expr:"buyer" json:"buyer"`
	// EntryPage is the page the widget was opened on.
	EntryPage string `expr:"entry_page" json:"entry_page"`
	// FirstMessage is the text of the buyer's first message.
	FirstMessage string `expr:"first_message" json:"first_message"`
	// Language is the buyer's language tag, e.g. "zh-CN", "en".
	Language string `expr:"language" json:"language"`
	// Time is the shop's local wall clock when the decision is made.
	Time Clock `expr:"time" json:"time"`
	// InBusinessHours reports whether Time is inside the shop's business hours.
	InBusinessHours bool `expr:"in_business_hours" json:"in_business_hours"`
	// QueueLength is how many sessions of the shop are waiting for an agent.
	QueueLength int `expr:"queue_length" json:"queue_length"`
}

// Product is the product context of a session: session.product.id, session.product.category.
type Product struct {
	ID       string `expr:"id" json:"id"`
	Name     string `expr:"name" json:"name"`
	Category string `expr:"category" json:"category"`
}

// Order is the order context of a session: session.order.id, session.order.status.
type Order struct {
	ID     string `expr:"id" json:"id"`
	Status string `expr:"status" json:"status"`
}

// Buyer is what rules may know of the buyer: session.buyer.tier, session.buyer.tags.
type Buyer struct {
	Tier      string   `expr:"tier" json:"tier"`
	Tags      []string `expr:"tags" json:"tags"`
	Anonymous bool     `expr:"anonymous" json:"anonymous"`
}

// Clock is a wall-clock reading in the shop's time zone: session.time.hour (0–23), session.time.minute
// (0–59), session.time.weekday (0 Sunday … 6 Saturday, as Go's time.Weekday). Time comes from the
// environment, never from a builtin, so an evaluation is reproducible.
type Clock struct {
	Hour    int `expr:"hour" json:"hour"`
	Minute  int `expr:"minute" json:"minute"`
	Weekday int `expr:"weekday" json:"weekday"`
}

// NewClock reads t on the wall clock of loc (UTC when loc is nil).
func NewClock(t time.Time, loc *time.Location) Clock {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	return Clock{Hour: t.Hour(), Minute: t.Minute(), Weekday: int(t.Weekday())}
}

// Agent is what a target or score expression sees of one candidate agent, as `agent`.
type Agent struct {
	// ID is the staff id.
	ID int64 `expr:"id" json:"id"`
	// Status is online, busy, away or offline.
	Status string `expr:"status" json:"status"`
	// Load is the capacity units the agent holds now.
	Load int `expr:"load" json:"load"`
	// Capacity is the most units the agent may hold.
	Capacity int `expr:"capacity" json:"capacity"`
	// Groups are the agent's groups, e.g. "presale".
	Groups []string `expr:"groups" json:"groups"`
	// Skills are free-form skill tags, e.g. a product category or a language.
	Skills []string `expr:"skills" json:"skills"`
	// IdleSeconds is how long the agent has had no new session.
	IdleSeconds int `expr:"idle_seconds" json:"idle_seconds"`
	// LastAgent reports whether this agent served this buyer's previous session.
	LastAgent bool `expr:"last_agent" json:"last_agent"`
	// OnDuty reports whether the agent's shift covers the current time.
	OnDuty bool `expr:"on_duty" json:"on_duty"`
}

// sessionEnv is the environment of when and weight expressions: the session only.
type sessionEnv struct {
	Session *Session `expr:"session"`
}

// agentEnv is the environment of target and score expressions: the session and one agent.
type agentEnv struct {
	Session *Session `expr:"session"`
	Agent   *Agent   `expr:"agent"`
}

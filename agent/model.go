package agent

import "time"

// Role is what a staff member may do in their shop.
type Role string

// Staff roles.
const (
	RoleAgent   Role = "agent"
	RoleManager Role = "manager"
)

// Status is a staff member's availability for new sessions.
type Status string

// Statuses. Busy (挂起) keeps current sessions and takes no new ones.
const (
	StatusOnline  Status = "online"
	StatusBusy    Status = "busy"
	StatusAway    Status = "away"
	StatusOffline Status = "offline"
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusOnline, StatusBusy, StatusAway, StatusOffline:
		return true
	}
	return false
}

// Settings are a shop's adjustable policies.
type Settings struct {
	// BusinessHours is "09:00-22:00" in the shop's time zone; empty means always open.
	BusinessHours string `json:"business_hours,omitempty"`
	// IdleTimeoutSeconds closes a session with no message for that long (0: the server default).
	IdleTimeoutSeconds int `json:"idle_timeout_seconds,omitempty"`
	// RetentionDays keeps history that many days (0: the default of three years).
	RetentionDays int `json:"retention_days,omitempty"`
	// QuickReplies are canned answers agents search with "/".
	QuickReplies []string `json:"quick_replies,omitempty"`
	// SearchOwnSessionsOnly limits an agent's history search to the sessions assigned to them;
	// managers always search the whole shop.
	SearchOwnSessionsOnly bool `json:"search_own_sessions_only,omitempty"`
}

// Shop is a tenant. Nothing crosses shops.
type Shop struct {
	ID             int64     `json:"id" gorm:"primaryKey;autoIncrement"`
	Slug           string    `json:"slug"`
	Name           string    `json:"name"`
	TimeZone       string    `json:"time_zone"`
	AllowedOrigins []string  `json:"allowed_origins" gorm:"serializer:json"`
	BuyerSecrets   []string  `json:"-" gorm:"serializer:json"`
	Settings       Settings  `json:"settings" gorm:"serializer:json"`
	CreatedAt      time.Time `json:"created_at"`
}

// Staff is an agent or a manager of one shop.
type Staff struct {
	ID           int64     `json:"id" gorm:"primaryKey;autoIncrement"`
	ShopID       int64     `json:"shop_id"`
	Username     string    `json:"username"`
	DisplayName  string    `json:"display_name"`
	PasswordHash string    `json:"-"`
	Role         Role      `json:"role"`
	Groups       []string  `json:"groups" gorm:"serializer:json"`
	Skills       []string  `json:"skills" gorm:"serializer:json"`
	Capacity     int       `json:"capacity"`
	Status       Status    `json:"status"`
	Active       bool      `json:"active"`
	CreatedAt    time.Time `json:"created_at"`
}

// TableName is fixed: gorm would pluralise "staff" oddly.
func (Staff) TableName() string { return "staff" }

// Buyer is an end customer of a shop, known by the shop's own id or as an anonymous visitor.
type Buyer struct {
	ID         int64     `json:"id" gorm:"primaryKey;autoIncrement"`
	ShopID     int64     `json:"shop_id"`
	ExternalID string    `json:"external_id"`
	Name       string    `json:"name"`
	Tier       string    `json:"tier"`
	Tags       []string  `json:"tags" gorm:"serializer:json"`
	Anonymous  bool      `json:"anonymous"`
	CreatedAt  time.Time `json:"created_at"`
}

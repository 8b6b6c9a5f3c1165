package session

import (
	"strconv"
	"time"
)

// Kind classifies a service session by what the buyer came for.
type Kind string

// Session kinds, derived from the entry context of the conversation.
const (
	KindPreSale   Kind = "presale"
	KindAfterSale Kind = "aftersale"
	KindUnknown   Kind = "unknown"
)

// EntryContext is where the buyer started chatting from: a product page, an order page or neither.
type EntryContext struct {
	Page        string `json:"page,omitempty"`
	ProductID   string `json:"product_id,omitempty"`
	ProductName string `json:"product_name,omitempty"`
	Category    string `json:"category,omitempty"`
	OrderID     string `json:"order_id,omitempty"`
	OrderStatus string `json:"order_status,omitempty"`
	Language    string `json:"language,omitempty"`
}

// Kind returns pre-sale for a product context, after-sale for an order context, unknown otherwise.
func (c EntryContext) Kind() Kind {
	switch {
	case c.OrderID != "":
		return KindAfterSale
	case c.ProductID != "":
		return KindPreSale
	}
	return KindUnknown
}

// Conversation is the long-lived thread between one buyer and one shop.
type Conversation struct {
	ID        int64        `json:"id" gorm:"primaryKey;autoIncrement"`
	ShopID    int64        `json:"shop_id"`
	BuyerID   int64        `json:"buyer_id"`
	LastSeq   int64        `json:"last_seq"`
	Context   EntryContext `json:"context" gorm:"serializer:json"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// State is where a service session is in its life.
type State string

// Session states.
const (
	StateQueued State = "queued"
	StateOpen   State = "open"
	StateClosed State = "closed"
)

// Session is one service episode (接待) inside a conversation.
type Session struct {
	ID              int64        `json:"id" gorm:"primaryKey;autoIncrement"`
	ConversationID  int64        `json:"conversation_id"`
	ShopID          int64        `json:"shop_id"`
	BuyerID         int64        `json:"buyer_id"`
	Kind            Kind         `json:"kind"`
	Context         EntryContext `json:"context" gorm:"serializer:json"`
	State           State        `json:"state"`
	AgentID         int64        `json:"agent_id"`
	AssignedBy      string       `json:"assigned_by,omitempty"`
	FirstSeq        int64        `json:"first_seq"`
	OpenedAt        time.Time    `json:"opened_at"`
	AssignedAt      *time.Time   `json:"assigned_at,omitempty"`
	FirstResponseAt *time.Time   `json:"first_response_at,omitempty"`
	LastActivityAt  time.Time    `json:"last_activity_at"`
	ClosedAt        *time.Time   `json:"closed_at,omitempty"`
	ClosedBy        string       `json:"closed_by,omitempty"`
	Outcome         string       `json:"outcome,omitempty"`
	// Rating is the buyer's 1-5 satisfaction rating of the closed session, 0 until rated.
	Rating        int        `json:"rating,omitempty"`
	RatingComment string     `json:"rating_comment,omitempty"`
	RatedAt       *time.Time `json:"rated_at,omitempty"`
}

// TableName keeps the SQL name explicit: "sessions" means something else to most tools.
func (Session) TableName() string { return "service_sessions" }

// PartyKind says who wrote a message or reads a conversation.
type PartyKind string

// Party kinds.
const (
	PartyBuyer  PartyKind = "buyer"
	PartyStaff  PartyKind = "staff"
	PartySystem PartyKind = "system"
)

// Party identifies a buyer, a staff member or the system.
type Party struct {
	Kind PartyKind `json:"kind"`
	ID   int64     `json:"id"`
}

// Key is the party's reader key, used for unread counters and device routing: "b:12", "s:7".
func (p Party) Key() string {
	switch p.Kind {
	case PartyBuyer:
		return "b:" + strconv.FormatInt(p.ID, 10)
	case PartyStaff:
		return "s:" + strconv.FormatInt(p.ID, 10)
	}
	return "sys"
}

// BuyerParty returns the party of a buyer.
func BuyerParty(id int64) Party { return Party{Kind: PartyBuyer, ID: id} }

// StaffParty returns the party of a staff member.
func StaffParty(id int64) Party { return Party{Kind: PartyStaff, ID: id} }

// Body types of a message.
const (
	TypeText    = "text"
	TypeImage   = "image"
	TypeFile    = "file"
	TypeProduct = "product"
	TypeOrder   = "order"
	TypeSystem  = "system"
	TypeRecall  = "recall"
)

// Card is a product or order card, as the shop describes it.
type Card struct {
	ID     string `json:"id"`
	Title  string `json:"title,omitempty"`
	Price  string `json:"price,omitempty"`
	Image  string `json:"image,omitempty"`
	Status string `json:"status,omitempty"`
	URL    string `json:"url,omitempty"`
}

// Body is the content of a message; which fields are set depends on Type.
type Body struct {
	Type      string `json:"type"`
	Text      string `json:"text,omitempty"`
	BlobKey   string `json:"blob_key,omitempty"`
	Name      string `json:"name,omitempty"`
	MIME      string `json:"mime,omitempty"`
	Size      int64  `json:"size,omitempty"`
	Card      *Card  `json:"card,omitempty"`
	RecallSeq int64  `json:"recall_seq,omitempty"`
	Event     string `json:"event,omitempty"`
}

// Message is one entry in a conversation, identified by (ConversationID, Seq).
type Message struct {
	ConversationID int64     `json:"conversation_id" gorm:"primaryKey;autoIncrement:false"`
	Seq            int64     `json:"seq" gorm:"primaryKey;autoIncrement:false"`
	ClientMsgID    string    `json:"client_msg_id"`
	ShopID         int64     `json:"shop_id"`
	SenderKind     PartyKind `json:"sender_kind"`
	SenderID       int64     `json:"sender_id"`
	Body           Body      `json:"body" gorm:"serializer:json"`
	CreatedAt      time.Time `json:"server_time"`
	// Recalled is set on reads for managers: a later recall message hides this one from buyers and agents.
	Recalled bool `json:"recalled,omitempty" gorm:"-"`
}

// Sender returns the party that wrote the message.
func (m Message) Sender() Party { return Party{Kind: m.SenderKind, ID: m.SenderID} }

package routing

import (
	"context"
	"testing"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

type nopPusher struct{}

func (nopPusher) Push(context.Context, []session.Party, session.Event) {}

type staffNames struct{ store *agent.Store }

func (d staffNames) StaffName(ctx context.Context, shopID, id int64) (string, error) {
	st, err := d.store.Staff(ctx, shopID, id)
	if err != nil {
		return "", err
	}
	return st.DisplayName, nil
}

// TestWithSessionService wires the engine to the real session service and agent store on SQLite: a
// buyer's first message opens a session that the engine routes; closing it drains the queue.
func TestWithSessionService(t *testing.T) {
	ctx := context.Background()
	db := testdb.SQLite(t)
	agents := agent.NewStore(db)
	shop := &agent.Shop{Slug: "demo", Name: "Demo", TimeZone: "Asia/Shanghai", AllowedOrigins: []string{}, BuyerSecrets: []string{"s"}}
	if err := agents.CreateShop(ctx, shop); err != nil {
		t.Fatal(err)
	}
	staff := func(name string, groups ...string) *agent.Staff {
		st := &agent.Staff{ShopID: shop.ID, Username: name, DisplayName: name, PasswordHash: "x", Role: agent.RoleAgent,
			Groups: groups, Skills: []string{}, Capacity: 1, Status: agent.StatusOnline, Active: true}
		if err := agents.CreateStaff(ctx, st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	pre, after := staff("pre", "presale"), staff("after", "aftersale")
	svc := &session.Service{Store: session.NewStore(db), Log: session.NewSQLLog(db), Unread: session.NewSQLUnread(db),
		Push: nopPusher{}, Directory: staffNames{agents}, Config: session.DefaultConfig()}
	store := NewStore(db)
	eng, err := New(Ports{Slots: NewMemorySlots(), Queue: NewMemoryQueue(), Store: store, Sessions: SessionPort{svc}, Directory: agents}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Router = eng
	v, err := store.SaveVersion(ctx, shop.ID, rules.RuleSet{
		Rules:   []rules.Rule{{Name: "refunds", When: `session.first_message contains "refund"`, Target: `"aftersale" in agent.groups`}},
		Default: rules.Rule{Name: "sales", Target: `"presale" in agent.groups`},
	}, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Publish(ctx, shop.ID, v.Number, 1, ""); err != nil {
		t.Fatal(err)
	}

	ask := func(buyerID int64, text string) *session.Session {
		t.Helper()
		c := session.Caller{Party: session.BuyerParty(buyerID), ShopID: shop.ID}
		conv, err := svc.StartConversation(ctx, c, session.EntryContext{ProductID: "p1", Category: "phone"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.Send(ctx, c, conv.ID, "m1", session.Body{Type: session.TypeText, Text: text}); err != nil {
			t.Fatal(err)
		}
		live, err := svc.Store.LiveSession(ctx, conv.ID)
		if err != nil || live == nil {
			t.Fatalf("live session: %+v %v", live, err)
		}
		return live
	}
	s1 := ask(1, "I want a refund")
	s2 := ask(2, "is it waterproof?")
	s3 := ask(3, "and in blue?")
	if s1.AgentID != after.ID || s2.AgentID != pre.ID || s3.State != session.StateQueued {
		t.Fatalf("sessions %+v\n%+v\n%+v", s1, s2, s3)
	}
	if s1.AssignedBy != AssignedByRouting {
		t.Fatalf("assigned by %q", s1.AssignedBy)
	}
	agentCaller := session.Caller{Party: session.StaffParty(pre.ID), ShopID: shop.ID}
	if _, err := svc.Close(ctx, agentCaller, s2.ID, "solved"); err != nil {
		t.Fatal(err)
	}
	s3, err = svc.Store.Session(ctx, s3.ID)
	if err != nil || s3.AgentID != pre.ID || s3.State != session.StateOpen || s3.AssignedBy != AssignedByQueue {
		t.Fatalf("queued session after the close: %+v %v", s3, err)
	}
	if err := eng.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	trs, err := store.Traces(ctx, shop.ID, s1.ID)
	if err != nil || len(trs) != 1 || trs[0].RuleName != "refunds" {
		t.Fatalf("traces %+v %v", trs, err)
	}
}

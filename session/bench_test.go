package session

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// Benchmarks of the send path in production mode, against the test Redis and MariaDB (see
// docs/BENCHMARKS.md for the figures):
//
//	go test -run '^$' -bench . -benchmem ./session/
//
// The parallel variants run 16 goroutines per GOMAXPROCS, each writing into a conversation of its
// own, as the devices of a busy node do; that is where the autopipelined Redis calls share round trips.

// nopPusher is a Pusher that pushes nowhere, so that Send is measured without the gateway.
type nopPusher struct{}

func (nopPusher) Push(context.Context, []Party, Event) {}

// benchParallelism is the goroutines per GOMAXPROCS of the parallel variants.
const benchParallelism = 16

// benchConv hands out conversation ids: every goroutine of every benchmark writes to its own.
var benchConv atomic.Int64

func benchText(conv int64, n int) Message {
	return Message{ConversationID: conv, ClientMsgID: "b" + strconv.Itoa(n), ShopID: 1, SenderKind: PartyBuyer, SenderID: 1,
		Body: Body{Type: TypeText, Text: "bench message"}, CreatedAt: time.Now().UTC()}
}

func BenchmarkRedisLogAppend(b *testing.B) {
	rdb, prefix := testdb.Redis(b)
	l := NewRedisLog(rdb, prefix, NewSQLLog(testdb.MySQL(b)))
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		conv := 1_000_000 + benchConv.Add(1)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, dup, err := l.Append(ctx, benchText(conv, i)); err != nil || dup {
				b.Fatalf("append: dup=%v err=%v", dup, err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(benchParallelism)
		b.RunParallel(func(pb *testing.PB) {
			conv := 1_000_000 + benchConv.Add(1)
			for i := 0; pb.Next(); i++ {
				if _, dup, err := l.Append(ctx, benchText(conv, i)); err != nil || dup {
					b.Errorf("append: dup=%v err=%v", dup, err)
					return
				}
			}
		})
	})
}

func BenchmarkRedisUnreadAdd(b *testing.B) {
	rdb, prefix := testdb.Redis(b)
	u := NewRedisUnread(rdb, prefix)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		reader := StaffParty(benchConv.Add(1)).Key()
		b.ReportAllocs()
		for i := int64(1); b.Loop(); i++ {
			if _, err := u.Add(ctx, reader, 1, i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(benchParallelism)
		b.RunParallel(func(pb *testing.PB) {
			reader := StaffParty(benchConv.Add(1)).Key()
			for i := int64(1); pb.Next(); i++ {
				if _, err := u.Add(ctx, reader, 1, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkServiceSend is one buyer message through Service.Send in an assigned conversation: the
// append script, the agent's unread bump, and two pushes to a Pusher that does nothing.
func BenchmarkServiceSend(b *testing.B) {
	db := testdb.MySQL(b)
	rdb, prefix := testdb.Redis(b)
	store := NewStore(db)
	s := &Service{Store: store, Log: NewRedisLog(rdb, prefix, NewSQLLog(db)), Unread: NewRedisUnread(rdb, prefix),
		Push: nopPusher{}, Config: DefaultConfig()}
	ctx := context.Background()
	// assigned returns a buyer and their conversation, whose live session belongs to agent 1.
	assigned := func(b *testing.B) (Caller, int64) {
		buyer := benchConv.Add(1)
		conv, _, err := store.FindOrCreateConversation(ctx, 1, buyer, EntryContext{ProductID: "p1"})
		if err != nil {
			b.Fatal(err)
		}
		ss, _, err := store.OpenSession(ctx, conv, 1, time.Now())
		if err == nil {
			_, err = store.AssignSession(ctx, ss, 1, "manual", time.Now())
		}
		if err != nil {
			b.Fatal(err)
		}
		return Caller{Party: BuyerParty(buyer), ShopID: 1}, conv.ID
	}
	body := Body{Type: TypeText, Text: "bench message"}
	b.Run("serial", func(b *testing.B) {
		c, conv := assigned(b)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, _, err := s.Send(ctx, c, conv, "s"+strconv.Itoa(i), body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		callers := make(chan [2]any, 4*benchParallelism)
		for range cap(callers) {
			c, conv := assigned(b)
			callers <- [2]any{c, conv}
		}
		b.ReportAllocs()
		b.SetParallelism(benchParallelism)
		b.ResetTimer()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			who := <-callers
			defer func() { callers <- who }()
			c, conv := who[0].(Caller), who[1].(int64)
			for pb.Next() {
				if _, _, err := s.Send(ctx, c, conv, "p"+strconv.FormatInt(n.Add(1), 10), body); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkRedisLogFlush moves what 100 conversations wrote in one flush interval (20 messages each)
// to the warm store; ns/op is per flushed message.
func BenchmarkRedisLogFlush(b *testing.B) {
	rdb, prefix := testdb.Redis(b)
	l := NewRedisLog(rdb, prefix, NewSQLLog(testdb.MySQL(b)))
	ctx := context.Background()
	convs := make([]int64, 100)
	for i := range convs {
		convs[i] = 1_000_000 + benchConv.Add(1)
	}
	const perConv = 20
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for _, conv := range convs {
			for range perConv {
				if _, _, err := l.Append(ctx, benchText(conv, int(benchConv.Add(1)))); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
		st, err := l.Flush(ctx, 5000) // the budget of the app's flush loop
		if err != nil || st.Messages != len(convs)*perConv {
			b.Fatalf("flush: %+v %v", st, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(convs)*perConv), "ns/msg")
}

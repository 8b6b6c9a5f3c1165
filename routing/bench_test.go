package routing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/agent"
	"github.com/shopdesk/shopdesk/migrations/testdb"
	"github.com/shopdesk/shopdesk/rules"
	"github.com/shopdesk/shopdesk/session"
)

// benchSessions is a lock-light session side for the benchmark: sessions live in a sync.Map.
type benchSessions struct {
	byID sync.Map
	next atomic.Int64
}

func (b *benchSessions) Session(_ context.Context, id int64) (*session.Session, error) {
	v, ok := b.byID.Load(id)
	if !ok {
		return nil, session.Errorf(session.ENOTFOUND, "session %d not found", id)
	}
	cp := *v.(*session.Session)
	return &cp, nil
}

func (b *benchSessions) Sessions(context.Context, session.SessionFilter) ([]session.Session, error) {
	return nil, nil
}

func (b *benchSessions) AssignTo(_ context.Context, cur *session.Session, agentID int64, by string) (*session.Session, error) {
	sessionID := cur.ID
	v, ok := b.byID.Load(sessionID)
	if !ok {
		return nil, session.Errorf(session.ENOTFOUND, "session %d not found", sessionID)
	}
	s := *v.(*session.Session)
	now := time.Now()
	s.AgentID, s.State, s.AssignedBy, s.AssignedAt = agentID, session.StateOpen, by, &now
	b.byID.Store(sessionID, &s)
	return &s, nil
}

func (b *benchSessions) FirstMessage(context.Context, *session.Session) (string, error) {
	return "", nil
}

// redisCPU is the CPU time the Redis server has used (INFO cpu), 0 when unknown.
func redisCPU(ctx context.Context, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// benchRules is the benchmark's 20-rule set: rule i takes category c<i> to group g<i%10>, least load.
func benchRules() rules.RuleSet {
	rs := rules.RuleSet{Default: rules.Rule{Name: "any", Target: `agent.status == "online"`}}
	for i := 0; i < 20; i++ {
		rs.Rules = append(rs.Rules, rules.Rule{Name: fmt.Sprintf("r%d", i),
			When:   fmt.Sprintf(`session.product.category == "c%d"`, i),
			Target: fmt.Sprintf(`"g%d" in agent.groups`, i%10),
			Prefer: []rules.Preference{rules.PreferLeastLoadRatio}})
	}
	return rs
}

// BenchmarkAssign routes sessions of one shop with 1,000 online agents under benchRules, with slots and
// queue in Redis: each operation opens a session (match, filter, order, atomic claim, assign) and closes
// it (release, queue removal). It reports the assignments per second and the 99th-percentile latency
// of an assignment (Opened), and replays the claim log to check that no claim exceeded a capacity.
// Sub-benchmark traces=sqlite writes every trace to SQLite in batches, as the embedded mode does;
// traces=off drops them, to show what persisting them costs on the same cores.
func BenchmarkAssign(b *testing.B) {
	b.Run("traces=sqlite", func(b *testing.B) { benchAssign(b, true) })
	b.Run("traces=off", func(b *testing.B) { benchAssign(b, false) })
}

func benchAssign(b *testing.B, traces bool) {
	_, prefix := testdb.Redis(b)
	rdb := redis.NewClient(&redis.Options{Addr: testdb.RedisAddr(), PoolSize: 64})
	b.Cleanup(func() { rdb.Close() })
	slots := NewRedisSlots(rdb, prefix)
	slots.LogMax = -1
	queue := NewRedisQueue(rdb, prefix)
	store := NewStore(testdb.SQLite(b))
	dir := newFakeDir()
	dir.addShop(1)
	for j := int64(1); j <= 1000; j++ {
		dir.add(agent.Staff{ID: j, ShopID: 1, Status: agent.StatusOnline, Capacity: 10, Groups: []string{fmt.Sprintf("g%d", j%10)}})
	}
	ctx := context.Background()
	v, err := store.SaveVersion(ctx, 1, benchRules(), 1, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Publish(ctx, 1, v.Number, 1, ""); err != nil {
		b.Fatal(err)
	}
	sess := &benchSessions{}
	cfg := Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if !traces {
		cfg.TraceBuffer = 1
	}
	eng, err := New(Ports{Slots: slots, Queue: queue, Store: store, Sessions: sess, Directory: dir}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		if traces {
			_ = eng.Run(runCtx)
		}
		close(done)
	}()
	categories := make([]string, 20)
	for i := range categories {
		categories[i] = fmt.Sprintf("c%d", i)
	}

	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	start, cpu0, rcpu0 := time.Now(), processCPU(), redisCPU(ctx, rdb)
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			id := sess.next.Add(1)
			now := time.Now()
			s := &session.Session{ID: id, ConversationID: id, ShopID: 1, BuyerID: id, Kind: session.KindPreSale,
				Context: session.EntryContext{ProductID: "p", Category: categories[id%20]}, State: session.StateQueued,
				OpenedAt: now, LastActivityAt: now}
			sess.byID.Store(id, s)
			t0 := time.Now()
			if err := eng.Opened(ctx, s); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
			cur, _ := sess.Session(ctx, id)
			cur.State = session.StateClosed
			sess.byID.Delete(id)
			if err := eng.Closed(ctx, cur); err != nil {
				b.Error(err)
				return
			}
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed, cpu, rcpu := time.Since(start), processCPU()-cpu0, redisCPU(ctx, rdb)-rcpu0
	b.StopTimer()
	stop()
	<-done

	st := eng.Stats()
	if st.Assigned != int64(b.N) || st.Queued != 0 {
		b.Fatalf("%d operations: %+v", b.N, st)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99 := lat[len(lat)*99/100]
	log, err := slots.ClaimLog(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	r := ReplayClaims(log)
	if r.OverCapacity != 0 || r.Mismatches != 0 || r.Claims != b.N {
		b.Fatalf("replay %+v after %d operations", r, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "assignments/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(r.OverCapacity), "over_capacity")
	// CPU per operation, of this process and of the Redis server (which other processes may share),
	// tells what the cores can do whatever else runs on them.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_µs/op")
	b.ReportMetric(float64(rcpu.Microseconds())/float64(b.N), "redis_cpu_µs/op")
	if traces {
		b.ReportMetric(float64(st.TracesDropped), "traces_dropped")
	}
}

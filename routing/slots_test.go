package routing

import (
	"context"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// slotsImpl is one Slots implementation under test; nodes returns n instances sharing one store, as n
// nodes would (in process, the one instance).
type slotsImpl struct {
	name  string
	nodes func(t *testing.T, n int) []Slots
}

func slotsImpls() []slotsImpl {
	return []slotsImpl{
		{name: "memory", nodes: func(t *testing.T, n int) []Slots {
			s := NewMemorySlots()
			out := make([]Slots, n)
			for i := range out {
				out[i] = s
			}
			return out
		}},
		{name: "redis", nodes: func(t *testing.T, n int) []Slots {
			_, prefix := testdb.Redis(t)
			out := make([]Slots, n)
			for i := range out {
				// One client per node, as separate processes would have.
				rdb := redis.NewClient(&redis.Options{Addr: testdb.RedisAddr(), PoolSize: 16})
				t.Cleanup(func() { rdb.Close() })
				out[i] = NewRedisSlots(rdb, prefix)
			}
			return out
		}},
	}
}

func TestSlotsConformance(t *testing.T) {
	for _, impl := range slotsImpls() {
		t.Run(impl.name, func(t *testing.T) {
			ctx := context.Background()
			mustClaim := func(t *testing.T, s Slots, shop, agent, sess int64, units, capacity int, want bool) {
				t.Helper()
				ok, err := s.Claim(ctx, shop, agent, sess, units, capacity)
				if err != nil || ok != want {
					t.Fatalf("Claim(agent %d, session %d, %d of %d) = %v, %v; want %v", agent, sess, units, capacity, ok, err, want)
				}
			}
			loadOf := func(t *testing.T, s Slots, shop, agent int64) int {
				t.Helper()
				m, err := s.Load(ctx, shop, []int64{agent})
				if err != nil {
					t.Fatal(err)
				}
				return m[agent]
			}

			t.Run("capacity, idempotence, release", func(t *testing.T) {
				s := impl.nodes(t, 1)[0]
				mustClaim(t, s, 1, 7, 100, 1, 2, true)
				mustClaim(t, s, 1, 7, 100, 1, 2, true) // the same session counts once
				mustClaim(t, s, 1, 7, 101, 1, 2, true)
				mustClaim(t, s, 1, 7, 102, 1, 2, false)
				if n := loadOf(t, s, 1, 7); n != 2 {
					t.Fatalf("load %d, want 2", n)
				}
				mustClaim(t, s, 1, 8, 103, 3, 2, false) // more units than the capacity
				if _, ok, err := s.Release(ctx, 1, 8, 100); err != nil || ok {
					t.Fatalf("release by the wrong agent: %v %v", ok, err)
				}
				if h, ok, err := s.Release(ctx, 1, 7, 100); err != nil || !ok || h != (Holding{AgentID: 7, Units: 1}) {
					t.Fatalf("release: %+v %v %v", h, ok, err)
				}
				if _, ok, err := s.Release(ctx, 1, 7, 100); err != nil || ok {
					t.Fatalf("second release: %v %v", ok, err)
				}
				mustClaim(t, s, 1, 7, 102, 1, 2, true)
				if _, ok, err := s.Release(ctx, 1, 0, 101); err != nil || !ok {
					t.Fatalf("release by anyone: %v %v", ok, err)
				}
				if h, ok, err := s.Held(ctx, 1, 102); err != nil || !ok || h.AgentID != 7 || h.Units != 1 || h.Forced {
					t.Fatalf("Held = %+v %v %v", h, ok, err)
				}
				if _, ok, err := s.Held(ctx, 1, 101); err != nil || ok {
					t.Fatalf("Held of a released session = %v %v", ok, err)
				}
				if hs, err := s.Holdings(ctx, 1); err != nil || len(hs) != 1 || hs[102] != (Holding{AgentID: 7, Units: 1}) {
					t.Fatalf("Holdings = %+v %v", hs, err)
				}
				m, err := s.Load(ctx, 1, []int64{7, 8, 9})
				if err != nil || len(m) != 1 || m[7] != 1 {
					t.Fatalf("Load = %v %v", m, err)
				}
				mustClaim(t, s, 1, 9, 104, 2, 2, true)
				if m, err := s.Load(ctx, 1, nil); err != nil || len(m) != 2 || m[7] != 1 || m[9] != 2 {
					t.Fatalf("Load(nil) = %v %v", m, err)
				}
			})

			t.Run("move", func(t *testing.T) {
				s := impl.nodes(t, 1)[0]
				mustClaim(t, s, 1, 1, 10, 2, 3, true)
				mustClaim(t, s, 1, 2, 11, 1, 1, true)
				mustClaim(t, s, 1, 2, 10, 2, 3, true) // agent 2 has 1 of 3: 2 more fit; the slot moves
				if a, b := loadOf(t, s, 1, 1), loadOf(t, s, 1, 2); a != 0 || b != 3 {
					t.Fatalf("loads after move %d, %d", a, b)
				}
				mustClaim(t, s, 1, 3, 10, 2, 1, false) // does not fit: stays with agent 2
				if h, _, _ := s.Held(ctx, 1, 10); h.AgentID != 2 {
					t.Fatalf("held by %d after a failed move", h.AgentID)
				}
			})

			t.Run("force claim and shops apart", func(t *testing.T) {
				s := impl.nodes(t, 1)[0]
				mustClaim(t, s, 1, 5, 1, 1, 1, true)
				over, err := s.ForceClaim(ctx, 1, 5, 2, 1, 1)
				if err != nil || !over {
					t.Fatalf("ForceClaim = %v, %v; want over", over, err)
				}
				if h, _, _ := s.Held(ctx, 1, 2); !h.Forced {
					t.Fatalf("forced claim not recorded: %+v", h)
				}
				if h, ok, err := s.Release(ctx, 1, 5, 2); err != nil || !ok || !h.Forced {
					t.Fatalf("release of a forced claim: %+v %v %v", h, ok, err)
				}
				if _, err := s.ForceClaim(ctx, 1, 5, 2, 1, 1); err != nil {
					t.Fatal(err)
				}
				mustClaim(t, s, 2, 5, 3, 1, 1, true) // agent 5 of shop 2 is another ledger
				if n := loadOf(t, s, 2, 5); n != 1 {
					t.Fatalf("shop 2 load %d", n)
				}
				log, err := s.ClaimLog(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				r := ReplayClaims(log)
				if r.Claims != 1 || r.Forced != 2 || r.OverCapacity != 0 || r.ForcedOver != 2 || r.Mismatches != 0 {
					t.Fatalf("replay %+v of %+v", r, log)
				}
			})

			t.Run("replay", func(t *testing.T) {
				s := impl.nodes(t, 1)[0]
				rng := rand.New(rand.NewSource(1))
				for i := 0; i < 300; i++ {
					agent, sess := int64(rng.Intn(4)+1), int64(rng.Intn(30)+1)
					if rng.Intn(3) == 0 {
						if _, _, err := s.Release(ctx, 1, 0, sess); err != nil {
							t.Fatal(err)
						}
						continue
					}
					if _, err := s.Claim(ctx, 1, agent, sess, rng.Intn(2)+1, 3); err != nil {
						t.Fatal(err)
					}
				}
				log, err := s.ClaimLog(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				r := ReplayClaims(log)
				if r.OverCapacity != 0 || r.Mismatches != 0 || r.MaxLoad > 3 || r.Claims == 0 || r.Releases == 0 {
					t.Fatalf("replay %+v", r)
				}
			})

			t.Run("nodes race for the last slots", func(t *testing.T) {
				const nodes, perNode, agents, capacity = 3, 50, 3, 2
				ss := impl.nodes(t, nodes)
				// The agents already hold all but their last slot.
				for a := int64(1); a <= agents; a++ {
					mustClaim(t, ss[0], 9, a, 1000+a, capacity-1, capacity, true)
				}
				var won atomic.Int64
				var wg sync.WaitGroup
				errs := make(chan error, nodes*perNode)
				for n := 0; n < nodes; n++ {
					for g := 0; g < perNode; g++ {
						wg.Add(1)
						go func(s Slots, sess int64) {
							defer wg.Done()
							for a := int64(1); a <= agents; a++ {
								ok, err := s.Claim(ctx, 9, a, sess, 1, capacity)
								if err != nil {
									errs <- err
									return
								}
								if ok {
									won.Add(1)
									return
								}
							}
						}(ss[n], int64(n*perNode+g+1))
					}
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				if won.Load() != agents {
					t.Fatalf("%d sessions won the %d last slots", won.Load(), agents)
				}
				// And again with releases racing claims.
				var wg2 sync.WaitGroup
				for n := 0; n < nodes; n++ {
					for g := 0; g < perNode; g++ {
						wg2.Add(1)
						go func(s Slots, seed int64) {
							defer wg2.Done()
							rng := rand.New(rand.NewSource(seed))
							for i := 0; i < 10; i++ {
								sess := int64(rng.Intn(40) + 1)
								if rng.Intn(2) == 0 {
									_, _, _ = s.Release(ctx, 9, 0, sess)
								} else {
									_, _ = s.Claim(ctx, 9, int64(rng.Intn(agents)+1), sess, 1, capacity)
								}
							}
						}(ss[n], int64(n*1000+g))
					}
				}
				wg2.Wait()
				log, err := ss[1].ClaimLog(ctx, 9)
				if err != nil {
					t.Fatal(err)
				}
				r := ReplayClaims(log)
				if r.OverCapacity != 0 || r.Mismatches != 0 || r.MaxLoad > capacity {
					t.Fatalf("replay after the race: %+v", r)
				}
				t.Logf("%s: %d log events, replay %+v", impl.name, len(log), r)
				m, err := ss[2].Load(ctx, 9, []int64{1, 2, 3})
				if err != nil {
					t.Fatal(err)
				}
				for a, n := range m {
					if n > capacity {
						t.Fatalf("agent %d holds %d", a, n)
					}
				}
			})
		})
	}
}

func TestRedisSlotsKeys(t *testing.T) {
	rdb, prefix := testdb.Redis(t)
	s := NewRedisSlots(rdb, prefix)
	ctx := context.Background()
	if _, err := s.Claim(ctx, 42, 1, 1, 1, 1); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("keys %v", keys)
	}
	for _, k := range keys {
		if want := prefix + "{r:42}:"; len(k) <= len(want) || k[:len(want)] != want {
			t.Fatalf("key %q is not under %q", k, want)
		}
	}
	s.LogMax = 10
	for i := 0; i < 500; i++ {
		if _, err := s.Claim(ctx, 42, 2, int64(100+i), 1, 1000); err != nil {
			t.Fatal(err)
		}
	}
	if n := rdb.XLen(ctx, prefix+"{r:42}:claims").Val(); n > 200 {
		t.Fatalf("claim log not trimmed: %d entries", n)
	}
	if _, err := s.Claim(ctx, 42, 1, 1, 0, 1); err == nil {
		t.Fatal("a claim of 0 units was accepted")
	}
}

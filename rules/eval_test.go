package rules

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func presale() *Session {
	return &Session{Kind: KindPreSale, Product: Product{ID: "p1", Category: "phone"}, Buyer: Buyer{Tier: "vip", Tags: []string{"new"}},
		Language: "zh-CN", Time: Clock{Hour: 10, Weekday: 1}, InBusinessHours: true}
}

func aftersale() *Session {
	return &Session{Kind: KindAfterSale, Order: Order{ID: "o1", Status: "shipped"}, Buyer: Buyer{Tier: "normal"}}
}

func unknown() *Session { return &Session{Kind: KindUnknown} }

var (
	pre     = &Agent{ID: 1, Status: StatusOnline, Capacity: 5, Groups: []string{"presale"}}
	after   = &Agent{ID: 2, Status: StatusOnline, Capacity: 5, Groups: []string{"aftersale"}}
	preAway = &Agent{ID: 3, Status: StatusAway, Capacity: 5, Groups: []string{"presale"}}
	plain   = &Agent{ID: 4, Status: StatusOnline, Capacity: 3}
	offline = &Agent{ID: 5, Status: StatusOffline, Capacity: 3, Groups: []string{"presale", "aftersale"}}
)

// eligible lists the ids of the agents rule i of c targets for s.
func eligible(t *testing.T, c *CompiledRuleSet, i int, s *Session, agents ...*Agent) []int64 {
	t.Helper()
	var ids []int64
	for _, a := range agents {
		ok, err := c.Rule(i).Target(s, a)
		if err != nil {
			t.Fatalf("target of rule %d over agent %d: %v", i, a.ID, err)
		}
		if ok {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

func TestDefaultRuleSetRoutes(t *testing.T) {
	c, err := Compile(DefaultRuleSet())
	if err != nil {
		t.Fatal(err)
	}
	all := []*Agent{pre, after, preAway, plain, offline}
	tests := []struct {
		name    string
		session *Session
		rule    int
		agents  []int64
	}{
		{"presale goes to the presale group", presale(), 0, []int64{1}},
		{"aftersale goes to the aftersale group", aftersale(), 1, []int64{2}},
		{"unknown goes to anyone online", unknown(), DefaultRule, []int64{1, 2, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i, err := c.Match(tt.session)
			if err != nil || i != tt.rule {
				t.Fatalf("Match = %d, %v; want %d", i, err, tt.rule)
			}
			if got := eligible(t, c, i, tt.session, all...); !equalIDs(got, tt.agents) {
				t.Errorf("eligible agents %v, want %v", got, tt.agents)
			}
			if w, err := c.Rule(i).Weight(tt.session); w != 1 || err != nil {
				t.Errorf("weight = %d, %v; want 1", w, err)
			}
			if p := c.Rule(i).Prefer(); len(p) != 2 || p[0] != PreferLastAgentFirst || p[1] != PreferLeastLoadRatio {
				t.Errorf("preferences %v", p)
			}
		})
	}
	// A pre-sale session no one in presale took escalates to the rules after 0, and so to the default.
	i, err := c.MatchFrom(presale(), 0+1)
	if err != nil || i != DefaultRule {
		t.Errorf("escalated presale: MatchFrom = %d, %v; want the default", i, err)
	}
	if c.Rule(0).EscalateAfter() != 2*time.Minute {
		t.Errorf("presale escalates after %v", c.Rule(0).EscalateAfter())
	}
	if i, _ := c.MatchFrom(aftersale(), 99); i != DefaultRule {
		t.Errorf("MatchFrom past the end = %d, want the default", i)
	}
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEvaluation(t *testing.T) {
	rs := RuleSet{
		Rules: []Rule{
			{
				Name:   "vip night",
				When:   `session.buyer.tier == "vip" && (session.time.hour >= 22 || !session.in_business_hours)`,
				Target: `agent.on_duty`,
			},
			{
				Name:   "phones",
				When:   `session.product.category == "phone"`,
				Target: `session.product.category in agent.skills && agent.load < agent.capacity`,
				Prefer: []Preference{PreferScore},
				Score:  `agent.idle_seconds / 60 - agent.load`,
				Weight: `session.buyer.tier == "vip" ? 2 : 1`,
			},
		},
		Default: Rule{Name: "d", Target: "true"},
	}
	c, err := Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	s := presale()
	if i, err := c.Match(s); i != 1 || err != nil {
		t.Fatalf("daytime vip phone: Match = %d, %v; want 1", i, err)
	}
	night := presale()
	night.Time.Hour = 23
	if i, _ := c.Match(night); i != 0 {
		t.Errorf("night vip: Match = %d, want 0", i)
	}
	r := c.Rule(1)
	skilled := &Agent{Skills: []string{"phone"}, Capacity: 2, Load: 1, IdleSeconds: 600}
	full := &Agent{Skills: []string{"phone"}, Capacity: 1, Load: 1}
	if ok, err := r.Target(s, skilled); !ok || err != nil {
		t.Errorf("skilled agent: %v, %v", ok, err)
	}
	if ok, err := r.Target(s, full); ok || err != nil {
		t.Errorf("full agent: %v, %v", ok, err)
	}
	if sc, err := r.Score(s, skilled); sc != 9 || err != nil {
		t.Errorf("score = %v, %v; want 9", sc, err)
	}
	if w, err := r.Weight(s); w != 2 || err != nil {
		t.Errorf("vip weight = %d, %v; want 2", w, err)
	}
	if w, err := r.Weight(aftersale()); w != 1 || err != nil {
		t.Errorf("normal weight = %d, %v; want 1", w, err)
	}
	if sc, err := c.Rule(0).Score(s, skilled); sc != 0 || err != nil {
		t.Errorf("score of a rule without one = %v, %v", sc, err)
	}
}

func TestEvaluationErrors(t *testing.T) {
	agentRule := func(target string) Rule {
		return Rule{Name: "r", When: "true", Target: target}
	}
	tests := []struct {
		name string
		rule Rule
		eval func(*CompiledRule) error
		msg  string
	}{
		{"integer division by zero", agentRule(`agent.load % agent.capacity == 0`),
			func(r *CompiledRule) error { _, err := r.Target(presale(), &Agent{}); return err }, "integer divide by zero"},
		{"index out of range", agentRule(`agent.groups[2] == "x"`),
			func(r *CompiledRule) error { _, err := r.Target(presale(), pre); return err }, "index out of range"},
		{"nil agent", agentRule(`agent.status == "online"`),
			func(r *CompiledRule) error { _, err := r.Target(presale(), nil); return err }, "no agent"},
		{"nil session", agentRule(`agent.status == "online"`),
			func(r *CompiledRule) error { _, err := r.Target(nil, pre); return err }, "no session"},
		{"memory budget", agentRule(`len(1..100000) > 0`),
			func(r *CompiledRule) error { _, err := r.Target(presale(), pre); return err }, "memory budget exceeded"},
		{"bad regexp from data", agentRule(`session.first_message matches agent.skills[0]`),
			func(r *CompiledRule) error {
				_, err := r.Target(presale(), &Agent{Skills: []string{"(unclosed"}})
				return err
			}, "missing closing )"},
		{"weight above 5", Rule{Name: "r", When: "true", Target: "true", Weight: `session.queue_length`},
			func(r *CompiledRule) error {
				s := presale()
				s.QueueLength = 9
				_, err := r.Weight(s)
				return err
			}, "weight 9 is out of range 1–5"},
		{"weight below 1", Rule{Name: "r", When: "true", Target: "true", Weight: `session.queue_length`},
			func(r *CompiledRule) error { _, err := r.Weight(presale()); return err }, "weight 0 is out of range 1–5"},
		{"score NaN from 0/0", Rule{Name: "r", When: "true", Target: "true", Prefer: []Preference{PreferScore}, Score: `agent.load / agent.capacity`},
			func(r *CompiledRule) error { _, err := r.Score(presale(), &Agent{}); return err }, "score is NaN"},
		{"score infinite", Rule{Name: "r", When: "true", Target: "true", Prefer: []Preference{PreferScore}, Score: `1 / agent.capacity`},
			func(r *CompiledRule) error { _, err := r.Score(presale(), &Agent{}); return err }, "score is +Inf"},
		{"when on odd data", Rule{Name: "r", When: `session.buyer.tags[0] == "vip"`, Target: "true"},
			func(r *CompiledRule) error { _, err := r.When(unknown()); return err }, "index out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(RuleSet{Rules: []Rule{tt.rule}, Default: Rule{Name: "d", Target: "true"}})
			if err != nil {
				t.Fatal(err)
			}
			var err2 error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("evaluation panicked: %v", p)
					}
				}()
				err2 = tt.eval(c.Rule(0))
			}()
			var ee *EvalError
			if !errors.As(err2, &ee) || ee.Rule != 0 || ee.RuleName != "r" {
				t.Fatalf("want an *EvalError of rule 0, got %v", err2)
			}
			if !strings.Contains(err2.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err2, tt.msg)
			}
		})
	}
}

func TestMatchSkipsFailingRules(t *testing.T) {
	c, err := Compile(RuleSet{
		Rules: []Rule{
			{Name: "tagged", When: `session.buyer.tags[0] == "vip"`, Target: "true"},
			{Name: "odd queue", When: `session.queue_length % (session.queue_length - 3) == 0`, Target: "true"},
			{Name: "presale", When: `session.kind == "presale"`, Target: "true"},
		},
		Default: Rule{Name: "d", Target: "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{Kind: KindPreSale, QueueLength: 3}
	i, err := c.Match(s)
	if i != 2 {
		t.Fatalf("Match = %d, want 2 after skipping the failing rules", i)
	}
	var errs EvalErrors
	if !errors.As(err, &errs) || len(errs) != 2 || errs[0].Rule != 0 || errs[1].Rule != 1 || errs[1].Field != FieldWhen {
		t.Fatalf("want EvalErrors for rules 0 and 1, got %v", err)
	}
	s.Buyer.Tags = []string{"vip"}
	if i, err := c.Match(s); i != 0 || err != nil {
		t.Errorf("Match = %d, %v; want 0 and no error", i, err)
	}
}

// TestConcurrentEvaluation runs one compiled set from many goroutines; -race checks the VM pool.
func TestConcurrentEvaluation(t *testing.T) {
	c, err := Compile(DefaultRuleSet())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; n < 500; n++ {
				s, want := presale(), []int64{1}
				if (g+n)%2 == 1 {
					s, want = aftersale(), []int64{2}
				}
				i, err := c.Match(s)
				if err != nil {
					t.Error(err)
					return
				}
				var got []int64
				for _, a := range []*Agent{pre, after, preAway, plain} {
					if ok, err := c.Rule(i).Target(s, a); err != nil || ok {
						if err != nil {
							t.Error(err)
							return
						}
						got = append(got, a.ID)
					}
				}
				if !equalIDs(got, want) {
					t.Errorf("goroutine %d: eligible %v, want %v", g, got, want)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestNewClock(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 11, 10, 18, 30, 0, 0, time.UTC) // a Monday in UTC, Tuesday 02:30 in Shanghai
	if got := NewClock(now, sh); got != (Clock{Hour: 2, Minute: 30, Weekday: 2}) {
		t.Errorf("Shanghai clock %+v", got)
	}
	if got := NewClock(now, nil); got != (Clock{Hour: 18, Minute: 30, Weekday: 1}) {
		t.Errorf("UTC clock %+v", got)
	}
}

// BenchmarkRuleEval measures one rule's target over one agent: the engine's inner loop. ns/op is the
// cost of one agent evaluation.
func BenchmarkRuleEval(b *testing.B) {
	c, err := Compile(RuleSet{
		Rules: []Rule{{
			Name:   "presale phones",
			When:   `session.kind == "presale"`,
			Target: `agent.status == "online" && "presale" in agent.groups && agent.load < agent.capacity && session.product.category in agent.skills`,
		}},
		Default: Rule{Name: "d", Target: "true"},
	})
	if err != nil {
		b.Fatal(err)
	}
	r := c.Rule(0)
	s := presale()
	a := &Agent{ID: 1, Status: StatusOnline, Capacity: 5, Load: 2, Groups: []string{"vip", "presale"}, Skills: []string{"tablet", "phone"}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ok, err := r.Target(s, a)
		if !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/agent")
}

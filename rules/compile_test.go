package rules

import (
	"errors"
	"strings"
	"testing"
)

// ok is a valid rule that tests start from and change one field of.
func ok() Rule {
	return Rule{Name: "r", When: `session.kind == "presale"`, Target: `agent.status == "online"`}
}

func TestCompileValid(t *testing.T) {
	rs := RuleSet{
		Rules: []Rule{
			{
				Name:   "vip phones",
				When:   `session.kind == "presale" && session.product.category in ["phone", "tablet"] && session.buyer.tier == "vip"`,
				Target: `agent.status == "online" && any(agent.skills, # == session.product.category)`,
				Prefer: []Preference{PreferScore, PreferLongestIdle},
				Score:  `(agent.capacity - agent.load) * 10 + min(agent.idle_seconds, 600) / 60`,
				Weight: `session.buyer.tier == "vip" ? 2 : 1`,
			},
			{
				Name:                 "night",
				When:                 "!session.in_business_hours ||\n session.time.hour >= 22 || session.time.weekday in [0, 6]",
				Target:               `agent.on_duty && lower(agent.status) == "online" && hasPrefix(session.language, "zh")`,
				Prefer:               []Preference{PreferRoundRobin},
				EscalateAfterSeconds: 300,
				NoAnswerSeconds:      60,
				Priority:             -1,
			},
			{
				Name:   "orders",
				When:   `session.order.status in ["paid", "shipped"] && len(session.first_message) > 0 && count(session.buyer.tags, # startsWith "b2b") == 0`,
				Target: `"aftersale" in agent.groups && agent.load < agent.capacity && all(agent.groups, none(session.buyer.tags, # == "blocked"))`,
				Prefer: []Preference{PreferLastAgentFirst, PreferWeightedShare},
			},
			{
				Name:   "words",
				When:   `session.first_message matches "(?i)refund|退款" || session.entry_page endsWith "/help" || session.queue_length > 20`,
				Target: `agent.last_agent || agent.id == 7`,
			},
		},
		Default: Rule{Name: "anyone", Target: "true"},
	}
	c, err := Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 4 || c.Rule(DefaultRule) != c.Default() || c.Rule(1).Name() != "night" {
		t.Fatalf("compiled set is not laid out as written: len %d", c.Len())
	}
	r := c.Rule(1)
	if r.EscalateAfter().Seconds() != 300 || r.NoAnswerAfter().Seconds() != 60 || r.Priority() != -1 || r.Index() != 1 {
		t.Errorf("settings of rule 1: %v %v %d", r.EscalateAfter(), r.NoAnswerAfter(), r.Priority())
	}
	if got := c.Default().Prefer(); len(got) != 1 || got[0] != PreferLeastLoadRatio {
		t.Errorf("default preferences: %v, want [least_load_ratio]", got)
	}
	if !c.Rule(0).HasScore() || c.Rule(1).HasScore() {
		t.Error("HasScore does not follow the score expression")
	}
}

func TestValidateErrors(t *testing.T) {
	nodes := strings.Repeat("1 + ", MaxNodes) + "1 > 0"
	if len(nodes) > MaxSourceBytes {
		t.Fatal("the node-limit case must fit the length limit")
	}
	tests := []struct {
		name   string
		change func(*Rule)
		field  string
		line   int
		col    int
		msg    string
	}{
		{"unknown field", func(r *Rule) { r.When = `session.prodcut.id == "1"` }, FieldWhen, 1, 9, "has no field prodcut"},
		{"unknown field in a later line", func(r *Rule) { r.Target = "agent.status == \"online\" &&\n  agent.skill == \"x\"" }, FieldTarget, 2, 9, "has no field skill"},
		{"unknown variable", func(r *Rule) { r.When = `buyer.tier == "vip"` }, FieldWhen, 1, 1, "unknown name buyer"},
		{"agent in when", func(r *Rule) { r.When = `agent.status == "online"` }, FieldWhen, 1, 1, "unknown name agent"},
		{"agent in weight", func(r *Rule) { r.Weight = `agent.load` }, FieldWeight, 1, 1, "unknown name agent"},
		{"target is a string", func(r *Rule) { r.Target = `"x"` }, FieldTarget, 1, 1, "expected bool, but got string"},
		{"when is a number", func(r *Rule) { r.When = `session.queue_length` }, FieldWhen, 1, 1, "expected bool, but got int"},
		{"comparing a string to a number", func(r *Rule) { r.When = `session.kind > 3` }, FieldWhen, 1, 14, "mismatched types string and int"},
		{"weight is a string", func(r *Rule) { r.Weight = `"2"` }, FieldWeight, 1, 1, "expected int"},
		{"weight is a float", func(r *Rule) { r.Weight = `session.queue_length / 2` }, FieldWeight, 1, 1, "whole number"},
		{"weight constant out of range", func(r *Rule) { r.Weight = `3 + 4` }, FieldWeight, 1, 1, "weight 7 is out of range 1–5"},
		{"score is a bool", func(r *Rule) { r.Prefer = []Preference{PreferScore}; r.Score = `agent.last_agent` }, FieldScore, 1, 1, "expected float64"},
		{"syntax error", func(r *Rule) { r.When = `session.kind ==` }, FieldWhen, 1, 15, "unexpected token EOF"},
		{"syntax error in a later line", func(r *Rule) { r.Target = "agent.status == \"online\"\n && (agent.load <" }, FieldTarget, 2, 17, "unexpected token EOF"},
		{"unclosed string", func(r *Rule) { r.When = `session.kind == "presale` }, FieldWhen, 1, 25, "literal not terminated"},
		{"too long", func(r *Rule) { r.When = `session.kind == "` + strings.Repeat("x", MaxSourceBytes) + `"` }, FieldWhen, 0, 0, "at most 2000 are allowed"},
		{"too many nodes", func(r *Rule) { r.When = nodes }, FieldWhen, 1, 0, "exceeds maximum allowed nodes"},
		{"builtin now", func(r *Rule) { r.When = `now().Hour() > 9` }, FieldWhen, 1, 1, "function now is not allowed"},
		{"builtin date", func(r *Rule) { r.When = `session.time.hour > 1 && date("2024-01-01").Year() > 0` }, FieldWhen, 1, 26, "function date is not allowed"},
		{"builtin toJSON", func(r *Rule) { r.Target = `toJSON(agent) != ""` }, FieldTarget, 1, 1, "function toJSON is not allowed"},
		{"builtin repeat", func(r *Rule) { r.When = `len(repeat(session.first_message, 1000)) > 1` }, FieldWhen, 1, 5, "function repeat is not allowed"},
		{"closure builtin reduce", func(r *Rule) { r.When = `reduce(session.buyer.tags, #acc + #, "") != ""` }, FieldWhen, 1, 1, "function reduce is not allowed"},
		{"closure builtin sortBy", func(r *Rule) { r.Target = `len(sortBy(agent.skills, #)) > 0` }, FieldTarget, 1, 5, "function sortBy is not allowed"},
		{"let", func(r *Rule) { r.When = `let m = session.first_message; len(m + m) > 10` }, FieldWhen, 1, 5, "let is not allowed"},
		{"closures nested too deep", func(r *Rule) {
			r.Target = `any(agent.groups, any(agent.skills, any(session.buyer.tags, # == "x")))`
		}, FieldTarget, 1, 19, "closures nest 3 deep"},
		{"unknown preference", func(r *Rule) { r.Prefer = []Preference{"fastest"} }, FieldPrefer, 0, 0, `unknown preference "fastest"`},
		{"preference twice", func(r *Rule) { r.Prefer = []Preference{PreferLongestIdle, PreferLongestIdle} }, FieldPrefer, 0, 0, "listed twice"},
		{"too many preferences", func(r *Rule) { r.Prefer = make([]Preference, 7) }, FieldPrefer, 0, 0, "at most 6"},
		{"score preference without score", func(r *Rule) { r.Prefer = []Preference{PreferScore} }, FieldScore, 0, 0, "needs a score expression"},
		{"score without score preference", func(r *Rule) { r.Score = `1.0` }, FieldScore, 0, 0, "only with preference score"},
		{"no name", func(r *Rule) { r.Name = " " }, FieldName, 0, 0, "name is required"},
		{"long name", func(r *Rule) { r.Name = strings.Repeat("n", MaxNameBytes+1) }, FieldName, 0, 0, "at most 100"},
		{"no when", func(r *Rule) { r.When = "" }, FieldWhen, 0, 0, "when is required"},
		{"no target", func(r *Rule) { r.Target = "" }, FieldTarget, 0, 0, "target is required"},
		{"negative escalation", func(r *Rule) { r.EscalateAfterSeconds = -1 }, FieldEscalate, 0, 0, "out of range"},
		{"no-answer too long", func(r *Rule) { r.NoAnswerSeconds = MaxTimeoutSeconds + 1 }, FieldNoAnswer, 0, 0, "out of range"},
		{"priority too high", func(r *Rule) { r.Priority = MaxPriority + 1 }, FieldPriority, 0, 0, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.change(&r)
			rs := RuleSet{Rules: []Rule{ok(), r}, Default: Rule{Name: "d", Target: "true"}}
			rs.Rules[0].Name = "first"
			errs := Validate(rs)
			if len(errs) != 1 {
				t.Fatalf("want one error, got %d: %v", len(errs), errs)
			}
			e := errs[0]
			if e.Rule != 1 || e.RuleName != r.Name || e.Field != tt.field {
				t.Errorf("error is at rule %d %q field %q, want rule 1 %q field %q", e.Rule, e.RuleName, e.Field, r.Name, tt.field)
			}
			if e.Line != tt.line || (tt.col != 0 && e.Column != tt.col) {
				t.Errorf("error is at %d:%d, want %d:%d", e.Line, e.Column, tt.line, tt.col)
			}
			if tt.line == 0 && e.Column != 0 {
				t.Errorf("an error without a line has column %d", e.Column)
			}
			if !strings.Contains(e.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", e.Message, tt.msg)
			}
			if strings.Contains(e.Message, "\n") {
				t.Errorf("message carries expr's snippet: %q", e.Message)
			}
			c, err := Compile(rs)
			var ve *ValidationError
			if c != nil || !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.ErrorCode() != "EINVALID" {
				t.Errorf("Compile = %v, %v; want nil and a *ValidationError", c, err)
			}
		})
	}
}

func TestValidateDefaultAndSetErrors(t *testing.T) {
	withDefault := func(d Rule) RuleSet { return RuleSet{Default: d} }
	tests := []struct {
		name  string
		rs    RuleSet
		rule  int
		field string
		msg   string
	}{
		{"default with when", withDefault(Rule{Name: "d", When: "true", Target: "true"}), DefaultRule, FieldWhen, "default rule has no when"},
		{"default escalates", withDefault(Rule{Name: "d", Target: "true", EscalateAfterSeconds: 30}), DefaultRule, FieldEscalate, "nothing to escalate to"},
		{"default without target", withDefault(Rule{Name: "d"}), DefaultRule, FieldTarget, "target is required"},
		{"default with a bad target", withDefault(Rule{Name: "d", Target: "agent.x"}), DefaultRule, FieldTarget, "has no field x"},
		{"duplicate names", RuleSet{Rules: []Rule{ok(), ok()}, Default: Rule{Name: "d", Target: "true"}}, 1, FieldName, "already used by rule 0"},
		{"too many rules", RuleSet{Rules: make([]Rule, MaxRules+1), Default: Rule{Name: "d", Target: "true"}}, WholeSet, FieldRules, "at most 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := Validate(tt.rs)
			if len(errs) != 1 {
				t.Fatalf("want one error, got %v", errs)
			}
			if e := errs[0]; e.Rule != tt.rule || e.Field != tt.field || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("got %+v, want rule %d field %s message ~ %q", e, tt.rule, tt.field, tt.msg)
			}
		})
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	rs := RuleSet{
		Rules: []Rule{
			{Name: "a", When: `session.kind ==`, Target: `"x"`, Weight: `now()`, Prefer: []Preference{"fastest"}},
			ok(),
			{Name: "c", When: `true`, Target: `agent.nope`, Prefer: []Preference{PreferScore}, Score: `agent.load + `},
		},
		Default: Rule{Name: "d", When: "true", Target: "true"},
	}
	type key struct {
		rule  int
		field string
	}
	want := []key{{0, FieldWhen}, {0, FieldTarget}, {0, FieldPrefer}, {0, FieldWeight}, {2, FieldTarget}, {2, FieldScore}, {DefaultRule, FieldWhen}}
	errs := Validate(rs)
	got := map[key]bool{}
	for _, e := range errs {
		got[key{e.Rule, e.Field}] = true
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d: %v", len(errs), len(want), errs)
	}
	for _, k := range want {
		if !got[k] {
			t.Errorf("no error for rule %d field %s; got %v", k.rule, k.field, errs)
		}
	}
	_, err := Compile(rs)
	if err == nil || !strings.Contains(err.Error(), `rule 0 "a" when 1:15: unexpected token EOF`) {
		t.Errorf("Compile error does not name rule, field and position: %v", err)
	}
}

func TestAllowedBuiltinsIsACopy(t *testing.T) {
	b := AllowedBuiltins()
	b[0] = "now"
	if AllowedBuiltins()[0] == "now" {
		t.Error("AllowedBuiltins hands out the package's own slice")
	}
	p := KnownPreferences()
	p[0] = "x"
	if !PreferLeastLoadRatio.Valid() || Preference("x").Valid() {
		t.Error("KnownPreferences hands out the package's own slice")
	}
}

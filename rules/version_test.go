package rules

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	a := DefaultRuleSet()
	if lines := Diff(a, DefaultRuleSet()); len(lines) != 0 {
		t.Fatalf("equal sets differ: %v", lines)
	}

	b := DefaultRuleSet()
	b.Rules[1].Target = `agent.status == "online" && "aftersale" in agent.groups && agent.on_duty`
	b.Rules[1].Priority = 5
	b.Rules = append([]Rule{{Name: "vip", When: `session.buyer.tier == "vip"`, Target: `"vip" in agent.groups`}}, b.Rules...)
	b.Default.Prefer = []Preference{PreferLongestIdle}
	b.Default.NoAnswerSeconds = 90

	want := []string{
		"added rule \"vip\" at 0: when `session.buyer.tier == \"vip\"`, target `\"vip\" in agent.groups`",
		"rule \"aftersale\" target: `agent.status == \"online\" && \"aftersale\" in agent.groups` → `agent.status == \"online\" && \"aftersale\" in agent.groups && agent.on_duty`",
		"rule \"aftersale\" priority: 0 → 5",
		"default rule prefer: [last_agent_first, least_load_ratio] → [longest_idle]",
		"default rule no_answer_seconds: 0 → 90",
	}
	if got := Diff(a, b); !reflect.DeepEqual(got, want) {
		t.Errorf("Diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Swapping two rules moves one of them; a renamed rule is removed and added.
	c := DefaultRuleSet()
	c.Rules[0], c.Rules[1] = c.Rules[1], c.Rules[0]
	c.Rules = append(c.Rules, Rule{Name: "night", When: `!session.in_business_hours`, Target: "true", Weight: "2"})
	d := DefaultRuleSet()
	d.Rules = append(d.Rules, Rule{Name: "night", When: `!session.in_business_hours`, Target: "true"})
	want = []string{
		"moved rule \"presale\" from 0 to 1",
		"rule \"night\" weight: (none) → `2`",
	}
	if got := Diff(d, c); !reflect.DeepEqual(got, want) {
		t.Errorf("Diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	e := DefaultRuleSet()
	e.Rules[0].Name = "pre-sale"
	e.Default.Name = "fallback"
	want = []string{
		`removed rule "presale" (was 0)`,
		"added rule \"pre-sale\" at 0: when `session.kind == \"presale\"`, target `agent.status == \"online\" && \"presale\" in agent.groups`",
		`default rule name: ` + "`anyone online` → `fallback`",
	}
	if got := Diff(a, e); !reflect.DeepEqual(got, want) {
		t.Errorf("Diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRuleSetJSON(t *testing.T) {
	v := RuleSetVersion{Number: 3, RuleSet: DefaultRuleSet(), Author: "ming", Comment: "first", CreatedAt: time.Date(2025, 11, 1, 8, 0, 0, 0, time.UTC)}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"number":3`, `"rules":[`, `"default":{`, `"prefer":["last_agent_first","least_load_ratio"]`, `"escalate_after_seconds":120`} {
		if !strings.Contains(string(data), field) {
			t.Errorf("version JSON lacks %s: %s", field, data)
		}
	}
	var back RuleSetVersion
	if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back, v) {
		t.Fatalf("version does not survive JSON: %v\n%+v", err, back)
	}

	set, err := json.Marshal(DefaultRuleSet())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ParseRuleSet(set)
	if err != nil || !reflect.DeepEqual(rs, DefaultRuleSet()) {
		t.Fatalf("ParseRuleSet(default) = %+v, %v", rs, err)
	}
	if _, err := Compile(rs); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		json  string
		rule  int
		field string
		msg   string
	}{
		{"unknown preference", `{"rules":[{"name":"a","when":"true","target":"true","prefer":["least_load_ratio","fastest"]}],"default":{"name":"d","target":"true"}}`,
			0, FieldPrefer, `unknown preference "fastest"`},
		{"unknown preference on the default", `{"rules":[],"default":{"name":"d","target":"true","prefer":["random"]}}`,
			DefaultRule, FieldPrefer, `unknown preference "random"`},
		{"bad expression", `{"rules":[{"name":"a","when":"session.kind = 1","target":"true"}],"default":{"name":"d","target":"true"}}`,
			0, FieldWhen, "unexpected token"},
		{"unknown field", `{"rules":[],"default":{"name":"d","target":"true"},"fallback":{}}`,
			WholeSet, "", `unknown field "fallback"`},
		{"unknown rule field", `{"rules":[{"name":"a","when":"true","target":"true","timeout":3}],"default":{"name":"d","target":"true"}}`,
			WholeSet, "", `unknown field "timeout"`},
		{"malformed", `{"rules":[`, WholeSet, "", "JSON: unexpected EOF"},
		{"trailing data", `{"rules":[],"default":{"name":"d","target":"true"}} {}`, WholeSet, "", "data after the rule set"},
		{"wrong JSON type", `{"rules":[],"default":{"name":"d","target":"true","priority":"high"}}`, WholeSet, "", "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRuleSet([]byte(tt.json))
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			e := ve.Errors[0]
			if e.Rule != tt.rule || e.Field != tt.field || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("got %+v, want rule %d field %q message ~ %q", e, tt.rule, tt.field, tt.msg)
			}
		})
	}
}

func TestFieldErrorText(t *testing.T) {
	tests := []struct {
		e    FieldError
		want string
	}{
		{FieldError{Rule: 2, RuleName: "vip", Field: FieldWhen, Line: 1, Column: 15, Message: "unexpected token EOF"}, `rule 2 "vip" when 1:15: unexpected token EOF`},
		{FieldError{Rule: DefaultRule, RuleName: "d", Field: FieldTarget, Message: "target is required"}, `default rule "d" target: target is required`},
		{FieldError{Rule: WholeSet, Field: FieldRules, Message: "201 rules"}, `rule set rules: 201 rules`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

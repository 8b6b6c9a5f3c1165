package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Preference names how the engine orders the eligible agents of a matched rule.
type Preference string

// Preferences. A rule lists one or more; the engine applies them in order, each later one breaking the
// ties of the ones before.
const (
	// PreferLeastLoadRatio puts the agent with the lowest load/capacity first.
	PreferLeastLoadRatio Preference = "least_load_ratio"
	// PreferLongestIdle puts the agent idle for the longest time first.
	PreferLongestIdle Preference = "longest_idle"
	// PreferRoundRobin rotates over the eligible agents in a stable order.
	PreferRoundRobin Preference = "round_robin"
	// PreferLastAgentFirst puts the buyer's last agent (agent.last_agent) first.
	PreferLastAgentFirst Preference = "last_agent_first"
	// PreferWeightedShare gives each agent new sessions in proportion to its capacity.
	PreferWeightedShare Preference = "weighted_share"
	// PreferScore orders by the rule's score expression, higher first.
	PreferScore Preference = "score"
)

var preferences = []Preference{
	PreferLeastLoadRatio, PreferLongestIdle, PreferRoundRobin,
	PreferLastAgentFirst, PreferWeightedShare, PreferScore,
}

// KnownPreferences returns every known preference, in a fresh slice.
func KnownPreferences() []Preference { return append([]Preference(nil), preferences...) }

// Valid reports whether p is a known preference.
func (p Preference) Valid() bool {
	for _, k := range preferences {
		if p == k {
			return true
		}
	}
	return false
}

// Limits of the rule language. They bound the cost of validating and evaluating a rule whatever a
// manager writes.
const (
	// MaxSourceBytes is the longest expression source accepted.
	MaxSourceBytes = 2000
	// MaxNodes is the most AST nodes an expression may have (expr.MaxNodes).
	MaxNodes = 300
	// MemoryBudget is the vm.VM memory budget of one evaluation: roughly the elements of arrays, maps
	// and ranges it may build, added up.
	MemoryBudget = 10_000
	// MaxPredicateDepth is how deeply closures (any, all, filter, …) may nest; iteration over
	// environment arrays is not charged to the memory budget, so nesting is what bounds it.
	MaxPredicateDepth = 2
	// MaxRules is the most rules a rule set may have, the default rule aside.
	MaxRules = 200
	// MaxNameBytes is the longest rule name.
	MaxNameBytes = 100
	// MaxPreferences is the most preferences a rule may list.
	MaxPreferences = 6
	// MaxTimeoutSeconds bounds the escalation and no-answer timeouts (one day).
	MaxTimeoutSeconds = 86_400
	// MaxPriority bounds the queue priority in both directions.
	MaxPriority = 1000
	// MinWeight and MaxWeight bound a session's weight in capacity units.
	MinWeight, MaxWeight = 1, 5
)

// Rule is one routing rule: which sessions it takes (When), which agents may serve them (Target), how
// the engine picks among those (Prefer), and how long a session waits before escalating.
type Rule struct {
	// Name identifies the rule in its set; names are unique.
	Name string `json:"name"`
	// When is a boolean expression over `session`; required except on the default rule, where it must
	// be empty (the default matches every session).
	When string `json:"when,omitempty"`
	// Target is a boolean expression over `session` and `agent`; an agent is eligible when it is true.
	Target string `json:"target"`
	// Prefer orders the eligible agents; empty means [least_load_ratio].
	Prefer []Preference `json:"prefer,omitempty"`
	// Score is a number expression over `session` and `agent`, higher wins; required exactly when
	// Prefer contains score.
	Score string `json:"score,omitempty"`
	// EscalateAfterSeconds, when positive, re-evaluates a session still waiting after that long against
	// the rules after this one and then the default. Not allowed on the default rule.
	EscalateAfterSeconds int `json:"escalate_after_seconds,omitempty"`
	// NoAnswerSeconds, when positive, is how long an assigned agent may leave the buyer unanswered
	// before the engine re-assigns.
	NoAnswerSeconds int `json:"no_answer_seconds,omitempty"`
	// Priority orders the waiting queue: higher first; 0 by default.
	Priority int `json:"priority,omitempty"`
	// Weight is an integer expression over `session` giving the capacity units (1–5) the session
	// takes; empty means 1.
	Weight string `json:"weight,omitempty"`
}

// Preferences returns the rule's preferences, [least_load_ratio] when none are listed.
func (r Rule) Preferences() []Preference {
	if len(r.Prefer) == 0 {
		return []Preference{PreferLeastLoadRatio}
	}
	return r.Prefer
}

// RuleSet is a shop's routing rules: the first rule whose When holds takes the session; when none
// does, the Default rule takes it.
type RuleSet struct {
	Rules   []Rule `json:"rules"`
	Default Rule   `json:"default"`
}

// DefaultRuleSet is the rule set of a new shop: pre-sale sessions go to group presale, after-sale ones
// to group aftersale, each preferring the buyer's last agent and then the least loaded; a session no
// one in its group takes within two minutes, and every unknown session, goes to anyone online.
func DefaultRuleSet() RuleSet {
	prefer := []Preference{PreferLastAgentFirst, PreferLeastLoadRatio}
	return RuleSet{
		Rules: []Rule{
			{
				Name:                 "presale",
				When:                 `session.kind == "presale"`,
				Target:               `agent.status == "online" && "presale" in agent.groups`,
				Prefer:               prefer,
				EscalateAfterSeconds: 120,
			},
			{
				Name:                 "aftersale",
				When:                 `session.kind == "aftersale"`,
				Target:               `agent.status == "online" && "aftersale" in agent.groups`,
				Prefer:               prefer,
				EscalateAfterSeconds: 120,
			},
		},
		Default: Rule{
			Name:   "anyone online",
			Target: `agent.status == "online"`,
			Prefer: prefer,
		},
	}
}

// ParseRuleSet decodes a rule set from JSON, rejecting unknown fields, and validates it. Every
// failure, malformed JSON included, is a *ValidationError; unknown preference names are reported with
// their rule.
func ParseRuleSet(data []byte) (RuleSet, error) {
	var rs RuleSet
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rs); err != nil {
		return RuleSet{}, &ValidationError{Errors: []FieldError{{Rule: WholeSet, Message: fmt.Sprintf("JSON: %v", err)}}}
	}
	if dec.More() {
		return RuleSet{}, &ValidationError{Errors: []FieldError{{Rule: WholeSet, Message: "JSON: data after the rule set"}}}
	}
	if errs := Validate(rs); len(errs) > 0 {
		return RuleSet{}, &ValidationError{Errors: errs}
	}
	return rs, nil
}

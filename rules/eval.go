package rules

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
)

// CompiledRuleSet is a validated rule set ready for evaluation. It is immutable and safe for
// concurrent use: each evaluation borrows a vm.VM from a sync.Pool, so goroutines never share one.
type CompiledRuleSet struct {
	rules []*CompiledRule
	def   *CompiledRule
}

// CompiledRule is one compiled rule: its expressions and its settings.
type CompiledRule struct {
	rule   Rule
	index  int
	prefer []Preference
	when   *vm.Program
	target *vm.Program
	weight *vm.Program
	score  *vm.Program
}

// EvalError is an expression that failed at run time on some data: a nil, an index out of range, a
// division by zero, the memory budget, a weight out of range. The engine counts it and skips the rule
// (for when) or the agent (for target and score).
type EvalError struct {
	// Rule is the rule's index, DefaultRule for the default.
	Rule int
	// RuleName is the rule's name.
	RuleName string
	// Field is FieldWhen, FieldTarget, FieldWeight or FieldScore.
	Field string
	// Err is what went wrong, with its place in the source when expr knows it.
	Err error
}

// Error formats the error as `rule 1 "vip" target: runtime error: integer divide by zero (1:12) …`.
func (e *EvalError) Error() string {
	where := fmt.Sprintf("rule %d", e.Rule)
	if e.Rule == DefaultRule {
		where = "default rule"
	}
	return fmt.Sprintf("%s %q %s: %v", where, e.RuleName, e.Field, e.Err)
}

// Unwrap returns the underlying error.
func (e *EvalError) Unwrap() error { return e.Err }

// EvalErrors lists the rules Match skipped because their when failed.
type EvalErrors []*EvalError

// Error joins the errors with "; ".
func (es EvalErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Len is the number of rules, the default aside.
func (c *CompiledRuleSet) Len() int { return len(c.rules) }

// Rule returns the rule at index i of Match's result: 0 ≤ i < Len, or DefaultRule.
func (c *CompiledRuleSet) Rule(i int) *CompiledRule {
	if i == DefaultRule {
		return c.def
	}
	return c.rules[i]
}

// Default returns the default rule.
func (c *CompiledRuleSet) Default() *CompiledRule { return c.def }

// Match returns the index of the first rule whose when holds for s, or DefaultRule when none does.
// A rule whose when fails at run time is skipped; the failures come back as EvalErrors next to the
// index, which is always usable.
func (c *CompiledRuleSet) Match(s *Session) (int, error) { return c.MatchFrom(s, 0) }

// MatchFrom is Match over the rules from index start on: an escalated session, which waited too long
// under rule i, is matched again with MatchFrom(s, i+1). A start past the last rule yields DefaultRule.
func (c *CompiledRuleSet) MatchFrom(s *Session, start int) (int, error) {
	var errs EvalErrors
	for i := max(start, 0); i < len(c.rules); i++ {
		ok, err := c.rules[i].When(s)
		if err != nil {
			errs = append(errs, err.(*EvalError))
			continue
		}
		if ok {
			return i, errs.orNil()
		}
	}
	return DefaultRule, errs.orNil()
}

func (es EvalErrors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Rule returns the rule as written.
func (r *CompiledRule) Rule() Rule { return r.rule }

// Index is the rule's index in its set, DefaultRule for the default.
func (r *CompiledRule) Index() int { return r.index }

// Name is the rule's name.
func (r *CompiledRule) Name() string { return r.rule.Name }

// Prefer returns the rule's preferences, [least_load_ratio] when none were listed. The slice must not
// be modified.
func (r *CompiledRule) Prefer() []Preference { return r.prefer }

// EscalateAfter is the escalation timeout, 0 when the rule never escalates.
func (r *CompiledRule) EscalateAfter() time.Duration {
	return time.Duration(r.rule.EscalateAfterSeconds) * time.Second
}

// NoAnswerAfter is the no-answer timeout, 0 when there is none.
func (r *CompiledRule) NoAnswerAfter() time.Duration {
	return time.Duration(r.rule.NoAnswerSeconds) * time.Second
}

// Priority is the queue priority of the rule's sessions, higher first.
func (r *CompiledRule) Priority() int { return r.rule.Priority }

// When reports whether the rule takes s; the default rule takes every session.
func (r *CompiledRule) When(s *Session) (bool, error) {
	if r.when == nil {
		return true, nil
	}
	out, err := run(r.when, s, nil, false)
	if err != nil {
		return false, r.fail(FieldWhen, err)
	}
	return out.(bool), nil
}

// Target reports whether agent a may serve session s under this rule.
func (r *CompiledRule) Target(s *Session, a *Agent) (bool, error) {
	out, err := run(r.target, s, a, true)
	if err != nil {
		return false, r.fail(FieldTarget, err)
	}
	return out.(bool), nil
}

// Weight returns the capacity units s takes under this rule: 1 when the rule has no weight. A result
// outside MinWeight–MaxWeight is an error, not clamped, so a wrong rule shows in the error count; the
// engine then uses 1.
func (r *CompiledRule) Weight(s *Session) (int, error) {
	if r.weight == nil {
		return 1, nil
	}
	out, err := run(r.weight, s, nil, false)
	if err != nil {
		return 0, r.fail(FieldWeight, err)
	}
	w := out.(int)
	if w < MinWeight || w > MaxWeight {
		return 0, r.fail(FieldWeight, fmt.Errorf("weight %d is out of range %d–%d", w, MinWeight, MaxWeight))
	}
	return w, nil
}

// HasScore reports whether the rule has a score expression (its preferences include score).
func (r *CompiledRule) HasScore() bool { return r.score != nil }

// Score returns the score of agent a for session s, higher wins; 0 when the rule has no score. NaN and
// infinities are errors.
func (r *CompiledRule) Score(s *Session, a *Agent) (float64, error) {
	if r.score == nil {
		return 0, nil
	}
	out, err := run(r.score, s, a, true)
	if err != nil {
		return 0, r.fail(FieldScore, err)
	}
	f := out.(float64)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, r.fail(FieldScore, fmt.Errorf("score is %v", f))
	}
	return f, nil
}

func (r *CompiledRule) fail(field string, err error) error {
	return &EvalError{Rule: r.index, RuleName: r.rule.Name, Field: field, Err: err}
}

// evaluator is what one evaluation borrows: a VM with the memory budget and the environments, so that
// running a rule allocates nothing of its own.
type evaluator struct {
	vm    vm.VM
	sess  sessionEnv
	agent agentEnv
}

var evaluators = sync.Pool{New: func() any { return &evaluator{vm: vm.VM{MemoryBudget: MemoryBudget}} }}

// run evaluates program over s, and over a when the program is a target or score (withAgent). expr's
// VM recovers its own panics; the recover here turns a panic from anywhere else in the call into an
// error too.
func run(program *vm.Program, s *Session, a *Agent, withAgent bool) (out any, err error) {
	if s == nil {
		return nil, errors.New("no session to evaluate")
	}
	if withAgent && a == nil {
		return nil, errors.New("no agent to evaluate")
	}
	ev := evaluators.Get().(*evaluator)
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("evaluation panicked: %v", p)
		}
		ev.sess, ev.agent = sessionEnv{}, agentEnv{}
		evaluators.Put(ev)
	}()
	var env any
	if withAgent {
		ev.agent = agentEnv{Session: s, Agent: a}
		env = &ev.agent
	} else {
		ev.sess = sessionEnv{Session: s}
		env = &ev.sess
	}
	return ev.vm.Run(program, env)
}

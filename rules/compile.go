package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Where a FieldError sits when it is not about one rule of the list.
const (
	// DefaultRule is the Rule index of the default rule, in errors and in Match's result.
	DefaultRule = -1
	// WholeSet is the Rule index of an error about the rule set as a whole (e.g. malformed JSON).
	WholeSet = -2
)

// Field names used in FieldError.Field; they are the JSON names of Rule's fields.
const (
	FieldName     = "name"
	FieldWhen     = "when"
	FieldTarget   = "target"
	FieldPrefer   = "prefer"
	FieldScore    = "score"
	FieldWeight   = "weight"
	FieldEscalate = "escalate_after_seconds"
	FieldNoAnswer = "no_answer_seconds"
	FieldPriority = "priority"
	// FieldRules marks an error about the list of rules, such as too many of them.
	FieldRules = "rules"
)

// codeInvalid is the error code the edge maps to 400 Bad Request.
const codeInvalid = "EINVALID"

// allowedBuiltins are the expr builtins a rule may call. Everything else is disabled: time builtins
// (now, date, duration, timezone) because time comes from the environment, so an evaluation can be
// replayed; JSON, base64, repeat, join, split, replace and the like because they build large values;
// reduce, groupBy, sortBy, map-building and key/value builtins because routing has no use for them.
// Operators (in, contains, startsWith, endsWith, matches, ?:, ??) are not builtins and stay available.
var allowedBuiltins = []string{
	"len", "lower", "upper", "trim", "hasPrefix", "hasSuffix",
	"all", "any", "none", "one", "filter", "count", "find",
	"min", "max", "abs", "ceil", "floor", "round", "int", "float",
}

// AllowedBuiltins returns the names of the expr builtins rules may use, in a fresh slice.
func AllowedBuiltins() []string { return append([]string(nil), allowedBuiltins...) }

func builtinAllowed(name string) bool {
	for _, b := range allowedBuiltins {
		if b == name {
			return true
		}
	}
	return false
}

// FieldError is one reason a rule is invalid: which rule, which field, and where in the expression.
type FieldError struct {
	// Rule is the index in RuleSet.Rules, DefaultRule for the default rule, WholeSet for the set.
	Rule int `json:"rule"`
	// RuleName is the rule's name as written, possibly empty.
	RuleName string `json:"rule_name,omitempty"`
	// Field is one of the Field* names, empty for errors about the whole rule or set.
	Field string `json:"field,omitempty"`
	// Line and Column (1-based, columns in characters) locate an expression error; 0 when the error
	// is not about a place in the source.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// Message says what is wrong, in words a manager can act on.
	Message string `json:"message"`
}

// Error formats the error as `rule 2 "vip" when 1:15: unexpected token EOF`.
func (e FieldError) Error() string {
	var b strings.Builder
	switch e.Rule {
	case WholeSet:
		b.WriteString("rule set")
	case DefaultRule:
		b.WriteString("default rule")
	default:
		fmt.Fprintf(&b, "rule %d", e.Rule)
	}
	if e.RuleName != "" {
		fmt.Fprintf(&b, " %q", e.RuleName)
	}
	if e.Field != "" {
		b.WriteString(" " + e.Field)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " %d:%d", e.Line, e.Column)
	}
	b.WriteString(": " + e.Message)
	return b.String()
}

// ErrorCode is EINVALID: the rule was bad input.
func (e FieldError) ErrorCode() string { return codeInvalid }

// ValidationError carries every FieldError of a rule set that could not be compiled.
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

// Error joins the errors, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.Error()
	}
	return "invalid rule set: " + strings.Join(lines, "\n")
}

// ErrorCode is EINVALID: the rule set was bad input.
func (e *ValidationError) ErrorCode() string { return codeInvalid }

// exprKind is what an expression field computes and over which environment.
type exprKind int

const (
	kindWhen exprKind = iota
	kindTarget
	kindWeight
	kindScore
)

// options holds the expr options of each kind, built once; expr applies them to a fresh config on
// every Compile, so sharing them is safe.
var options = func() [4][]expr.Option {
	base := []expr.Option{expr.DisableAllBuiltins(), expr.MaxNodes(MaxNodes)}
	for _, b := range allowedBuiltins {
		base = append(base, expr.EnableBuiltin(b))
	}
	with := func(env any, as expr.Option) []expr.Option {
		return append([]expr.Option{expr.Env(env), as}, base...)
	}
	return [4][]expr.Option{
		kindWhen:   with(sessionEnv{}, expr.AsBool()),
		kindTarget: with(agentEnv{}, expr.AsBool()),
		kindWeight: with(sessionEnv{}, expr.AsInt()),
		kindScore:  with(agentEnv{}, expr.AsFloat64()),
	}
}()

// exprError is a compile error of one expression, with its 1-based position (0 when it has none).
type exprError struct {
	line, column int
	message      string
}

// compileExpr checks src against the limits and the environment of kind and compiles it.
func compileExpr(src string, kind exprKind) (*vm.Program, *exprError) {
	if len(src) > MaxSourceBytes {
		return nil, &exprError{message: fmt.Sprintf("expression is %d bytes long; at most %d are allowed", len(src), MaxSourceBytes)}
	}
	// A first parse of our own, with every builtin known, finds what expr's options cannot forbid:
	// disabled closure builtins such as reduce still parse and check, and let can double a string
	// at every step.
	cfg := conf.CreateNew()
	cfg.MaxNodes = MaxNodes
	tree, err := parser.ParseWithConfig(src, cfg)
	if err != nil {
		return nil, fromExprError(err)
	}
	chk := &astCheck{src: src, depth: map[*ast.PredicateNode]int{}}
	ast.Walk(&tree.Node, chk)
	if chk.err != nil {
		return nil, chk.err
	}
	program, err := expr.Compile(src, options[kind]...)
	if err != nil {
		return nil, fromExprError(err)
	}
	if kind == kindWeight {
		node := program.Node()
		if t := node.Type(); t != nil && (t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32) {
			return nil, &exprError{line: 1, column: 1, message: "weight must be a whole number of capacity units, got a float"}
		}
		if n, ok := node.(*ast.IntegerNode); ok && (n.Value < MinWeight || n.Value > MaxWeight) {
			return nil, &exprError{line: 1, column: 1, message: fmt.Sprintf("weight %d is out of range %d–%d", n.Value, MinWeight, MaxWeight)}
		}
	}
	return program, nil
}

// fromExprError turns expr's error into a position and a message without the source snippet.
func fromExprError(err error) *exprError {
	// expr reports a wrong result type for the expression as a whole, without a place: 1:1 then.
	var fe *file.Error
	if !errors.As(err, &fe) {
		return &exprError{line: 1, column: 1, message: err.Error()}
	}
	if fe.Line == 0 {
		return &exprError{line: 1, column: 1, message: fe.Message}
	}
	return &exprError{line: fe.Line, column: fe.Column + 1, message: fe.Message}
}

// astCheck walks a parsed expression for what the rule language forbids beyond expr's options.
type astCheck struct {
	src   string
	depth map[*ast.PredicateNode]int
	err   *exprError
}

// Visit is called by ast.Walk after the node's children (post-order), so inner closures are measured
// before the closure around them.
func (c *astCheck) Visit(node *ast.Node) {
	if c.err != nil {
		return
	}
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		if !builtinAllowed(n.Name) {
			c.fail(n, notAllowed(n.Name))
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok {
			if _, known := builtin.Index[id.Value]; known && !builtinAllowed(id.Value) {
				c.fail(n, notAllowed(id.Value))
			}
		}
	case *ast.VariableDeclaratorNode:
		c.fail(n, "let is not allowed in rules: write the expression out")
	case *ast.PredicateNode:
		inner := &innerDepth{depth: c.depth}
		ast.Walk(&n.Node, inner)
		c.depth[n] = inner.max + 1
		if inner.max+1 > MaxPredicateDepth {
			c.fail(n, fmt.Sprintf("closures nest %d deep; at most %d are allowed", inner.max+1, MaxPredicateDepth))
		}
	}
}

func (c *astCheck) fail(n ast.Node, message string) {
	fe := (&file.Error{Location: n.Location(), Message: message}).Bind(file.NewSource(c.src))
	c.err = &exprError{line: fe.Line, column: fe.Column + 1, message: message}
}

func notAllowed(name string) string {
	return fmt.Sprintf("function %s is not allowed in rules (allowed: %s)", name, strings.Join(allowedBuiltins, ", "))
}

// innerDepth finds the deepest closure already measured inside a subtree.
type innerDepth struct {
	depth map[*ast.PredicateNode]int
	max   int
}

// Visit records the depth of each closure met.
func (d *innerDepth) Visit(node *ast.Node) {
	if p, ok := (*node).(*ast.PredicateNode); ok && d.depth[p] > d.max {
		d.max = d.depth[p]
	}
}

// Validate checks every rule of rs and returns all the errors found, none when rs compiles.
func Validate(rs RuleSet) []FieldError {
	_, errs := compileSet(rs)
	return errs
}

// Compile validates rs and compiles it for evaluation; when any rule is invalid it returns a
// *ValidationError listing every error.
func Compile(rs RuleSet) (*CompiledRuleSet, error) {
	c, errs := compileSet(rs)
	if len(errs) > 0 {
		return nil, &ValidationError{Errors: errs}
	}
	return c, nil
}

func compileSet(rs RuleSet) (*CompiledRuleSet, []FieldError) {
	var errs []FieldError
	if len(rs.Rules) > MaxRules {
		errs = append(errs, FieldError{Rule: WholeSet, Field: FieldRules,
			Message: fmt.Sprintf("%d rules; at most %d are allowed", len(rs.Rules), MaxRules)})
		return nil, errs
	}
	c := &CompiledRuleSet{rules: make([]*CompiledRule, len(rs.Rules))}
	seen := map[string]int{}
	for i, r := range rs.Rules {
		var cr *CompiledRule
		cr, errs = compileRule(r, i, errs)
		c.rules[i] = cr
		if first, dup := seen[r.Name]; dup && r.Name != "" {
			errs = append(errs, FieldError{Rule: i, RuleName: r.Name, Field: FieldName,
				Message: fmt.Sprintf("name is already used by rule %d", first)})
		} else {
			seen[r.Name] = i
		}
	}
	c.def, errs = compileRule(rs.Default, DefaultRule, errs)
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// compileRule checks and compiles one rule, appending its errors to errs.
func compileRule(r Rule, index int, errs []FieldError) (*CompiledRule, []FieldError) {
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Rule: index, RuleName: r.Name, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	isDefault := index == DefaultRule
	switch {
	case strings.TrimSpace(r.Name) == "":
		bad(FieldName, "name is required")
	case len(r.Name) > MaxNameBytes:
		bad(FieldName, "name is %d bytes long; at most %d are allowed", len(r.Name), MaxNameBytes)
	}
	cr := &CompiledRule{rule: r, index: index, prefer: r.Preferences()}
	compile := func(field, src string, kind exprKind) *vm.Program {
		p, e := compileExpr(src, kind)
		if e != nil {
			errs = append(errs, FieldError{Rule: index, RuleName: r.Name, Field: field, Line: e.line, Column: e.column, Message: e.message})
		}
		return p
	}

	switch {
	case isDefault && strings.TrimSpace(r.When) != "":
		bad(FieldWhen, "the default rule has no when: it takes every session no other rule takes")
	case !isDefault && strings.TrimSpace(r.When) == "":
		bad(FieldWhen, `when is required; write "true" to take every session`)
	case !isDefault:
		cr.when = compile(FieldWhen, r.When, kindWhen)
	}
	if strings.TrimSpace(r.Target) == "" {
		bad(FieldTarget, `target is required; write "true" to allow every agent`)
	} else {
		cr.target = compile(FieldTarget, r.Target, kindTarget)
	}

	wantsScore := false
	prefer := r.Prefer
	if len(prefer) > MaxPreferences {
		bad(FieldPrefer, "%d preferences; at most %d are allowed", len(prefer), MaxPreferences)
		prefer = nil
	}
	for i, p := range prefer {
		switch {
		case !p.Valid():
			bad(FieldPrefer, "unknown preference %q (known: %s)", p, preferenceList())
		case indexOf(prefer[:i], p) >= 0:
			bad(FieldPrefer, "preference %q is listed twice", p)
		}
		wantsScore = wantsScore || p == PreferScore
	}
	switch hasScore := strings.TrimSpace(r.Score) != ""; {
	case wantsScore && !hasScore:
		bad(FieldScore, "preference score needs a score expression")
	case !wantsScore && hasScore:
		bad(FieldScore, "a score expression is used only with preference score")
	case hasScore:
		cr.score = compile(FieldScore, r.Score, kindScore)
	}
	if strings.TrimSpace(r.Weight) != "" {
		cr.weight = compile(FieldWeight, r.Weight, kindWeight)
	}

	switch {
	case r.EscalateAfterSeconds < 0 || r.EscalateAfterSeconds > MaxTimeoutSeconds:
		bad(FieldEscalate, "escalation timeout %d s is out of range 0–%d", r.EscalateAfterSeconds, MaxTimeoutSeconds)
	case isDefault && r.EscalateAfterSeconds != 0:
		bad(FieldEscalate, "the default rule is the last: there is nothing to escalate to")
	}
	if r.NoAnswerSeconds < 0 || r.NoAnswerSeconds > MaxTimeoutSeconds {
		bad(FieldNoAnswer, "no-answer timeout %d s is out of range 0–%d", r.NoAnswerSeconds, MaxTimeoutSeconds)
	}
	if r.Priority < -MaxPriority || r.Priority > MaxPriority {
		bad(FieldPriority, "priority %d is out of range %d–%d", r.Priority, -MaxPriority, MaxPriority)
	}
	return cr, errs
}

func indexOf(ps []Preference, p Preference) int {
	for i, q := range ps {
		if q == p {
			return i
		}
	}
	return -1
}

func preferenceList() string {
	names := make([]string, len(preferences))
	for i, p := range preferences {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

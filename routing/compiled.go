package routing

import (
	"regexp"
	"strings"

	"github.com/shopdesk/shopdesk/rules"
)

// compiled is a compiled rule set with what the engine learned about it once, when it was compiled:
// which environment fields it reads (so a decision only loads those) and which targets are a plain
// group membership (answered by the snapshot's group index instead of evaluating the expression).
type compiled struct {
	number int
	set    *rules.CompiledRuleSet
	// rules holds per-rule facts; index i for rule i, the last entry for the default rule.
	rules []ruleFacts
	// reads says which costly session fields any expression of the set reads.
	buyer, firstMessage, queueLength bool
	noAnswer                         bool
}

type ruleFacts struct {
	// group is the group of a target `"g" in agent.groups` (optionally after
	// `agent.status == "online" &&`), "" for any other target.
	group     string
	lastAgent bool // prefers last_agent_first or reads agent.last_agent
	idle      bool // prefers longest_idle or reads agent.idle_seconds
}

// groupTarget recognises a target that is nothing but a group membership, possibly with the status
// test every routing decision applies anyway.
var groupTarget = []*regexp.Regexp{
	regexp.MustCompile(`^\s*(?:agent\.status\s*==\s*"online"\s*&&\s*)?"([A-Za-z0-9_.:@/ -]+)"\s+in\s+agent\.groups\s*$`),
	regexp.MustCompile(`^\s*"([A-Za-z0-9_.:@/ -]+)"\s+in\s+agent\.groups\s*&&\s*agent\.status\s*==\s*"online"\s*$`),
}

func plainGroup(target string) string {
	for _, re := range groupTarget {
		if m := re.FindStringSubmatch(target); m != nil {
			return m[1]
		}
	}
	return ""
}

// compileSet compiles rs; number is its version (VersionDraft for drafts and unsaved sets).
func compileSet(number int, rs rules.RuleSet) (*compiled, error) {
	set, err := rules.Compile(rs)
	if err != nil {
		return nil, err
	}
	c := &compiled{number: number, set: set}
	all := append(append([]rules.Rule(nil), rs.Rules...), rs.Default)
	for _, r := range all {
		src := r.When + "\n" + r.Target + "\n" + r.Score + "\n" + r.Weight
		c.buyer = c.buyer || strings.Contains(src, "buyer")
		c.firstMessage = c.firstMessage || strings.Contains(src, "first_message")
		c.queueLength = c.queueLength || strings.Contains(src, "queue_length")
		c.noAnswer = c.noAnswer || r.NoAnswerSeconds > 0
		f := ruleFacts{group: plainGroup(r.Target)}
		for _, p := range r.Preferences() {
			f.lastAgent = f.lastAgent || p == rules.PreferLastAgentFirst
			f.idle = f.idle || p == rules.PreferLongestIdle
		}
		f.lastAgent = f.lastAgent || strings.Contains(src, "last_agent")
		f.idle = f.idle || strings.Contains(src, "idle_seconds")
		c.rules = append(c.rules, f)
	}
	return c, nil
}

// facts returns the facts of rule index i (rules.DefaultRule for the default).
func (c *compiled) facts(i int) ruleFacts {
	if i == rules.DefaultRule {
		return c.rules[len(c.rules)-1]
	}
	return c.rules[i]
}

// resolve matches s and follows its escalations for a session that has waited for waited: the rule
// that takes it, how many escalations led there, and the run-time errors of the when expressions.
func (c *compiled) resolve(s *rules.Session, waited float64) (int, int, []error) {
	var errs []error
	i, err := c.set.Match(s)
	errs = appendEvalErrors(errs, err)
	steps := 0
	for i != rules.DefaultRule {
		after := c.set.Rule(i).EscalateAfter().Seconds()
		if after <= 0 || waited < after {
			break
		}
		waited -= after
		i, err = c.set.MatchFrom(s, i+1)
		errs = appendEvalErrors(errs, err)
		steps++
	}
	return i, steps, errs
}

func appendEvalErrors(errs []error, err error) []error {
	if err == nil {
		return errs
	}
	if es, ok := err.(rules.EvalErrors); ok {
		for _, e := range es {
			errs = append(errs, e)
		}
		return errs
	}
	return append(errs, err)
}

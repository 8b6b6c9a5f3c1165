package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RuleSetVersion is one saved version of a shop's rule set. Versions are never edited: a change is a
// new version with the next Number. It marshals to JSON with the rule set's fields inline.
type RuleSetVersion struct {
	// Number counts the shop's versions from 1.
	Number int `json:"number"`
	RuleSet
	// Author is who saved the version.
	Author string `json:"author"`
	// Comment is the author's note on the change.
	Comment string `json:"comment,omitempty"`
	// CreatedAt is when the version was saved.
	CreatedAt time.Time `json:"created_at"`
}

// Diff lists, one human-readable line each, what changed from rule set a to rule set b: rules added,
// removed and moved, then every changed field of the rules both have, then the default rule's
// changes. Rules are matched by name, so a renamed rule shows as removed and added. Equal sets give
// no lines.
func Diff(a, b RuleSet) []string {
	var lines []string
	ka, kb := ruleKeys(a.Rules), ruleKeys(b.Rules)
	ia, ib := indexByKey(ka), indexByKey(kb)

	for i, k := range ka {
		if _, ok := ib[k]; !ok {
			lines = append(lines, fmt.Sprintf("removed rule %q (was %d)", a.Rules[i].Name, i))
		}
	}
	for j, k := range kb {
		if _, ok := ia[k]; !ok {
			lines = append(lines, fmt.Sprintf("added rule %q at %d: when %s, target %s", b.Rules[j].Name, j,
				quote(b.Rules[j].When), quote(b.Rules[j].Target)))
		}
	}

	// The common rules, in a's order and in b's; those outside the longest common subsequence of the
	// two orders are the ones that moved.
	var common []string
	for _, k := range ka {
		if _, ok := ib[k]; ok {
			common = append(common, k)
		}
	}
	var commonB []string
	for _, k := range kb {
		if _, ok := ia[k]; ok {
			commonB = append(commonB, k)
		}
	}
	stay := lcs(common, commonB)
	for _, k := range commonB {
		if !stay[k] {
			lines = append(lines, fmt.Sprintf("moved rule %q from %d to %d", b.Rules[ib[k]].Name, ia[k], ib[k]))
		}
	}
	for _, k := range commonB {
		r := b.Rules[ib[k]]
		for _, l := range diffRule(a.Rules[ia[k]], r) {
			lines = append(lines, fmt.Sprintf("rule %q %s", r.Name, l))
		}
	}
	for _, l := range diffRule(a.Default, b.Default) {
		lines = append(lines, "default rule "+l)
	}
	return lines
}

// ruleKeys names each rule by its name and, for a duplicate name in an invalid set, its occurrence.
func ruleKeys(rs []Rule) []string {
	seen := map[string]int{}
	keys := make([]string, len(rs))
	for i, r := range rs {
		keys[i] = r.Name + "\x00" + strconv.Itoa(seen[r.Name])
		seen[r.Name]++
	}
	return keys
}

func indexByKey(keys []string) map[string]int {
	m := make(map[string]int, len(keys))
	for i, k := range keys {
		m[k] = i
	}
	return m
}

// lcs returns the members of a longest common subsequence of x and y.
func lcs(x, y []string) map[string]bool {
	n, m := len(x), len(y)
	t := make([][]int, n+1)
	for i := range t {
		t[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				t[i][j] = t[i+1][j+1] + 1
			} else {
				t[i][j] = max(t[i+1][j], t[i][j+1])
			}
		}
	}
	in := map[string]bool{}
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case x[i] == y[j]:
			in[x[i]] = true
			i++
			j++
		case t[i+1][j] >= t[i][j+1]:
			i++
		default:
			j++
		}
	}
	return in
}

// diffRule lists the changed fields of one rule as "field: old → new".
func diffRule(a, b Rule) []string {
	var out []string
	str := func(field, x, y string) {
		if x != y {
			out = append(out, fmt.Sprintf("%s: %s → %s", field, quote(x), quote(y)))
		}
	}
	num := func(field string, x, y int) {
		if x != y {
			out = append(out, fmt.Sprintf("%s: %d → %d", field, x, y))
		}
	}
	str(FieldName, a.Name, b.Name)
	str(FieldWhen, a.When, b.When)
	str(FieldTarget, a.Target, b.Target)
	if pa, pb := prefString(a.Preferences()), prefString(b.Preferences()); pa != pb {
		out = append(out, fmt.Sprintf("%s: %s → %s", FieldPrefer, pa, pb))
	}
	str(FieldScore, a.Score, b.Score)
	str(FieldWeight, a.Weight, b.Weight)
	num(FieldEscalate, a.EscalateAfterSeconds, b.EscalateAfterSeconds)
	num(FieldNoAnswer, a.NoAnswerSeconds, b.NoAnswerSeconds)
	num(FieldPriority, a.Priority, b.Priority)
	return out
}

func prefString(ps []Preference) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = string(p)
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// quote shows an expression in backquotes, or (none) when it is empty.
func quote(s string) string {
	if s == "" {
		return "(none)"
	}
	return "`" + s + "`"
}

package rules

import "testing"

// Every field Fields offers must compile in the environment it is offered for, and the list must hold
// the fields rules are written with.
func TestFieldsCompile(t *testing.T) {
	env := Fields()
	want := map[string]bool{"session.kind": false, "session.product.category": false, "session.buyer.tags": false,
		"agent.groups": false, "agent.load": false, "agent.last_agent": false}
	check := func(f Field, rs RuleSet) {
		t.Helper()
		if _, ok := want[f.Path]; ok {
			want[f.Path] = true
		}
		if errs := Validate(rs); len(errs) > 0 {
			t.Errorf("field %s (%s) does not compile: %v", f.Path, f.Type, errs)
		}
	}
	for _, f := range env.Session {
		check(f, RuleSet{Rules: []Rule{{Name: "r", When: f.Path + " != nil", Target: "true"}}, Default: Rule{Name: "d", Target: "true"}})
	}
	for _, f := range env.Agent {
		check(f, RuleSet{Default: Rule{Name: "d", Target: f.Path + " != nil"}})
	}
	for path, seen := range want {
		if !seen {
			t.Errorf("Fields lacks %s", path)
		}
	}
	if len(env.Preferences) == 0 || len(env.Builtins) == 0 {
		t.Errorf("preferences %v builtins %v", env.Preferences, env.Builtins)
	}
}
